"""The ingress's own bound on expensive work (serve_app/http/admission.py), alone and behind real HTTP."""

from __future__ import annotations

import asyncio

import fastapi
import httpx
import pytest

from serve_app.errors import PROBLEM_BASE, Overloaded
from serve_app.http.admission import Admission
from serve_app.http.problems import PROBLEM_JSON, install_problem_handlers


def test_a_slot_is_given_back_however_the_block_ends() -> None:
    admission = Admission(2, "uploads")
    with admission.slot(), admission.slot():
        assert admission.active == 2
        with pytest.raises(Overloaded, match=r"2 uploads are already in progress on this replica \(at most 2\)"):
            with admission.slot():
                pass
        assert admission.active == 2, "a refusal takes nothing"
    with pytest.raises(RuntimeError), admission.slot():
        raise RuntimeError("the request failed")
    assert admission.active == 0
    with admission.slot():
        assert admission.active == 1


def test_a_limit_below_one_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        Admission(0, "analyses")


def test_over_the_limit_a_request_gets_problem_json_503_at_once_and_cheap_routes_still_answer() -> None:
    """Two analyses hold the two places; the third is refused with the documented problem (not left
    waiting), /healthz answers meanwhile, and a place is free again once one finishes."""

    async def scenario() -> None:
        app = fastapi.FastAPI()
        install_problem_handlers(app, retry_after_s=lambda: 7)
        admission = Admission(2, "synchronous analyses")
        release = asyncio.Event()

        @app.post("/analyze")
        async def analyze() -> dict[str, int]:
            with admission.slot():
                await release.wait()
                return {"active": admission.active}

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            held = [asyncio.create_task(client.post("/analyze")) for _ in range(2)]
            while admission.active < 2:
                await asyncio.sleep(0.01)
            refused = await asyncio.wait_for(client.post("/analyze"), timeout=5)
            assert refused.status_code == 503
            assert refused.headers["content-type"].startswith(PROBLEM_JSON)
            assert refused.headers["retry-after"] == "7"
            body = refused.json()
            assert body["type"] == f"{PROBLEM_BASE}overloaded" and "at most 2" in body["detail"]
            assert (await client.get("/healthz")).status_code == 200
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            assert admission.active == 0
            release.clear()
            again = asyncio.create_task(client.post("/analyze"))
            while admission.active < 1:
                await asyncio.sleep(0.01)
            release.set()
            assert (await again).status_code == 200

    asyncio.run(scenario())
