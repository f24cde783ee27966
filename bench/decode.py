"""Decode + sample at 1 fps: reelserve's chunked decoder vs the ffmpeg CLI and a naive PyAV loop.

    .venv/bin/python bench/decode.py            # ~3-4 min on 2 cores (first run also generates the video)
    .venv/bin/python bench/decode.py --duration 60 --no-shared   # a quicker look

Inputs: a generated 1080p30 H.264 screen recording (x264 defaults: B-frames,
GOP 250; a frame counter in the corner) and the videos in ../shared/media.
Per video, the wall time of:
- ffmpeg:  `ffmpeg -i IN -vf fps=1 -f rawvideo -pix_fmt rgb24 -` (Debian's ffmpeg; output read and dropped);
- naive:   a PyAV loop decoding every frame, converting one per second;
- reelserve, sequential: `decode_chunk` over the planned 20 s chunks, one after the other;
- reelserve, parallel:   the same chunks on one worker process per core, one decoder thread each
                         (what Chunker replicas / Ray tasks do).
reelserve outputs frames at the planned size (what the model sees); ffmpeg at
the source size. Timestamp error: the frame counter read back from every
sampled frame against the timestamp reported for it, in source frames.
Ratios are against ffmpeg measured in the same run. Last line:
`decode_speedup_vs_ffmpeg=<x>` (parallel reelserve on the generated video).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
from common import SHARED_MEDIA, cached, hardware, timed

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import read_counter, write_screen_share
from serve_app.schemas import ChunkingOptions, ChunkPlan, VideoInfo
from serve_app.video import decode_chunk, plan_chunks, probe

SAMPLE_FPS = 1.0
SHARED = ("display-dual-monitors.webm", "vtest.avi", "Megamind.avi")


@dataclass
class ChunkOutcome:
    times: list[float]
    targets: list[float]
    decoded: int
    decode_s: float
    counter_error_frames: float | None  # max |shown frame - reported frame|, None without a counter


def decode_one(path: str, plan: ChunkPlan, threads: int, counter_size: tuple[int, int] | None) -> ChunkOutcome:
    """One chunk through reelserve's decoder; runs in a worker process for the parallel case."""
    chunk = decode_chunk(path, plan, threads)
    error = None
    if counter_size is not None:
        errors = [
            abs(read_counter(frame, *counter_size) - round(t * chunk.source_fps))
            for frame, t in zip(chunk.frames, chunk.frame_times_s, strict=True)
        ]
        error = float(max(errors))
    return ChunkOutcome(
        times=chunk.frame_times_s,
        targets=plan.target_times(),
        decoded=chunk.stats.frames_decoded,
        decode_s=chunk.stats.decode_s,
        counter_error_frames=error,
    )


def run_ffmpeg(path: Path) -> tuple[float, int]:
    """Wall seconds and frames of the ffmpeg CLI sampling at 1 fps to raw RGB."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", f"fps={SAMPLE_FPS:g}"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    started = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        total = 0
        while block := proc.stdout.read(1 << 22):
            total += len(block)
    elapsed = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed on {path.name} (exit {proc.returncode})")
    return elapsed, total


def run_naive(path: Path, width: int, height: int) -> tuple[float, int, int]:
    """Decode every frame with PyAV; convert the first frame at or after each 1 s tick."""
    started = time.perf_counter()
    decoded = kept = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        next_tick = 0.0
        for frame in container.decode(stream):
            decoded += 1
            if frame.time is not None and frame.time >= next_tick:
                frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
                kept += 1
                next_tick += 1 / SAMPLE_FPS
    return time.perf_counter() - started, decoded, kept


def plans_for(info: VideoInfo, settings: VideoSettings) -> list[ChunkPlan]:
    options = ChunkingOptions(
        chunk_s=settings.chunk_s,
        overlap_s=settings.overlap_s,
        fps=SAMPLE_FPS,
        token_budget=settings.token_budget,
        sampling="uniform",
        floor_s=settings.floor_s,
        change_threshold=settings.change_threshold,
    )
    return plan_chunks(info, options, settings)


def bench_video(path: Path, workers: int, counter: bool, pool: ProcessPoolExecutor) -> dict[str, float]:
    settings = VideoSettings()
    stages: dict[str, float] = {}
    with timed(stages, "probe"):
        info = probe(path, settings)
    with timed(stages, "plan"):
        plans = plans_for(info, settings)
    total_frames = info.frame_count or round(info.duration_s * info.fps)
    print(
        f"\n== {path.name}: {info.codec} {info.width}x{info.height} {info.fps:.2f} fps {info.duration_s:.1f} s "
        f"(~{total_frames} frames); {len(plans)} chunks of {settings.chunk_s:g} s at {plans[0].width}x{plans[0].height}"
    )
    print(f"   probe {stages['probe']:.3f} s, plan {stages['plan'] * 1000:.1f} ms")
    counter_size = (info.width, info.height) if counter else None

    ff_s, ff_bytes = run_ffmpeg(path)
    ff_frames = ff_bytes // (info.width * info.height * 3) if info.rotation == 0 else -1
    print(f"   ffmpeg CLI            {ff_s:7.2f} s  ({ff_frames} frames out)")
    naive_s, naive_decoded, naive_kept = run_naive(path, plans[0].width, plans[0].height)
    print(
        f"   naive PyAV loop       {naive_s:7.2f} s  x{ff_s / naive_s:5.2f} vs ffmpeg "
        f"(decoded {naive_decoded}, kept {naive_kept})"
    )
    results: dict[str, float] = {"ffmpeg": ff_s, "naive": naive_s}
    runs = [("sequential, FFmpeg threads", 0, False), ("sequential, 1 thread", 1, False)]
    runs.append((f"parallel, {workers} workers x 1 thread", 1, True))
    for label, threads, parallel in runs:
        started = time.perf_counter()
        if parallel:
            futures = [pool.submit(decode_one, str(path), plan, threads, counter_size) for plan in plans]
            outcomes = [f.result() for f in futures]
        else:
            outcomes = [decode_one(str(path), plan, threads, counter_size) for plan in plans]
        wall = time.perf_counter() - started
        decoded = sum(o.decoded for o in outcomes)
        sampled = sum(len(o.times) for o in outcomes)
        offsets = [abs(t - g) * info.fps for o in outcomes for t, g in zip(o.times, o.targets, strict=True)]
        errors = [o.counter_error_frames for o in outcomes if o.counter_error_frames is not None]
        error = f"{max(errors):.0f}" if errors else "n/a (no counter)"
        print(
            f"   reelserve {label:<27s} {wall:6.2f} s  x{ff_s / wall:5.2f} vs ffmpeg, x{naive_s / wall:5.2f} vs naive "
            f"| decoded {decoded} ({decoded / max(total_frames, 1):.0%} of the frames), sampled {sampled}, "
            f"sum of chunk decode {sum(o.decode_s for o in outcomes):.2f} s"
        )
        print(
            f"      timestamp error (counter vs reported): {error} frames; "
            f"max distance to target: {max(offsets):.2f} frames"
        )
        results[label] = wall
        results["error"] = max(errors) if errors else 0.0
    return results


def make_screen_recording(path: Path, duration_s: float) -> None:
    write_screen_share(
        path,
        duration_s=duration_s,
        fps=30,
        width=1920,
        height=1080,
        seed=0,
        counter=True,
        gop=250,
        encoder_options={"threads": "2"},
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180.0, help="length of the generated video (s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel decode processes")
    parser.add_argument("--no-shared", action="store_true", help="skip ../shared/media")
    args = parser.parse_args()

    print(f"hardware: {hardware()}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print(
            "ffmpeg CLI NOT FOUND: the baseline needs Debian's ffmpeg package (`sudo apt-get install -y ffmpeg`); "
            "nothing was measured.",
            file=sys.stderr,
        )
        return 2
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    print(f"baseline: {version}")

    generated = cached(f"screen-1080p30-{args.duration:g}s.mp4", lambda p: make_screen_recording(p, args.duration))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        # Start the workers before timing: Chunker replicas are long-lived.
        list(pool.map(int, range(args.workers)))
        main_result = bench_video(generated, args.workers, counter=True, pool=pool)
        shared: dict[str, dict[str, float]] = {}
        if not args.no_shared:
            for name in SHARED:
                if (SHARED_MEDIA / name).exists():
                    shared[name] = bench_video(SHARED_MEDIA / name, args.workers, counter=False, pool=pool)
                else:
                    print(f"\n(skipped {name}: not found in {SHARED_MEDIA})")

    parallel = [k for k in main_result if k.startswith("parallel")][0]
    print("\nsummary (speedup vs the ffmpeg CLI, same run):")
    for name, result in [(generated.name, main_result), *shared.items()]:
        print(
            f"   {name:<32s} parallel x{result['ffmpeg'] / result[parallel]:5.2f}  "
            f"1 thread x{result['ffmpeg'] / result['sequential, 1 thread']:5.2f}  "
            f"naive x{result['ffmpeg'] / result['naive']:5.2f}"
        )
    print(f"max timestamp error on {generated.name}: {main_result['error']:.0f} source frames")
    print(f"decode_speedup_vs_ffmpeg={main_result['ffmpeg'] / main_result[parallel]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
