"""Overload on loopback: bounded queues answer 503 + Retry-After, nothing else fails, accepted work completes."""

from __future__ import annotations

import socket
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from serve_app.config import Settings, job_store_uri
from serve_app.store.jobs import JobStore
from tests.integration.jobs_client import submit, wait_for
from tests.integration.replicas import chunker_poll, chunker_stats, decodes_since, wait_until_idle

pytestmark = pytest.mark.integration


def ray_rss_bytes() -> int:
    """Resident memory of this machine's Ray processes (raylet, workers, replicas)."""
    total = 0
    for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "ray::" in cmd or "raylet" in cmd or "default_worker" in cmd or "gcs_server" in cmd:
            total += proc.info["memory_info"].rss if proc.info["memory_info"] else 0
    return total


def test_sync_requests_beyond_the_admission_limit_get_problem_json_503_with_retry_after(
    http: httpx.Client, settings: Settings, small_4s_mp4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """4x the ingress's analyses at once: each is answered 200 or with the documented `overloaded` problem
    (never Serve's text/plain refusal), health checks answer throughout, memory stays put."""
    limit = settings.serve.max_analyses
    sent = 4 * limit
    rss_before = ray_rss_bytes()

    def one(_: int) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        with small_4s_mp4.open("rb") as fh:
            r = http.post("/v1/analyze", data={"aggregate": "false", "mode": "ui"}, files={"file": ("s.mp4", fh)})
        return r, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=sent) as pool:
        storm = [pool.submit(one, i) for i in range(sent)]
        health = []
        while not all(f.done() for f in storm):
            started = time.perf_counter()
            health.append((http.get("/healthz").status_code, time.perf_counter() - started))
            time.sleep(0.2)
        outcomes = [f.result() for f in storm]
    accepted = [t for r, t in outcomes if r.status_code == 200]
    refused = [r for r, _ in outcomes if r.status_code != 200]
    assert {r.status_code for r in refused} <= {503}, [r.text for r in refused if r.status_code != 503]
    for r in refused:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["type"].endswith("/overloaded") and f"at most {limit}" in r.json()["detail"], r.text
        assert float(r.headers["retry-after"]) > 0
    assert refused and len(accepted) >= limit
    assert health and all(code == 200 for code, _ in health), health
    growth = ray_rss_bytes() - rss_before
    assert growth < 1.5 * 1024**3, f"Ray processes grew by {growth / 1024**2:.0f} MiB under overload"
    p50, p99 = statistics.median(accepted), sorted(accepted)[max(0, int(len(accepted) * 0.99) - 1)]
    worst_health = max(s for _, s in health)
    with capsys.disabled():  # the figures go in the closing note
        sys.stderr.write(
            f"\noverload: sent {sent}, accepted {len(accepted)}, refused {len(refused)} (503 overloaded), "
            f"p50 {p50:.2f}s p99 {p99:.2f}s, /healthz worst {worst_health:.2f}s, Ray RSS growth "
            f"{growth / 1024**2:.0f} MiB\n"
        )
    assert worst_health < 5, "health checks were held up behind the analyses"
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


# -- one long synchronous analysis among short ones (issue 16, item 2) ----------------------------------
LONG_SYNC = {"mode": "ui", "chunk_s": "4", "overlap_s": "0", "aggregate": "false"}  # 280 s: 70 chunks


def analyze(http: httpx.Client, path: Path, **fields: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    with path.open("rb") as fh:
        response = http.post("/v1/analyze", data=fields, files={"file": (path.name, fh, "application/octet-stream")})
    return response, time.perf_counter() - started


def test_a_long_sync_video_does_not_starve_short_ones_and_leaves_no_work_behind(
    http: httpx.Client, settings: Settings, clip_280s_mp4: Path, small_4s_mp4: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = {"mode": "ui", "aggregate": "false"}
    alone = []
    for _ in range(3):
        response, seconds = analyze(http, small_4s_mp4, **small)
        assert response.status_code == 200, response.text
        alone.append(seconds)
    before = wait_until_idle()
    with ThreadPoolExecutor(max_workers=5) as pool:
        long = pool.submit(analyze, http, clip_280s_mp4, **LONG_SYNC)
        deadline = time.monotonic() + 60
        while decodes_since(before, chunker_stats()) < settings.flow.chunks_in_flight:
            assert time.monotonic() < deadline and not long.done(), "the long analysis never got going"
            time.sleep(0.2)
        # Short requests while the long one keeps its window full: two waves of four at once.
        shorts = []
        for _ in range(2):
            shorts += list(pool.map(lambda _: analyze(http, small_4s_mp4, **small), range(4)))
        long_still_running = not long.done()
        long_response, long_s = long.result()
    assert long_response.status_code == 200, long_response.text
    assert len(long_response.json()["chunks"]) == 70 and long_still_running
    assert all(r.status_code == 200 for r, _ in shorts), [r.text for r, _ in shorts if r.status_code != 200]
    loaded = [s for _, s in shorts]
    base, p50, worst = statistics.median(alone), statistics.median(loaded), max(loaded)
    with capsys.disabled():
        sys.stderr.write(
            f"\nsync fairness: short request alone p50 {base:.2f}s; beside a 70-chunk sync analysis "
            f"p50 {p50:.2f}s, max {worst:.2f}s ({p50 / base:.1f}x); the long one took {long_s:.1f}s\n"
        )
    # Two cores: the long video's decodes and engine steps share the CPU, so some slowdown is physics; being
    # queued behind its chunks (the old behaviour: seconds to tens of seconds) is what must not happen.
    assert p50 <= 3 * base + 1.0 and worst <= 5 * base + 2.0, (alone, loaded)
    assert decodes_since(before, wait_until_idle()) == 70 + len(shorts), "every chunk decoded once, no more"


def test_a_sync_video_over_the_limit_is_refused_and_sent_to_jobs(
    http: httpx.Client, settings: Settings, clip_280s_mp4: Path
) -> None:
    before = wait_until_idle()
    response, _ = analyze(http, clip_280s_mp4, mode="ui", chunk_s="2", overlap_s="0", aggregate="false")
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/too-long-for-sync") and body["alternate"] == "/v1/jobs", body
    assert f"at most {settings.flow.sync_max_chunks}" in body["detail"] and "140 chunks" in body["detail"]
    assert decodes_since(before, chunker_stats()) == 0, "nothing was decoded for a refused request"


def arrived(sock: socket.socket) -> bytes:
    """What the server has sent so far, without waiting: b"" if nothing (a closed connection says so)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(4096) or b"<the server closed the connection>"
    except BlockingIOError:
        return b""
    finally:
        sock.settimeout(timeout)


def send_and_hang_up(http: httpx.Client, path: Path, until: Callable[[], bool], **fields: str) -> None:
    """POST /v1/analyze on a raw socket, then close it once `until()` holds: a client that goes away while
    the analysis runs (fails if an answer came first)."""
    with path.open("rb") as fh:
        request = http.build_request("POST", "/v1/analyze", data=fields, files={"file": (path.name, fh)})
        body = request.read()
    head = [f"POST {request.url.raw_path.decode()} HTTP/1.1", f"Host: {request.url.netloc.decode()}"]
    head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    with socket.create_connection((request.url.host, request.url.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        deadline = time.monotonic() + 60
        while not until():
            assert not (answer := arrived(sock)), f"answered before it got going: {answer[:300]!r}"
            assert time.monotonic() < deadline, "the request never got going"
            time.sleep(0.01)
        assert not (answer := arrived(sock)), f"answered before the client went away: {answer[:100]!r}"


def test_a_client_that_goes_away_leaves_no_decode_or_upload_behind(
    http: httpx.Client, settings: Settings, clip_280s_mp4: Path, small_4s_mp4: Path
) -> None:
    """The client hangs up once its window of chunks is going (`window` decodes started: chunks finish and
    new ones start, the state in which a cancelled chunk call once left its siblings decoding all 70; a
    hang-up at the first decode never showed it). A cheap poll makes the hang-up land at ~`window` decodes
    whatever the machine's speed, and only the chunks then in flight may still be decoded after it."""
    store = JobStore(job_store_uri(settings))
    uploads = set(store.files.list("uploads"))
    before = wait_until_idle()
    window = settings.flow.chunks_in_flight
    poll = chunker_poll()  # a few ms a call (`chunker_stats` lists the actors too: up to ~0.1 s under load)
    seen = [0]

    def window_going() -> bool:
        seen.append(decodes_since(before, poll()))
        return seen[-1] >= window

    send_and_hang_up(http, clip_280s_mp4, window_going, **LONG_SYNC)
    gone_at, at_hang_up = time.monotonic(), seen[-1]
    in_all = decodes_since(before, wait_until_idle())
    after = in_all - at_hang_up
    # Stopped at once: the chunk calls in flight (at most `window`) may still decode, and a few more may have
    # been granted while the cancel spread (measured: 0-3 after; ~0.1 s from hang-up to the handler's
    # cancel); the 60-odd chunks still to come must not. They once all were: Serve cancels a cancelled
    # request's child calls pending assignment, one chunk call ended first, and `gather` left the rest running.
    assert after <= window + window // 2, (
        f"{after} chunks decoded after the client went away ({at_hang_up} before it did, {in_all} of 70 in all; "
        f"at most {window} were in flight)"
    )
    assert in_all < 70, f"every chunk was decoded: the client went away too late ({at_hang_up} decodes)"
    assert time.monotonic() - gone_at < 30
    assert set(store.files.list("uploads")) <= uploads, "the abandoned request's upload was left behind"
    response, _ = analyze(http, small_4s_mp4, mode="ui", aggregate="false")
    assert response.status_code == 200, response.text
