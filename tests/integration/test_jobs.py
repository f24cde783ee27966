"""Async jobs over real HTTP: submit, stream events (SSE), result, list, cancel, idempotency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serve_app.config import Settings, job_store_uri
from serve_app.schemas import ChunkResult, Job, VideoAnalysis
from serve_app.store.jobs import JobStore
from tests.integration.jobs_client import events, submit, wait_for
from tests.integration.serve_logs import chunk_lines, serve_log_records

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clips(clip_60s_mp4: Path, clip_280s_mp4: Path) -> dict[str, Path]:
    return {"medium": clip_60s_mp4, "long": clip_280s_mp4}


def test_job_streams_every_chunk_then_the_result(http: httpx.Client, clips: dict[str, Path]) -> None:
    response = submit(http, clips["medium"], mode="screen_share", chunk_s=10, overlap_s=0)
    assert response.status_code == 202, response.text
    job = Job.model_validate(response.json())
    assert response.headers["location"] == f"/v1/jobs/{job.id}" and job.status == "queued"
    assert job.progress.chunks_total == 0 or job.progress.chunks_total == 6
    stream = events(http, job.id)
    chunks = [ChunkResult.model_validate(data) for kind, data in stream if kind == "chunk"]
    assert sorted(c.index for c in chunks) == list(range(6)), "every chunk exactly once"
    assert all(c.ok and c.mode == "screen_share" for c in chunks)
    assert any(kind == "progress" for kind, _ in stream)
    kind, final = stream[-1]
    assert kind == "result"
    analysis = VideoAnalysis.model_validate(final)
    assert analysis == VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job.id}/result").json())
    assert [c.index for c in analysis.chunks] == list(range(6)) and analysis.summary is not None
    done = Job.model_validate(http.get(f"/v1/jobs/{job.id}").json())
    assert done.status == "succeeded" and done.finished_at >= done.started_at >= done.created_at
    assert (done.progress.chunks_done, done.progress.chunks_total, done.progress.chunks_failed) == (6, 6, 0)
    assert done.progress.video_s_done == pytest.approx(60.0, abs=0.5) and done.video.duration_s == pytest.approx(60)
    listed = http.get("/v1/jobs", params={"limit": 5}).json()["jobs"]
    assert listed[0]["id"] == job.id
    # The job's chunks ran after its submit request ended: their log lines name the job.
    assert chunk_lines(serve_log_records(), job.id, analysis.video_id) == set(range(6))


def test_cancel_stops_a_running_job(http: httpx.Client, settings: Settings, clips: dict[str, Path]) -> None:
    response = submit(http, clips["long"], chunk_s=2, overlap_s=0, aggregate="false")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for(http, job_id, lambda j: j["progress"]["chunks_done"] >= 2)
    cancelled = http.delete(f"/v1/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    store = JobStore(job_store_uri(settings))
    count = len(store.chunk_keys(job_id))
    time.sleep(3)
    assert len(store.chunk_keys(job_id)) == count < 140, "no chunk finished after cancellation"
    assert not store.has_media(job_id), "a cancelled job keeps no video (only succeeded ones do, for playback)"
    assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    result = http.get(f"/v1/jobs/{job_id}/result")
    assert result.status_code == 409 and result.json()["type"].endswith("/job-conflict")
    again = http.delete(f"/v1/jobs/{job_id}")
    assert again.status_code == 409
    kind, data = events(http, job_id)[-1]
    assert (kind, data["status"]) == ("end", "cancelled")


def test_idempotency_key_returns_the_same_job(http: httpx.Client, clips: dict[str, Path]) -> None:
    key = {"Idempotency-Key": f"test-{time.time()}"}
    first = submit(http, clips["medium"], headers=key, aggregate="false")
    second = submit(http, clips["medium"], headers=key, aggregate="false")
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    wait_for(http, first.json()["id"], lambda j: j["status"] == "succeeded")


def test_one_idempotency_key_from_concurrent_clients_makes_one_job(
    http: httpx.Client, settings: Settings, small_4s_mp4: Path
) -> None:
    key = {"Idempotency-Key": f"concurrent-{time.time()}"}
    store = JobStore(job_store_uri(settings))
    jobs_before = set(store.list_ids())
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: submit(http, small_4s_mp4, headers=key, mode="ui"), range(6)))
    codes = sorted(r.status_code for r in responses)
    # One request made the job (202); the others got it (200) or, while it was being taken in, 409.
    assert codes.count(202) == 1 and set(codes) <= {200, 202, 409}, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses if r.status_code in (200, 202)}
    assert len(ids) == 1 and set(store.list_ids()) - jobs_before == ids
    for r in responses:
        if r.status_code == 409:
            assert r.json()["type"].endswith("/job-conflict")
    (job_id,) = ids
    assert wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"))["status"] == "succeeded"
    again = submit(http, small_4s_mp4, headers=key, mode="ui")  # a late retry gets the same job
    assert again.status_code == 200 and again.json()["id"] == job_id


def test_job_errors_are_problems(http: httpx.Client, tmp_path: Path) -> None:
    missing = http.get("/v1/jobs/ffffffffffff000000000000")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert http.get("/v1/jobs/..%2F..%2Fetc").status_code == 404
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    response = submit(http, bad)
    assert response.status_code == 422 and response.json()["type"].endswith("/invalid-video")
