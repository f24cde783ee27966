"""Soak: one long job through the real stack, memory before, at peak and after (issue 16 item 4).

    .venv/bin/python bench/soak.py [--minutes 32] [--mode describe] [--vlm-env MALLOC_ARENA_MAX=2 ...]

Starts the local stack (Ray + the Serve app from serve_config.yaml, tiny model), runs a short warm-up job
(the engine's first requests allocate for good: that is its idle level, not growth), measures, submits
one job over a generated video of `--minutes` (32 min at the default 20 s chunks and 1 s overlap: 102
chunks), samples memory while it runs, and measures again `--settle-s` after it ended. Memory is PSS by
role from /proc/<pid>/smaps_rollup (bench/memory.py), /dev/shm, and the Ray object store (`ray memory`).
Goal: after within 10% of before, and the engine's PSS flat over the second half of the job (its slope,
MiB per chunk, is printed); the peak per quarter of the chunks of the engine and of the object store's live
objects shows whether the working set stays level as the video goes on. Totals come with and without shared
memory (plasma pages), and for the processes present both before and after (a replica the autoscaler started
during the job is not growth). The last line is
`soak_engine_core_pss_after_vs_before=<x> soak_vlm_replica_pss_after_vs_before=<x> soak_total_pss_after_vs_before=<x>
soak_total_noshm_after_vs_before=<x> soak_same_processes_after_vs_before=<x>
soak_same_processes_noshm_after_vs_before=<x> soak_engine_mib_per_100_chunks=<x>`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from common import cached, hardware
from memory import ENGINE_CORE, ENGINE_ROLES, MIB, VLM_REPLICA, Sampler, Snapshot, snapshot, table

from serve_app.cli.local_stack import local_stack
from serve_app.config import ServeConfig
from serve_app.devtools.synthetic import write_video


def make_video(minutes: float) -> Path:
    # 640x360 at 5 fps: every frame differs (a frame counter), so adaptive sampling keeps full chunks.
    return cached(
        f"soak-{minutes:g}min-640x360-5fps.mp4",
        lambda p: write_video(p, duration_s=minutes * 60, fps=5, width=640, height=360),
    )


def run_job(http: httpx.Client, video: Path, fields: dict[str, str], sampler: Sampler | None = None) -> dict:
    with video.open("rb") as fh:
        r = http.post("/v1/jobs", data=fields, files={"file": (video.name, fh, "video/mp4")})
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if sampler is not None:
            sampler.note(str(job["progress"]["chunks_done"]))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=32.0, help="length of the generated video")
    parser.add_argument("--mode", default="describe")
    parser.add_argument("--settle-s", type=float, default=20.0, help="wait after a job before measuring")
    parser.add_argument("--sample-s", type=float, default=2.0, help="memory sampling interval during the job")
    parser.add_argument(
        "--vlm-env", action="append", default=[], metavar="KEY=VALUE", help="extra env var of the VLM replica"
    )
    args = parser.parse_args()

    soak_video, warm_video = make_video(args.minutes), make_video(2)
    workdir = Path(tempfile.mkdtemp(prefix="reelserve-bench-soak-"))
    vlm_env = dict(item.split("=", 1) for item in args.vlm_env)
    overrides = {
        "serve": {"store_dir": str(workdir / "store"), "vlm": {"env_vars": vlm_env}},
        "security": {"auth": "disabled"},  # 127.0.0.1 only
    }
    settings = ServeConfig.load(None).settings(overrides)
    fields = {"mode": args.mode}
    print(f"hardware: {hardware()}")
    print(
        f"video: {args.minutes:g} min 640x360 5 fps H.264, mode {args.mode}, chunk {settings.video.chunk_s:g} s "
        f"overlap {settings.video.overlap_s:g} s; object store {settings.serve.object_store_bytes / MIB:,.0f} MiB; "
        f"VLM env {settings.serve.vlm.env_vars}"
    )
    try:
        with local_stack(settings) as url, httpx.Client(base_url=url, timeout=600) as http:
            started = time.perf_counter()
            warm = run_job(http, warm_video, fields)
            print(
                f"warm-up job ({warm['progress']['chunks_total']} chunks): {warm['status']} in "
                f"{time.perf_counter() - started:.1f} s"
            )
            time.sleep(args.settle_s)
            before = snapshot("before")

            started = time.perf_counter()
            with Sampler(args.sample_s) as sampler:
                job = run_job(http, soak_video, fields, sampler)
            wall_s = time.perf_counter() - started
            progress = job["progress"]
            print(
                f"soak job: {job['status']}, {progress['chunks_done']} chunks ({progress['chunks_failed']} failed) "
                f"in {wall_s:.0f} s ({progress['chunks_done'] / wall_s:.2f} chunks/s)"
            )
            time.sleep(args.settle_s)
            after = snapshot("after")
            peak = sampler.peak()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(table(before, peak, after))
    total = progress["chunks_total"]

    def per_quarter(figure: Callable[[Snapshot], int]) -> str:
        """The peak of `figure` within each quarter of the chunks: a working set stays level, a leak climbs."""
        points = [(int(s.note), figure(s)) for s in sampler.samples if s.note.isdigit()]
        out = []
        for q in (0.25, 0.5, 0.75, 1.0):
            at = [value for done, value in points if (q - 0.25) * total < done <= q * total]
            out.append(f"{int(q * 100)}% {max(at) / MIB:,.0f}" if at else f"{int(q * 100)}% -")
        return ", ".join(out)

    # The engine: the VLM replica (AsyncLLM) and its EngineCore process together.
    print(
        "engine (VLM replica + EngineCore) peak PSS MiB per quarter of the chunks: "
        f"{per_quarter(lambda s: sum(s.pss.get(r, 0) for r in ENGINE_ROLES))}"
    )
    print(f"object store live objects, peak MiB per quarter: {per_quarter(lambda s: s.store_used)}")
    print(f"/dev/shm used, peak MiB per quarter: {per_quarter(lambda s: s.dev_shm_used)}")
    points = [(int(s.note), sum(s.pss.get(r, 0) for r in ENGINE_ROLES)) for s in sampler.samples if s.note.isdigit()]
    second_half = [(done, pss) for done, pss in points if done >= total / 2]
    slope = 0.0
    if len({done for done, _ in second_half}) > 2:
        x, y = np.array(second_half, dtype=float).T
        slope = float(np.polyfit(x, y, 1)[0]) / MIB
    print(f"engine PSS slope over the second half: {slope:.2f} MiB per chunk")
    same = before.pids() & after.pids()  # a replica started (or stopped) during the job is not growth

    def private(snap: Snapshot) -> int:
        return snap.of(same) - snap.of(same, "Pss_Shmem")

    print(
        f"soak_engine_core_pss_after_vs_before={after.pss.get(ENGINE_CORE, 0) / before.pss[ENGINE_CORE]:.3f} "
        f"soak_vlm_replica_pss_after_vs_before={after.pss.get(VLM_REPLICA, 0) / before.pss[VLM_REPLICA]:.3f} "
        f"soak_total_pss_after_vs_before={after.total / before.total:.3f} "
        f"soak_total_noshm_after_vs_before={after.total_private / before.total_private:.3f} "
        f"soak_same_processes_after_vs_before={after.of(same) / before.of(same):.3f} "
        f"soak_same_processes_noshm_after_vs_before={private(after) / private(before):.3f} "
        f"soak_engine_mib_per_100_chunks={slope * 100:.0f}"
    )


if __name__ == "__main__":
    main()
