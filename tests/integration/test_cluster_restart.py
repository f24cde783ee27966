"""The whole Ray cluster dies mid-job (every process killed at once, as a power cut or OOM of the node
would), and a new cluster with the same store resumes the job: every chunk exactly once, none torn.

A cluster of its own (`two_nodes.start_head`: one head in its own process group), separate from the
session's: killing its process group stops exactly it (never `ray stop`, which stops every cluster on
the machine). The app is deployed by a short-lived driver, as `serve deploy` would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from serve_app.store.jobs import JobStore
from tests.integration import two_nodes
from tests.integration.conftest import free_port
from tests.integration.jobs_client import submit, wait_for

pytestmark = pytest.mark.integration


def kill_cluster(head: subprocess.Popen, gcs_port: int) -> None:
    """SIGKILL to the cluster's process group, then to any of its processes that left the group (found by
    the cluster's own temp dir on their command line): nothing of it may survive."""
    os.killpg(head.pid, signal.SIGKILL)
    head.wait()
    marker = f"/tmp/rs2n-{gcs_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
        if not left:
            return
        for proc in left:
            proc.kill()
        time.sleep(1)
    raise AssertionError(f"processes of the killed cluster survive: {left}")


def deploy(address: str, store: Path, port: int) -> str:
    overrides = {
        "serve": {"store_dir": str(store), "port": port},
        "security": {"auth": "disabled"},  # 127.0.0.1 only
        "asr": {"enabled": False},  # the clip has no audio: no Whisper replica to start
    }
    two_nodes.driver(address, "deploy", json.dumps(overrides))
    url = f"http://127.0.0.1:{port}"
    two_nodes.wait_ready(url)
    return url


def test_a_job_survives_the_whole_cluster_dying_mid_job(tmp_path: Path, clip_280s_mp4: Path) -> None:
    store_dir, logs = tmp_path / "store", tmp_path / "logs"
    store = JobStore(str(store_dir / "jobs-store"))  # the default store under serve.store_dir
    gcs_port, http_port = free_port(), free_port()
    head, address = two_nodes.start_head(gcs_port, logs, cpus=3)
    try:
        url = deploy(address, store_dir, http_port)
        with httpx.Client(base_url=url, timeout=120) as http:
            response = submit(http, clip_280s_mp4, mode="ui", chunk_s=2, overlap_s=0, aggregate="false")
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            wait_for(http, job_id, lambda j: j["progress"]["chunks_done"] >= 5)
    finally:
        kill_cluster(head, gcs_port)
    before = {stored.result.index: stored for stored in store.load_chunks(job_id)}  # every file parses
    assert 5 <= len(before) < 140, "killed mid-job"
    assert store.get(job_id).status == "running"

    gcs_port = free_port()
    head, address = two_nodes.start_head(gcs_port, logs, cpus=3)
    try:
        url = deploy(address, store_dir, http_port)
        with httpx.Client(base_url=url, timeout=120) as http:
            job = wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"), timeout_s=600)
            result = http.get(f"/v1/jobs/{job_id}/result")
    finally:
        kill_cluster(head, gcs_port)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert [c["index"] for c in result.json()["chunks"]] == list(range(140)), "every chunk exactly once"
    keys = store.chunk_keys(job_id)
    assert [int(key.rsplit("/", 1)[1].removesuffix(".json")) for key in keys] == list(range(140))
    after = {stored.result.index: stored for stored in store.load_chunks(job_id)}
    assert sorted(after) == list(range(140))
    assert all(after[i] == stored for i, stored in before.items()), "chunks done before the crash were kept"
    assert len({stored.epoch for stored in after.values()}) == 2
