"""Bad option combinations and deep custom schemas get a precise 422 problem at the edge, never a 500
(issue 16): the real intake (serve_app/http/intake.py) behind a real FastAPI app with the problem handlers,
over HTTP (Starlette's TestClient), for both bodies: multipart upload and JSON with a URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastapi
import pytest
from starlette.testclient import TestClient

from serve_app.analysis.modes import MAX_CUSTOM_SCHEMA_DEPTH
from serve_app.config import Settings
from serve_app.errors import PROBLEM_BASE
from serve_app.http.fetch import UrlPolicy
from serve_app.http.intake import receive_video
from serve_app.http.problems import PROBLEM_JSON, install_problem_handlers
from serve_app.schemas import AnalyzeOptions

SETTINGS = Settings(security={"auth": "disabled"})
DEFAULT_CHUNK_S = SETTINGS.video.chunk_s
DEFAULT_OVERLAP_S = SETTINGS.video.overlap_s
# Refused by policy before any connection: a good request gets this far, and no further.
FORBIDDEN_URL = "http://127.0.0.1:9/video.mp4"


def nested_schema(depth: int) -> dict[str, Any]:
    """A valid object schema `depth` (>= 3) levels deep, as `check_custom_schema` counts (objects, arrays)."""
    schema: dict[str, Any] = {"type": "string"} if depth % 2 else {"type": "object", "properties": {}}
    for _ in range((depth - 1) // 2 if depth % 2 else (depth - 2) // 2):
        schema = {"type": "object", "properties": {"a": schema}}  # two levels: the object and its properties
    return schema


def brackets(depth: int) -> str:
    """A JSON text nested `depth` arrays deep inside an object schema (what a hostile client sends)."""
    return '{"type": "object", "default": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    root = tmp_path_factory.mktemp("intake")
    app = fastapi.FastAPI()
    install_problem_handlers(app, retry_after_s=lambda: 3)

    async def no_engine_check(schema: dict[str, Any]) -> None:
        return None

    @app.post("/v1/analyze")
    async def analyze(request: fastapi.Request) -> dict[str, Any]:
        intake = await receive_video(
            request, root / "upload.bin", SETTINGS, UrlPolicy.from_settings(SETTINGS.security), no_engine_check
        )
        return {"source": intake.source, "options": intake.options.model_dump(by_alias=True, exclude_none=True)}

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def upload(client: TestClient, **fields: str) -> Any:
    return client.post("/v1/analyze", files={"file": ("clip.mp4", b"\0" * 64)}, data=fields)


def analyze_url(client: TestClient, body: dict[str, Any] | str) -> Any:
    content = body if isinstance(body, str) else json.dumps({"video_url": FORBIDDEN_URL, **body})
    return client.post("/v1/analyze", content=content, headers={"content-type": "application/json"})


def invalid_options(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == PROBLEM_BASE + "invalid-options"
    assert "Invalid JSON" not in body["detail"]
    return body


# -- chunk length and overlap, validated together ------------------------------------------------------------

BAD_PAIRS = [
    ({"chunk_s": "10", "overlap_s": "10"}, "overlap_s (10 s) must be at most half of chunk_s (10 s)"),
    ({"chunk_s": "10", "overlap_s": "25"}, "overlap_s (25 s) must be at most half of chunk_s (10 s)"),
    ({"chunk_s": "10", "overlap_s": "5.5"}, "overlap_s (5.5 s) must be at most half of chunk_s (10 s)"),
    # One side from the request, the other the server's default: named as such.
    ({"overlap_s": "15"}, f"overlap_s (15 s) must be at most half of chunk_s ({DEFAULT_CHUNK_S:g} s) (chunk_s: the"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_PAIRS)
def test_clashing_chunk_and_overlap_are_a_precise_422_on_both_paths(
    client: TestClient, fields: dict[str, str], message: str
) -> None:
    assert message in invalid_options(upload(client, **fields))["detail"]
    numbers = {k: float(v) for k, v in fields.items()}
    assert message in invalid_options(analyze_url(client, numbers))["detail"]


@pytest.mark.parametrize(
    "fields",
    [
        {"chunk_s": "2"},  # the documented minimum with the default overlap (1 s: exactly half)
        {"chunk_s": "10", "overlap_s": "5"},  # exactly half
        {"chunk_s": "2", "overlap_s": "0"},
        {"overlap_s": str(DEFAULT_CHUNK_S / 2)},
    ],
)
def test_overlap_up_to_half_the_chunk_is_accepted(client: TestClient, fields: dict[str, str]) -> None:
    response = upload(client, **fields)
    assert response.status_code == 200, response.text
    options = AnalyzeOptions.model_validate(response.json()["options"])
    assert options.chunk_s == (float(fields["chunk_s"]) if "chunk_s" in fields else None)
    # The JSON path gets past validation to the URL policy (the URL is refused before any connection).
    response = analyze_url(client, {k: float(v) for k, v in fields.items()})
    assert response.status_code == 400 and response.json()["type"] == PROBLEM_BASE + "url-forbidden"


# -- custom schema depth, bounded before any recursive processing ------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_CUSTOM_SCHEMA_DEPTH + 1, 100, 5_000, 20_000])
def test_deep_schema_text_is_a_precise_422_on_both_paths(client: TestClient, depth: int) -> None:
    message = f"schema nests {depth} levels deep; at most {MAX_CUSTOM_SCHEMA_DEPTH} are accepted"
    text = brackets(depth)
    body = invalid_options(upload(client, mode="custom", prompt="fill the schema", schema=text))
    assert body["errors"] == [{"loc": ["schema"], "msg": message}]
    body_json = f'{{"video_url": "{FORBIDDEN_URL}", "mode": "custom", "prompt": "p", "schema": {text}}}'
    body = invalid_options(analyze_url(client, body_json))
    assert body["errors"] == [{"loc": ["schema"], "msg": message}]


def test_valid_100_deep_schema_is_too_deep_not_invalid_json(client: TestClient) -> None:
    schema = nested_schema(100)
    message = f"schema nests 100 levels deep; at most {MAX_CUSTOM_SCHEMA_DEPTH} are accepted"
    body = invalid_options(upload(client, mode="custom", prompt="p", schema=json.dumps(schema)))
    assert body["errors"][0]["msg"] == message
    body = invalid_options(analyze_url(client, {"mode": "custom", "prompt": "p", "schema": schema}))
    assert body["errors"][0]["msg"] == message


def test_schema_of_the_maximal_depth_is_accepted(client: TestClient) -> None:
    schema = nested_schema(MAX_CUSTOM_SCHEMA_DEPTH)
    response = upload(client, mode="custom", prompt="p", schema=json.dumps(schema))
    assert response.status_code == 200, response.text
    assert response.json()["options"]["schema"] == schema
    response = analyze_url(client, {"mode": "custom", "prompt": "p", "schema": schema})
    assert response.status_code == 400 and response.json()["type"] == PROBLEM_BASE + "url-forbidden"


def test_deep_nesting_outside_the_schema_is_named(client: TestClient) -> None:
    text = f'{{"video_url": "{FORBIDDEN_URL}", "prompt": {"[" * 3000 + "]" * 3000}}}'
    body = invalid_options(analyze_url(client, text))
    assert body["errors"][0]["loc"] == ["prompt"]
    assert "only 'schema' may nest" in body["errors"][0]["msg"]


def test_service_answers_normally_after_the_bad_inputs(client: TestClient, tmp_path: Path) -> None:
    for _ in range(2):
        invalid_options(upload(client, mode="custom", prompt="p", schema=brackets(30_000)))
        invalid_options(upload(client, chunk_s="4", overlap_s="4"))
    response = upload(client, mode="describe", chunk_s="2")
    assert response.status_code == 200 and response.json()["options"]["chunk_s"] == 2
