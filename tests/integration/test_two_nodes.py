"""Two Ray nodes that share nothing but the store: sync analyze, a job with its event stream and an
archive run all succeed with the Chunker, ASR and VLM replicas (and decode tasks) on the other node;
and a store that is node-local fails fast with a clear problem, not a hang or a 500.

One cluster for the module (`tests/integration/two_nodes.py`), separate from the session's; the app
is redeployed once, for the misconfiguration case, at the end.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pyarrow.parquet as pq
import pytest

from serve_app.schemas import ChunkResult, VideoAnalysis
from tests.integration import two_nodes
from tests.integration.conftest import free_port
from tests.integration.jobs_client import events, submit

if TYPE_CHECKING:
    from conftest import Meeting

pytestmark = pytest.mark.integration
LOG = logging.getLogger(__name__)  # the figures the closing note quotes: run with --log-cli-level=INFO

PIN_WORKER = {"resources": {two_nodes.WORKER: 1}}
PIN_HEAD = {"resources": {two_nodes.HEAD: 1}}


def overrides(store: str, store_dir: Path, port: int) -> dict[str, Any]:
    return {
        "jobs": {"store_uri": store},
        "security": {"auth": "disabled"},  # 127.0.0.1 only
        "serve": {
            "port": port,
            "store_dir": str(store_dir),  # node-local to the head: the worker cannot see it
            "ingress": PIN_HEAD,
            "aggregator": PIN_HEAD,
            "chunker": PIN_WORKER,
            "asr": PIN_WORKER | {"autoscaling": {"max_replicas": 1}},
            "vlm": PIN_WORKER,
        },
        "data": {"decode_resources": {two_nodes.WORKER: 1}, "probe_tasks": 1, "decode_tasks": 1},
    }


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shared store: outside pytest's temporary root (which the worker cannot see), so both nodes see
    it at the same path (an RWX volume's stand-in)."""
    root = two_nodes.REPO_ROOT / ".tmp" / f"two-nodes-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Iterator[tuple[two_nodes.TwoNodes, Path]]:
    local = tmp_path_factory.mktemp("head-local")  # under pytest's temporary root: the head's alone
    nodes = two_nodes.start(free_port(), free_port(), local / "logs", masked=tmp_path_factory.getbasetemp())
    try:
        port = int(nodes.url.rsplit(":", 1)[1])
        two_nodes.driver(nodes.address, "deploy", json.dumps(overrides(str(shared / "store"), local / "store", port)))
        two_nodes.wait_ready(nodes.url)
        yield nodes, local
    finally:
        nodes.stop()


@pytest.fixture(scope="module")
def http(cluster: tuple[two_nodes.TwoNodes, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster[0].url, timeout=600) as client:
        yield client


def test_replicas_run_where_they_are_pinned(cluster: tuple[two_nodes.TwoNodes, Path]) -> None:
    nodes = {n["id"]: n["resources"] for n in two_nodes.driver(cluster[0].address, "nodes")}
    head = next(i for i, r in nodes.items() if two_nodes.HEAD in r)
    worker = next(i for i, r in nodes.items() if two_nodes.WORKER in r)
    placement = two_nodes.driver(cluster[0].address, "placement")
    LOG.info(
        f"head {head[:12]} worker {worker[:12]}: "
        + ", ".join(f"{d}@{[n[:12] for n in ns]}" for d, ns in placement.items())
    )
    for name in ("Chunker", "ASR", "VLM"):
        assert set(placement[name]) == {worker}, (name, placement)
    for name in ("Ingress", "Aggregator"):
        assert set(placement[name]) == {head}, (name, placement)


def test_sync_analyze_across_nodes(http: httpx.Client, meeting: Meeting) -> None:
    with meeting.path.open("rb") as fh:
        response = http.post(
            "/v1/analyze",
            data={"mode": "ui", "chunk_s": "10", "overlap_s": "0", "aggregate": "false"},
            files={"file": ("meeting.mp4", fh, "video/mp4")},
        )
    assert response.status_code == 200, response.text
    analysis = VideoAnalysis.model_validate(response.json())
    assert [c.index for c in analysis.chunks] == [0, 1, 2, 3] and all(c.ok for c in analysis.chunks)
    assert analysis.transcript is not None and len(analysis.transcript.segments) >= 5  # ASR on the worker
    LOG.info(f"sync: {len(analysis.chunks)} chunks ok, {len(analysis.transcript.segments)} transcript segments")


def test_a_job_and_its_events_across_nodes(http: httpx.Client, meeting: Meeting, shared: Path) -> None:
    response = submit(http, meeting.path, mode="ui", chunk_s=5, overlap_s=0, aggregate="false")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    stream = events(http, job_id, timeout_s=600)
    chunks = [ChunkResult.model_validate(data) for kind, data in stream if kind == "chunk"]
    assert sorted(c.index for c in chunks) == list(range(8)), "every chunk exactly once"
    assert stream[-1][0] == "result" and all(c.ok for c in chunks)
    job_dir = shared / "store" / "jobs" / job_id
    # The result and, for the player (jobs.keep_media), the video: on the shared store, for any node.
    assert (job_dir / "result.json").is_file() and (job_dir / "media").exists()
    assert not list((shared / "store" / "uploads").iterdir())  # and no upload is left behind
    LOG.info(f"job {job_id}: {len(chunks)} chunk events, each once")


def test_an_archive_run_across_nodes(
    cluster: tuple[two_nodes.TwoNodes, Path], shared: Path, meeting: Meeting, media_dir: Path
) -> None:
    inputs = shared / "archive-in"
    inputs.mkdir()
    shutil.copy(meeting.path, inputs / "meeting.mp4")
    shutil.copy(media_dir / "display-dual-monitors.webm", inputs / "screen.webm")
    out = shared / "archive-out"
    env = {
        **two_nodes.driver_env(),
        "REELSERVE_DATA__DECODE_RESOURCES": json.dumps({two_nodes.WORKER: 1}),
        "REELSERVE_DATA__PROBE_TASKS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "data_jobs.archive", "--input", str(inputs), "--output", str(out), "--mode", "ui",
         "--chunk-s", "10", "--no-aggregate", "--address", cluster[0].address],
        env=env, capture_output=True, text=True, timeout=900, cwd=two_nodes.REPO_ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["videos"]["ok"] == 2 and report["videos"]["failed"] == 0, report
    chunks = [r for f in (out / "chunks").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    keys = [(r["video_id"], r["index"]) for r in chunks]
    assert len(keys) == len(set(keys)) == report["chunks"]["inferred"] and all(r["error"] is None for r in chunks)
    LOG.info(f"archive: {report['videos']}, {len(chunks)} chunks, each once")


def test_a_node_local_store_fails_fast_with_a_clear_problem(
    cluster: tuple[two_nodes.TwoNodes, Path], http: httpx.Client, meeting: Meeting
) -> None:
    """Redeploy with the store in the head's node-local folder (which the worker cannot see): a 503 problem
    at once."""
    nodes, local = cluster
    port = int(nodes.url.rsplit(":", 1)[1])
    bad = overrides(str(local / "node-local-store"), local / "store", port)
    two_nodes.driver(nodes.address, "deploy", json.dumps(bad))
    two_nodes.wait_ready(nodes.url)
    with meeting.path.open("rb") as fh:
        response = http.post(
            "/v1/analyze", data={"mode": "ui"}, files={"file": ("m.mp4", fh, "video/mp4")}, timeout=120
        )
    assert response.status_code == 503 and response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/store-not-shared") and "every node" in problem["detail"], problem
    assert "retry-after" in {k.lower() for k in response.headers}
    LOG.info(f"misconfigured store: {response.status_code} {json.dumps(problem)}")
    assert http.get("/healthz").status_code == 200
