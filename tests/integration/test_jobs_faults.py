"""Jobs survive a killed VLM replica and a restarted Serve app, with every chunk exactly once."""

from __future__ import annotations

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

pytestmark = pytest.mark.integration


def replica_actors(deployment: str) -> list[str]:
    prefix = f"SERVE_REPLICA::reelserve#{deployment}#"
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]


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
