"""Overload, measured: 10x the configured capacity of concurrent analyses and job submissions (issue 16 item 6).

    .venv/bin/python bench/overload.py [--factor 10] [--set serve.ingress.max_queued_requests=8 ...]

Starts the local stack (Ray + the Serve app from serve_config.yaml, tiny model) with the configured
capacity: sync `POST /v1/analyze` runs `serve.max_analyses` requests per ingress replica at once (the
Ingress's own admission, serve_app.http.admission; Serve's queue limits on it never bind), the job queue
holds `jobs.max_running + jobs.max_queued`, and `serve.max_intakes` uploads are taken in at once.
A bounded load generator (httpx async, one connection per request, at most `--factor` x capacity of each
kind open at once) sends them all at once on 127.0.0.1: one-chunk clips, mode `ui`, no summary.
Every answer must be a 2xx or a problem+json 503 with Retry-After; anything else (other statuses, a 503
without the header or the body, a connection error) is a failure and is printed. Every accepted job must
then finish (succeeded). Memory (PSS by role, /dev/shm, object store: bench/memory.py) is measured before,
at peak and after; a good request's latency before and after. The last line is
`overload_failures=<n> overload_accepted_jobs_succeeded=<k>/<n> overload_total_pss_after_vs_before=<x>`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from common import cached, hardware
from memory import Sampler, snapshot, table

from serve_app.cli.local_stack import local_stack
from serve_app.config import ServeConfig, Settings, deep_merge
from serve_app.devtools.synthetic import write_video

FIELDS = {"mode": "ui", "aggregate": "false"}


@dataclass
class Outcome:
    kind: str  # "analyze" or "job"
    status: int | None  # None: no HTTP answer (connection error, timeout)
    seconds: float
    problem: str = ""  # what was wrong with the answer ("": nothing)
    refusal: str = ""  # a proper 503's problem type and detail's start (which limit refused it)
    job_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and (200 <= self.status < 300 or (self.status == 503 and not self.problem))


async def send(client: httpx.AsyncClient, kind: str, clip: bytes, gate: asyncio.Semaphore) -> Outcome:
    path = "/v1/analyze" if kind == "analyze" else "/v1/jobs"
    async with gate:
        started = time.perf_counter()
        try:
            r = await client.post(path, data=FIELDS, files={"file": ("clip.mp4", clip, "video/mp4")})
        except httpx.HTTPError as exc:
            return Outcome(kind, None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
    if r.status_code == 503:
        wrong = []
        if not r.headers.get("retry-after"):
            wrong.append("no Retry-After")
        if not r.headers.get("content-type", "").startswith("application/problem+json"):
            wrong.append(f"content-type {r.headers.get('content-type')!r}: {r.text[:120]!r}")
        if wrong:
            return Outcome(kind, 503, seconds, "; ".join(wrong))
        body = r.json()
        detail = re.sub(r"\d+", "N", body["detail"])[:64]  # one line per limit, whatever the counts
        return Outcome(kind, 503, seconds, refusal=f"{body['type'].rsplit('/', 1)[-1]}: {detail}")
    if 200 <= r.status_code < 300:
        return Outcome(kind, r.status_code, seconds, job_id=r.json()["id"] if kind == "job" else None)
    return Outcome(kind, r.status_code, seconds, f"{r.headers.get('content-type')}: {r.text[:160]!r}")


async def storm(url: str, clip: bytes, analyses: int, jobs: int) -> list[Outcome]:
    """All requests at once; the semaphores bound what is open (the generator itself stays bounded)."""
    limits = httpx.Limits(max_connections=analyses + jobs, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as client:
        gate_a, gate_j = asyncio.Semaphore(analyses), asyncio.Semaphore(jobs)
        tasks = [send(client, "analyze", clip, gate_a) for _ in range(analyses)]
        tasks += [send(client, "job", clip, gate_j) for _ in range(jobs)]
        return list(await asyncio.gather(*tasks))


def wait_jobs(http: httpx.Client, ids: list[str], timeout_s: float) -> Counter[str]:
    deadline, pending, final = time.monotonic() + timeout_s, set(ids), Counter[str]()
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            status = http.get(f"/v1/jobs/{job_id}").json()["status"]
            if status in ("succeeded", "failed", "cancelled"):
                final[status] += 1
                pending.discard(job_id)
        time.sleep(1.0)
    final["unfinished"] += len(pending)
    return final


def good_request_s(http: httpx.Client, clip: bytes) -> float:
    started = time.perf_counter()
    r = http.post("/v1/analyze", data=FIELDS, files={"file": ("clip.mp4", clip, "video/mp4")})
    r.raise_for_status()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def summarize(outcomes: list[Outcome]) -> None:
    for kind in ("analyze", "job"):
        mine = [o for o in outcomes if o.kind == kind]
        codes = Counter(str(o.status) for o in mine)
        accepted = [o.seconds for o in mine if o.status is not None and 200 <= o.status < 300]
        refused = [o.seconds for o in mine if o.status == 503 and not o.problem]
        print(
            f"{kind:8} sent {len(mine)}: {dict(sorted(codes.items()))}; accepted {len(accepted)} "
            f"(p50 {percentile(accepted, 0.5):.2f} s, p99 {percentile(accepted, 0.99):.2f} s), "
            f"refused 503 {len(refused)} (p50 {percentile(refused, 0.5):.2f} s, p99 {percentile(refused, 0.99):.2f} s)"
        )
    refusals = Counter(f"{o.kind} {o.refusal}" for o in outcomes if o.refusal)
    for what, n in refusals.most_common():
        print(f"refused x{n}: {what}")
    failures = Counter(f"{o.kind} {o.status}: {o.problem}" for o in outcomes if not o.ok)
    for what, n in failures.most_common():
        print(f"FAILURE x{n}: {what}")


def parse_sets(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = int(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=10.0, help="multiple of the configured capacity to send")
    parser.add_argument("--settle-s", type=float, default=20.0, help="wait after the storm before measuring")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=INT", help="a capacity setting, e.g. jobs.max_queued=10"
    )
    args = parser.parse_args()

    clip = cached("overload-4s-160x128.mp4", lambda p: write_video(p, duration_s=4, fps=5, width=160, height=128))
    workdir = Path(tempfile.mkdtemp(prefix="reelserve-bench-overload-"))
    overrides = {"serve": {"store_dir": str(workdir / "store")}, "security": {"auth": "disabled"}}  # 127.0.0.1
    settings: Settings = ServeConfig.load(None).settings(deep_merge(overrides, parse_sets(args.set)))
    serve, jobs = settings.serve, settings.jobs
    replicas = serve.ingress.autoscaling.max_replicas
    analyze_capacity = serve.max_analyses * replicas
    job_capacity = jobs.max_running + jobs.max_queued
    analyses, submissions = int(args.factor * analyze_capacity), int(args.factor * job_capacity)
    print(f"hardware: {hardware()}")
    print(
        f"capacity: analyze {analyze_capacity} (serve.max_analyses {serve.max_analyses} x {replicas} ingress "
        f"replica(s)), jobs {job_capacity} (max_running {jobs.max_running} + max_queued {jobs.max_queued}), "
        f"intakes {serve.max_intakes * replicas} at once; sending x{args.factor:g}: {analyses} analyses + "
        f"{submissions} submissions at once"
    )
    data = clip.read_bytes()
    try:
        with local_stack(settings) as url, httpx.Client(base_url=url, timeout=900) as http:
            good_request_s(http, data)  # warm-up: engine, replicas
            before_s = statistics.median(good_request_s(http, data) for _ in range(3))
            time.sleep(args.settle_s)
            before = snapshot("before")
            with Sampler(2.0) as sampler:
                started = time.perf_counter()
                outcomes = asyncio.run(storm(url, data, analyses, submissions))
                storm_s = time.perf_counter() - started
                ids = [o.job_id for o in outcomes if o.job_id]
                finished = wait_jobs(http, ids, timeout_s=1200)
                jobs_s = time.perf_counter() - started
            time.sleep(args.settle_s)
            after = snapshot("after")
            after_s = statistics.median(good_request_s(http, data) for _ in range(3))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"storm answered in {storm_s:.1f} s; accepted jobs done {jobs_s:.1f} s after the start: {dict(finished)}")
    summarize(outcomes)
    print(f"good request (median of 3): {before_s:.2f} s before, {after_s:.2f} s after (x{after_s / before_s:.2f})")
    print(table(before, sampler.peak(), after))
    failures = sum(not o.ok for o in outcomes)
    print(
        f"overload_failures={failures} overload_accepted_jobs_succeeded={finished['succeeded']}/{len(ids)} "
        f"overload_total_pss_after_vs_before={after.total / before.total:.3f}"
    )


if __name__ == "__main__":
    main()
