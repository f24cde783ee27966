"""`client.follow_job` over real HTTP on 127.0.0.1: reconnects with Last-Event-ID across stream windows,
and falls back to polling when streams keep failing (a proxy that answers 502 to them).

The server is uvicorn serving the real event stream (`serve_app.http.events.job_events`) and job record
of a real local job store; a thread writes the store the way the runner does. The integration suite
runs the same client against the whole Serve app.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from serve_app.cli import client
from serve_app.config import JobSettings
from serve_app.http import events
from serve_app.schemas import AnalyzeOptions, ChunkResult, Job, JobProgress
from serve_app.store.jobs import JobStore, new_job_id

SETTINGS = JobSettings(events_poll_s=0.02, events_keepalive_s=0.2, events_stream_s=0.4, events_retry_ms=50)
CHUNKS = 12


def build_api(store: JobStore, broken_streams: bool) -> FastAPI:
    api = FastAPI()

    @api.get("/v1/jobs/{job_id}/events")
    async def stream(job_id: str, last_event_id: str | None = Header(default=None)):
        if broken_streams:  # a proxy in front that does not pass event streams
            return PlainTextResponse("<html>502 Bad Gateway</html>", status_code=502)
        return StreamingResponse(
            events.job_events(store, job_id, SETTINGS, after=events.resume_point(last_event_id)),
            media_type="text/event-stream",
        )

    @api.get("/v1/jobs/{job_id}")
    async def record(job_id: str):
        return JSONResponse(store.get(job_id).model_dump(mode="json"))

    return api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=[False, True], ids=["streams", "broken-streams"])
def served_job(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, bool]]:
    store = JobStore(str(tmp_path / "store"))
    now = time.time()
    job = store.save(
        Job(id=new_job_id(), status="running", created_at=now, updated_at=now, request=AnalyzeOptions(), source="x")
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_api(store, request.param), host="127.0.0.1", port=port, log_level="error")
    )
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()

    def runner() -> None:
        nonlocal job
        for seq in range(CHUNKS):
            time.sleep(0.1)
            result = ChunkResult(index=(seq * 5) % CHUNKS, start_s=0, end_s=1, mode="ui", frame_times_s=[])
            store.save_chunk(job.id, seq, result, "e")
            job = store.save(job.model_copy(update={"progress": JobProgress(chunks_total=CHUNKS, chunks_done=seq + 1)}))
        store.save(job.model_copy(update={"status": "failed", "error": "too many chunks failed"}))

    writing = threading.Thread(target=runner)
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    writing.start()
    try:
        yield f"http://127.0.0.1:{port}", job.id, request.param
    finally:
        writing.join()
        server.should_exit = True
        serving.join(timeout=10)


def test_follow_job_resumes_across_windows_or_polls(served_job: tuple[str, str, bool]) -> None:
    server, job_id, broken = served_job
    got = list(client.follow_job(server, job_id, api_key="", poll_s=0.05))
    assert (got[-1].event, got[-1].data["status"], got[-1].data["error"]) == ("end", "failed", "too many chunks failed")
    chunk_ids = [e.id for e in got if e.event == "chunk"]
    if broken:  # three failed streams, then the job record every poll_s: progress, then the result
        assert chunk_ids == [] and {e.stream for e in got} == {-1}
        assert [e.data["progress"]["chunks_done"] for e in got if e.event == "progress"][-1] == CHUNKS
    else:  # 1.2 s of chunks through 0.4 s windows: several streams, each chunk once, in order
        assert chunk_ids == [str(n) for n in range(1, CHUNKS + 1)]
        assert len({e.stream for e in got}) >= 3
