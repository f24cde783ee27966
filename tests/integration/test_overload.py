"""Overload on loopback: bounded queues answer 503 + Retry-After, nothing else fails, accepted work completes."""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from serve_app.config import Settings
from tests.integration.jobs_client import submit, wait_for

pytestmark = pytest.mark.integration


def ray_rss_bytes() -> int:
    """Resident memory of this machine's Ray processes (raylet, workers, replicas)."""
    total = 0
    for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "ray::" in cmd or "raylet" in cmd or "default_worker" in cmd or "gcs_server" in cmd:
            total += proc.info["memory_info"].rss if proc.info["memory_info"] else 0
    return total


def test_sync_requests_beyond_the_queue_get_503_with_retry_after(
    http: httpx.Client, settings: Settings, small_4s_mp4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingress = settings.serve.ingress
    sent = 4 * (ingress.max_ongoing_requests + ingress.max_queued_requests)
    rss_before = ray_rss_bytes()

    def one(_: int) -> tuple[int, float, str | None]:
        started = time.perf_counter()
        with small_4s_mp4.open("rb") as fh:
            r = http.post("/v1/analyze", data={"aggregate": "false", "mode": "ui"}, files={"file": ("s.mp4", fh)})
        return r.status_code, time.perf_counter() - started, r.headers.get("retry-after")

    with ThreadPoolExecutor(max_workers=sent) as pool:
        outcomes = list(pool.map(one, range(sent)))
    codes = [code for code, _, _ in outcomes]
    accepted = [t for code, t, _ in outcomes if code == 200]
    refused = [(code, retry) for code, _, retry in outcomes if code != 200]
    assert set(codes) <= {200, 503}, codes
    assert refused and all(retry is not None and float(retry) > 0 for _, retry in refused)
    assert len(accepted) >= ingress.max_ongoing_requests
    growth = ray_rss_bytes() - rss_before
    assert growth < 1.5 * 1024**3, f"Ray processes grew by {growth / 1024**2:.0f} MiB under overload"
    p50, p99 = statistics.median(accepted), sorted(accepted)[max(0, int(len(accepted) * 0.99) - 1)]
    with capsys.disabled():  # the figures go in the closing note
        sys.stderr.write(
            f"\noverload: sent {sent}, accepted {len(accepted)}, refused {len(refused)} (503), "
            f"p50 {p50:.2f}s p99 {p99:.2f}s, Ray RSS growth {growth / 1024**2:.0f} MiB\n"
        )
    assert http.get("/readyz").status_code == 200


def test_job_submissions_beyond_the_durable_queue_are_refused_clearly(
    http: httpx.Client, settings: Settings, small_4s_mp4: Path
) -> None:
    sent = 3 * (settings.jobs.max_queued + settings.jobs.max_running)
    with ThreadPoolExecutor(max_workers=sent) as pool:
        responses = list(pool.map(lambda _: submit(http, small_4s_mp4, aggregate="false", mode="ui"), range(sent)))
    accepted = [r.json()["id"] for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code != 202]
    assert accepted and refused
    for r in refused:
        assert r.status_code == 503 and r.headers.get("retry-after"), r.text
    for job_id in accepted:
        assert wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"))["status"] == "succeeded"
