"""Jobs survive a killed VLM replica, a killed JobRunner and a restarted Serve app, with every chunk exactly
once; a cancel is final."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import ray
from ray import serve

from serve_app.app import build_graph
from serve_app.config import Settings, job_store_uri
from serve_app.schemas import VideoAnalysis
from serve_app.store.jobs import JobStore
from tests.integration.jobs_client import submit, wait_for
from tests.integration.replicas import chunker_stats, decodes_since, replica_actors, wait_until_idle

pytestmark = pytest.mark.integration


def check_exactly_once(http: httpx.Client, store: JobStore, job_id: str, chunks: int) -> VideoAnalysis:
    analysis = VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job_id}/result").json())
    assert [c.index for c in analysis.chunks] == list(range(chunks)), "every chunk present exactly once"
    assert sorted(c.result.index for c in store.load_chunks(job_id)) == list(range(chunks))
    return analysis


def test_killed_vlm_replica(http: httpx.Client, settings: Settings, clip_240s_mp4: Path) -> None:
    # A structured mode: the tiny random model never ends free text (describe chunks are cut off, by design
    # of the answer budgets), and this test is about the killed replica, not about answers.
    response = submit(http, clip_240s_mp4, chunk_s=4, overlap_s=0, aggregate="false", mode="ui")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    wait_for(http, job_id, lambda j: j["progress"]["chunks_done"] >= 3)
    (victim,) = replica_actors("VLM")
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    job = wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"), timeout_s=600)
    assert job["status"] == "succeeded", job
    assert replica_actors("VLM") and replica_actors("VLM") != [victim], "Serve replaced the dead replica"
    analysis = check_exactly_once(http, JobStore(job_store_uri(settings)), job_id, 60)
    # Chunks in flight when the replica died were retried, not lost: at most a few may have failed for good.
    assert analysis.stats.chunks_failed <= 2
    assert http.get("/readyz").status_code == 200


def seq_of(key: str) -> int:
    return int(key.rsplit("/", 1)[1].removesuffix(".json"))


def test_killed_job_runner_resumes_every_chunk_exactly_once(
    http: httpx.Client, settings: Settings, clip_240s_mp4: Path
) -> None:
    """The JobRunner's actor dies while chunks are being recorded (a chunk file, then the job record, per
    chunk): its replacement resumes the job from the store; nothing torn, nothing twice, nothing lost."""
    store = JobStore(job_store_uri(settings))
    response = submit(http, clip_240s_mp4, chunk_s=4, overlap_s=0, aggregate="false", mode="ui")
    job_id = response.json()["id"]
    wait_for(http, job_id, lambda j: j["progress"]["chunks_done"] >= 3)
    (victim,) = replica_actors("JobRunner")
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    before = {stored.result.index: stored for stored in store.load_chunks(job_id)}  # every file parses
    assert 3 <= len(before) < 60, "killed mid-job"
    job = wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"), timeout_s=600)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert replica_actors("JobRunner") and replica_actors("JobRunner") != [victim], "Serve replaced the runner"
    check_exactly_once(http, store, job_id, 60)
    # Chunk files are numbered 0..n-1 without a gap or a repeat, each whole (they all parse), and the
    # chunks stored before the kill were kept as they were, not redone by the new runner.
    assert [seq_of(key) for key in store.chunk_keys(job_id)] == list(range(60))
    after = {stored.result.index: stored for stored in store.load_chunks(job_id)}
    assert all(after[i] == stored for i, stored in before.items())
    assert len({stored.epoch for stored in after.values()}) == 2
    assert job["progress"]["chunks_done"] == 60 and http.get("/readyz").status_code == 200


def test_cancel_while_chunks_are_in_flight_is_final(
    http: httpx.Client, settings: Settings, clip_240s_mp4: Path, clip_9s_mp4: Path
) -> None:
    """Cancelled mid-run, or right after submission (while the scheduler may be starting it): the status
    stays "cancelled" through later scheduler passes, and no chunk is decoded or recorded after the cancel."""
    store = JobStore(job_store_uri(settings))
    running = submit(http, clip_240s_mp4, chunk_s=4, overlap_s=0, aggregate="false", mode="ui").json()["id"]
    wait_for(http, running, lambda j: j["progress"]["chunks_done"] >= 2)
    fresh = [
        submit(http, clip_9s_mp4, chunk_s=3, overlap_s=0, aggregate="false", mode="ui").json()["id"] for _ in range(2)
    ]
    for job_id in [running, *fresh]:
        response = http.delete(f"/v1/jobs/{job_id}")
        assert response.status_code == 200 and response.json()["status"] == "cancelled", response.text
    stored = {job_id: len(store.chunk_keys(job_id)) for job_id in [running, *fresh]}
    assert stored[running] < 60
    idle = wait_until_idle()  # the decodes in flight were cancelled; nothing new starts
    time.sleep(5 * settings.jobs.scheduler_poll_s)  # several scheduler passes
    assert decodes_since(idle, chunker_stats()) == 0
    for job_id, count in stored.items():
        job = http.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "cancelled", job
        assert len(store.chunk_keys(job_id)) == count == job["progress"]["chunks_done"], job
        assert http.delete(f"/v1/jobs/{job_id}").status_code == 409


def test_restarted_app_resumes_without_redoing_chunks(
    http: httpx.Client, settings: Settings, clip_240s_mp4: Path
) -> None:
    store = JobStore(job_store_uri(settings))
    response = submit(http, clip_240s_mp4, chunk_s=4, overlap_s=0, aggregate="false", mode="ui")
    job_id = response.json()["id"]
    wait_for(http, job_id, lambda j: j["progress"]["chunks_done"] >= 5)
    serve.delete("reelserve")  # the whole app goes away mid-job, JobRunner included
    before = {stored.result.index: stored for stored in store.load_chunks(job_id)}
    assert 5 <= len(before) < 60
    serve.run(build_graph(settings), name="reelserve", route_prefix="/")
    job = wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"), timeout_s=600)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    check_exactly_once(http, store, job_id, 60)
    after = {stored.result.index: stored for stored in store.load_chunks(job_id)}
    # The chunks finished before the restart were not re-inferred: same records, same (old) runner epoch.
    assert all(after[i] == stored for i, stored in before.items())
    new_epochs = {stored.epoch for i, stored in after.items() if i not in before}
    assert len(new_epochs) == 1 and new_epochs.isdisjoint({s.epoch for s in before.values()})
