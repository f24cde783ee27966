"""A job's event stream over a real (local) job store: ids, Last-Event-ID, keep-alives, the stream window.

The store is written the way the runner writes it (chunk file n, then the record counting it); the stream
is read with httpx-sse's decoder, the parser the CLI uses.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml
from httpx_sse._decoders import SSEDecoder

from serve_app.config import JobSettings
from serve_app.http.events import TIMEOUT_HEADROOM, job_events, resume_point, stream_window_s
from serve_app.schemas import AnalyzeOptions, ChunkResult, Job, JobProgress
from serve_app.store.jobs import JobStore, new_job_id
from tests.conftest import REPO_ROOT

FAST = JobSettings(events_poll_s=0.02, events_keepalive_s=0.1, events_stream_s=30, events_retry_ms=250)


def new_job(store: JobStore) -> Job:
    now = time.time()
    job = Job(id=new_job_id(), status="running", created_at=now, updated_at=now, request=AnalyzeOptions(), source="x")
    return store.save(job)


def finish_chunk(store: JobStore, job: Job, index: int) -> Job:
    """What the runner does per chunk: chunk file n, then the record that counts it."""
    seq = job.progress.chunks_done
    store.save_chunk(job.id, seq, ChunkResult(index=index, start_s=0, end_s=1, mode="ui", frame_times_s=[]), "e")
    return store.save(job.model_copy(update={"progress": JobProgress(chunks_total=5, chunks_done=seq + 1)}))


def parse(raw: bytes) -> tuple[list[tuple[str, str | None, str]], list[str], list[int]]:
    """(events as (event, id field of its own block, data), comments, retry values) of a raw stream."""
    decoder, out, comments, retries = SSEDecoder(), [], [], []
    own_id = None
    for line in raw.decode().split("\n"):
        if line.startswith(":"):
            comments.append(line)
        if line.startswith("id:"):
            own_id = line.partition(":")[2].strip()
        sse = decoder.decode(line)
        if sse is None:
            continue
        if sse.retry is not None:
            retries.append(sse.retry)
        if sse.data:
            out.append((sse.event, own_id, sse.data))
        own_id = None
    return out, comments, retries


async def collect(store: JobStore, job_id: str, **kw) -> bytes:
    return b"".join([part async for part in job_events(store, job_id, FAST, **kw)])


def test_last_event_id_resumes_after_the_chunks_the_client_has(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    job = new_job(store)
    for index in (3, 0, 4, 1):  # finishing order is not plan order
        job = finish_chunk(store, job, index)
    store.save(job.model_copy(update={"status": "failed", "error": "gave up"}))
    first, _, _ = parse(asyncio.run(collect(store, job.id)))
    assert [(e, i) for e, i, _ in first if e == "chunk"] == [
        ("chunk", "1"),
        ("chunk", "2"),
        ("chunk", "3"),
        ("chunk", "4"),
    ]
    assert first[-1][0] == "end" and '"failed"' in first[-1][2]
    resumed, _, _ = parse(asyncio.run(collect(store, job.id, after=resume_point("2"))))
    chunks = [(i, data) for e, i, data in resumed if e == "chunk"]
    assert [i for i, _ in chunks] == ["3", "4"], "exactly the chunks after the 2nd"
    assert [ChunkResult.model_validate_json(d).index for _, d in chunks] == [4, 1]
    assert [e for e, _, _ in resumed if e == "progress"], "a resumed stream opens with the current progress"


def test_unusable_last_event_ids_repeat_rather_than_lose() -> None:
    assert [resume_point(v) for v in (None, "", "7", " 7 ", "-3", "chunk-4", "result")] == [0, 0, 7, 7, 0, 0, 0]


def test_quiet_streams_get_keep_alives_and_end_their_window_cleanly(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    job = finish_chunk(store, new_job(store), 2)
    started = time.monotonic()
    raw = asyncio.run(collect(store, job.id, window_s=0.6))
    took = time.monotonic() - started
    events, comments, retries = parse(raw)
    assert 0.5 <= took < 1.5, took
    assert [e for e, _, _ in events] == ["chunk", "progress"], "no final event: the client reconnects"
    assert sum(c == ": keep-alive" for c in comments) >= 3, comments  # 0.1 s keep-alives over ~0.6 s
    assert raw.startswith(b"retry: 250\n\n") and raw.endswith(b"retry: 250\n\n"), raw[-120:]
    assert "Last-Event-ID: 1" in comments[-1] and retries == [250, 250]


def test_window_follows_a_shorter_request_timeout() -> None:
    settings = JobSettings(events_stream_s=600)
    assert stream_window_s(settings, None) == 600
    assert stream_window_s(settings, "900") == 600
    assert stream_window_s(settings, "10") == pytest.approx(8.0)
    assert stream_window_s(settings, "0") == 600, "non-positive: Serve disables its timeout"
    assert stream_window_s(settings, "soon") == 600


def test_a_stream_follows_a_running_job_to_its_result(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    job = new_job(store)

    async def run() -> bytes:
        async def runner() -> None:
            nonlocal job
            for index in range(5):
                await asyncio.sleep(0.05)
                job = await asyncio.to_thread(finish_chunk, store, job, index)
            await asyncio.to_thread(store.save, job.model_copy(update={"status": "cancelled"}))

        task = asyncio.create_task(runner())
        raw = await collect(store, job.id)
        await task
        return raw

    events, _, _ = parse(asyncio.run(run()))
    assert [i for e, i, _ in events if e == "chunk"] == ["1", "2", "3", "4", "5"]
    assert events[-1][0] == "end"


def test_a_deleted_job_ends_its_stream(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    job = new_job(store)
    store.delete(job.id)
    events, _, _ = parse(asyncio.run(collect(store, job.id)))
    assert [(e, i) for e, i, _ in events] == [("end", "end")] and '"deleted"' in events[0][2]


@pytest.mark.parametrize(
    "config", ["serve_config.yaml", "k8s/overlays/gpu/serve-config.yaml", "k8s/overlays/cpu-dev/serve-config.yaml"]
)
def test_streams_end_before_serve_cuts_them(config: str) -> None:
    """Every shipped serve config closes its event streams before its own `request_timeout_s`."""
    doc = yaml.safe_load((REPO_ROOT / config).read_text())
    timeout = doc["http_options"]["request_timeout_s"]
    jobs = JobSettings(**(doc["applications"][0].get("args", {}).get("jobs") or {}))
    assert jobs.events_stream_s + jobs.events_poll_s < timeout * (1 - TIMEOUT_HEADROOM), (config, timeout)
