"""Every error leaves as application/problem+json with a request id (serve_app/http/problems.py), and the
form-field options parser of the intake (serve_app/http/intake.py)."""

from __future__ import annotations

import json
import logging
import re
from types import SimpleNamespace
from typing import Any

import fastapi
import pytest
from ray.serve._private.common import DeploymentID
from ray.serve._private.replica import UserCallableWrapper
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.testclient import TestClient

from serve_app.errors import PROBLEM_BASE, InvalidVideo, Overloaded, Unauthorized
from serve_app.http.intake import FORM_FIELDS, options_from_form
from serve_app.http.problems import PROBLEM_JSON, OptionsError, install_problem_handlers
from serve_app.schemas import AnalyzeOptions

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def build_app() -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    install_problem_handlers(app, retry_after_s=lambda: 7)

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/invalid-video")
    async def invalid_video() -> None:
        raise InvalidVideo("moov atom not found")

    @app.get("/overloaded")
    async def overloaded() -> None:
        raise Overloaded("job queue is full")

    @app.get("/unauthorized")
    async def unauthorized() -> None:
        raise Unauthorized("API key not valid")

    @app.get("/options")
    async def options() -> None:
        raise OptionsError([{"loc": ["fps"], "msg": "must be positive"}, {"loc": [], "msg": "bad body"}])

    @app.get("/query")
    async def query(n: int = fastapi.Query(ge=1)) -> dict[str, int]:
        return {"n": n}

    @app.get("/backpressure")
    async def backpressure() -> None:
        raise BackPressureError(num_queued_requests=1, max_queued_requests=1)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/unavailable")
    async def unavailable() -> None:
        raise DeploymentUnavailableError(DeploymentID(name="VLM", app_name="reelserve"))

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(build_app(), raise_server_exceptions=False) as c:
        yield c


def problem_body(response: Any, status: int, type_: str, title: str) -> dict[str, Any]:
    """Check the common shape of a problem response and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == f"https://reelserve.dev/problems/{type_}" == PROBLEM_BASE + type_
    assert body["title"] == title
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    rid = response.headers["x-request-id"]
    assert HEX_ID.match(rid), rid
    assert body["instance"] == f"urn:reelserve:request:{rid}"
    return body


def test_success_gets_a_request_id_too(client: TestClient) -> None:
    response = client.get("/ok")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert HEX_ID.match(response.headers["x-request-id"])
    assert response.headers["x-request-id"] != client.get("/ok").headers["x-request-id"]


def test_reelserve_error_keeps_its_status_type_and_detail(client: TestClient) -> None:
    response = client.get("/invalid-video")
    body = problem_body(response, 422, "invalid-video", InvalidVideo.title)
    assert body["detail"] == "moov atom not found"
    assert "retry-after" not in response.headers  # only 503s say when to come back
    assert "errors" not in body


def test_overloaded_says_when_to_retry(client: TestClient) -> None:
    response = client.get("/overloaded")
    body = problem_body(response, 503, "overloaded", Overloaded.title)
    assert body["detail"] == "job queue is full"
    assert response.headers["retry-after"] == "7"


def test_unauthorized_challenges_and_closes(client: TestClient) -> None:
    response = client.get("/unauthorized")
    problem_body(response, 401, "unauthorized", Unauthorized.title)
    assert response.headers["www-authenticate"] == 'Bearer realm="reelserve"'
    assert response.headers["connection"] == "close"


def test_options_error_lists_the_field_errors(client: TestClient) -> None:
    body = problem_body(client.get("/options"), 422, "invalid-options", "Invalid analysis options")
    assert body["errors"] == [{"loc": ["fps"], "msg": "must be positive"}, {"loc": [], "msg": "bad body"}]
    assert body["detail"] == "fps: must be positive; body: bad body"


@pytest.mark.parametrize("query", ["", "?n=0", "?n=abc"])
def test_request_validation_is_invalid_options(client: TestClient, query: str) -> None:
    body = problem_body(client.get(f"/query{query}"), 422, "invalid-options", "Invalid analysis options")
    assert [e["loc"] for e in body["errors"]] == [["query", "n"]]
    assert all(set(e) == {"loc", "msg"} for e in body["errors"])  # no echoed input, no pydantic URLs
    assert body["detail"].startswith("query.n: ")


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    body = problem_body(client.get("/no/such/route"), 404, "http-404", "Not Found")
    assert body["detail"] == "Not Found"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.post("/ok")
    problem_body(response, 405, "http-405", "Method Not Allowed")
    assert "GET" in response.headers["allow"].replace(" ", "").split(",")  # the handler keeps exc.headers


def test_serve_backpressure_is_overloaded(client: TestClient) -> None:
    response = client.get("/backpressure")
    body = problem_body(response, 503, "overloaded", "Service overloaded")
    assert response.headers["retry-after"] == "7"
    assert "retry later" in body["detail"]


def serve_started(app: fastapi.FastAPI) -> fastapi.FastAPI:
    """What a Serve replica does to the ingress app when it starts (ray 2.60, `UserCallableWrapper`):
    it registers its own plain-text handlers for its 503 exceptions. Serve's handler itself is used."""
    serve = SimpleNamespace(service_unavailable_exceptions=UserCallableWrapper.service_unavailable_exceptions)
    for exc in serve.service_unavailable_exceptions:
        app.add_exception_handler(exc, lambda _request, e: UserCallableWrapper.handle_exception(serve, e))
    return app


@pytest.mark.parametrize(
    ("path", "type_", "title"),
    [("/backpressure", "overloaded", "Service overloaded"), ("/unavailable", "unavailable", "Service unavailable")],
)
def test_serve_503s_stay_problems_after_serve_registers_its_handlers(path: str, type_: str, title: str) -> None:
    with TestClient(serve_started(build_app()), raise_server_exceptions=False) as started:
        response = started.get(path)
    problem_body(response, 503, type_, title)
    assert response.headers["retry-after"] == "7"


def test_unexpected_error_is_a_500_problem_naming_the_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="serve_app.http.problems"):
        response = client.get("/boom")
    body = problem_body(response, 500, "internal", "Internal error")
    rid = response.headers["x-request-id"]
    assert rid in body["detail"]
    assert "boom" not in response.text and "RuntimeError" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if r.name == "serve_app.http.problems" and rid in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], RuntimeError) and str(logged[0].exc_info[1]) == "boom"
    assert "boom" in caplog.text  # the traceback is in the log, next to the id


@pytest.mark.parametrize("sent", ["client-abc.123:x_Y-9", "a", "f" * 64])
def test_sane_client_request_id_is_echoed(client: TestClient, sent: str) -> None:
    ok = client.get("/ok", headers={"X-Request-ID": sent})
    assert ok.headers["x-request-id"] == sent
    response = client.get("/invalid-video", headers={"X-Request-ID": sent})
    assert response.status_code == 422
    assert response.headers["x-request-id"] == sent
    assert response.json()["instance"] == f"urn:reelserve:request:{sent}"
    boom = client.get("/boom", headers={"X-Request-ID": sent})
    assert boom.status_code == 500 and boom.json()["instance"] == f"urn:reelserve:request:{sent}"
    assert sent in boom.json()["detail"]


@pytest.mark.parametrize("sent", ["x" * 200, "f" * 65, "has spaces", "semi;colon", "new\tline", "ünïcode", ""])
def test_insane_client_request_id_is_replaced(client: TestClient, sent: str) -> None:
    response = client.get("/invalid-video", headers={"X-Request-ID": sent.encode("utf-8")})
    rid = response.headers["x-request-id"]
    assert rid != sent and HEX_ID.match(rid)
    assert response.json()["instance"] == f"urn:reelserve:request:{rid}"
    assert response.headers.get_list("x-request-id") == [rid]


class ServeReplicaContext:
    """Outermost ASGI layer standing in for a Serve replica: it serves each request under Serve's request
    context with the id of its `x-request-id` header (Serve's proxy always sets one), as the replica does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from ray.serve.context import _set_request_context, _unset_request_context

        headers = dict(scope.get("headers") or [])
        _set_request_context(request_id=headers.get(b"x-request-id", b"").decode("latin-1"))
        try:
            await self.app(scope, receive, send)
        finally:
            _unset_request_context()


@pytest.fixture(scope="module")
def serve_client() -> TestClient:
    from serve_app.observability.logs import serve_request_id

    app = build_app()

    @app.get("/serve-id")
    async def serve_id() -> dict[str, str]:
        return {"carried": serve_request_id()}  # what the handle calls made here would carry

    with TestClient(ServeReplicaContext(app), raise_server_exceptions=False) as c:
        yield c


def test_under_serve_its_request_id_names_the_problem_and_is_not_echoed_twice(serve_client: TestClient) -> None:
    sent = "0f5c2a8e-8d1b-4c1e-9a53-6f2b7c1d9e00"  # the shape of an id Serve's proxy makes
    response = serve_client.get("/invalid-video", headers={"X-Request-ID": sent})
    assert response.status_code == 422
    assert response.json()["instance"] == f"urn:reelserve:request:{sent}"
    assert "x-request-id" not in response.headers  # Serve's proxy adds the one header
    assert serve_client.get("/serve-id", headers={"X-Request-ID": sent}).json() == {"carried": sent}


@pytest.mark.parametrize("sent", ["x" * 200, "has spaces", "semi;colon"])
def test_under_serve_an_insane_request_id_is_replaced_for_the_chunks_too(serve_client: TestClient, sent: str) -> None:
    response = serve_client.get("/serve-id", headers={"X-Request-ID": sent})
    rid = response.headers["x-request-id"]
    assert HEX_ID.match(rid)
    assert response.json() == {"carried": rid}  # the calls to the Chunker and VLM carry the new id
    problem = serve_client.get("/invalid-video", headers={"X-Request-ID": sent})
    assert problem.json()["instance"] == f"urn:reelserve:request:{problem.headers['x-request-id']}"


# -- options_from_form (serve_app/http/intake.py) -----------------------------------------------------------


def test_form_unknown_field_is_an_options_error() -> None:
    with pytest.raises(OptionsError) as caught:
        options_from_form({"mode": "describe", "zebra": "1", "alpha": "2"})
    assert caught.value.errors == [
        {"loc": ["alpha"], "msg": "unknown form field"},
        {"loc": ["zebra"], "msg": "unknown form field"},
    ]


def test_form_schema_not_json_is_an_options_error() -> None:
    with pytest.raises(OptionsError) as caught:
        options_from_form({"mode": "custom", "prompt": "list the slides", "schema": "{not json"})
    [error] = caught.value.errors
    assert error["loc"] == ["schema"]
    assert error["msg"].startswith("not JSON: ")


def test_form_invalid_values_are_options_errors() -> None:
    with pytest.raises(OptionsError) as caught:
        options_from_form({"mode": "karaoke", "fps": "-1"})
    assert {tuple(e["loc"]) for e in caught.value.errors} >= {("mode",), ("fps",)}
    with pytest.raises(OptionsError):  # a model-level rule: custom needs a prompt
        options_from_form({"mode": "custom"})


def test_form_valid_fields_are_analyze_options() -> None:
    schema = {"type": "object", "properties": {"slides": {"type": "array", "items": {"type": "string"}}}}
    options = options_from_form(
        {
            "mode": "custom",
            "prompt": "list the slides",
            "schema": json.dumps(schema),
            "fps": "2.5",
            "sampling": "adaptive",
            "chunk_s": "30",
            "overlap_s": "0",
            "max_tokens": "256",
            "aggregate": "false",
        }
    )
    assert isinstance(options, AnalyzeOptions)
    assert options == AnalyzeOptions(
        mode="custom",
        prompt="list the slides",
        json_schema=schema,
        fps=2.5,
        sampling="adaptive",
        chunk_s=30,
        overlap_s=0,
        max_tokens=256,
        aggregate=False,
    )
    assert set(FORM_FIELDS) == set(AnalyzeOptions.model_fields) - {"json_schema"} | {"schema"}


def test_form_empty_and_non_text_fields_mean_the_default() -> None:
    # Browsers send empty inputs; a file part in a text field's name is not a value.
    options = options_from_form({"mode": "screen_share", "fps": "", "prompt": "", "chunk_s": b"30"})
    assert options == AnalyzeOptions(mode="screen_share")
    assert options.fps is None and options.chunk_s is None
