"""Archive job vs a sequential HTTP client: the same videos, model and machine, in one run.

    .venv/bin/python bench/archive.py [--minutes 4]

Starts the local stack (Ray + the Serve app from serve_config.yaml), warms
the engine with one request, then processes the same folder (a) one video at
a time through `POST /v1/analyze` — what a simple batch script does — and (b)
with the archive job (Ray Data decode tasks + batched requests to the same
VLM deployment). The last line is `archive_speedup_vs_sequential=<x>`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from data_jobs.archive import run
from serve_app.cli import client
from serve_app.cli.local_stack import local_stack
from serve_app.config import ServeConfig
from serve_app.devtools.synthetic import write_sample_video, write_video
from serve_app.schemas import AnalyzeOptions
from serve_app.video import probe

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def build_corpus(root: Path, minutes: float) -> list[Path]:
    """The shared media plus generated clips until about `minutes` of video."""
    root.mkdir(parents=True, exist_ok=True)
    videos = [shutil.copy(p, root / p.name) for p in sorted(SHARED_MEDIA.glob("*")) if p.suffix in {".webm", ".avi"}]
    total = sum(probe(v, ServeConfig.load(None).settings().video).duration_s for v in videos)
    index = 0
    while total < minutes * 60:
        path = root / f"generated-{index}.mp4"
        if index % 2:
            write_video(path, duration_s=45.0, fps=15, width=960, height=540)
        else:
            write_sample_video(path, duration_s=60.0)
        total += probe(path, ServeConfig.load(None).settings().video).duration_s
        videos.append(path)
        index += 1
    return [Path(v) for v in videos]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="minutes of video in the corpus")
    parser.add_argument("--mode", default="screen_share")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="reelserve-bench-archive-"))
    try:
        videos = build_corpus(workdir / "in", args.minutes)
        cfg = ServeConfig.load(None)
        # A local benchmark on 127.0.0.1: no API key, explicitly.
        settings = cfg.settings({"serve": {"store_dir": str(workdir / "store")}, "security": {"auth": "disabled"}})
        video_s = sum(probe(v, settings.video).duration_s for v in videos)
        print(f"machine: {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}")
        print(f"corpus: {len(videos)} videos, {video_s / 60:.1f} min of video, mode {args.mode}")
        options = AnalyzeOptions(mode=args.mode)
        with local_stack(settings) as url:
            client.analyze(url, str(videos[-1]), options)  # warm-up: engine caches, replicas scaled

            started = time.perf_counter()
            for video in videos:
                client.analyze(url, str(video), options)
            sequential_s = time.perf_counter() - started
            print(f"sequential HTTP client: {sequential_s:.1f} s ({video_s / sequential_s:.2f} video-s/s)")

            started = time.perf_counter()
            report = run(str(workdir / "in"), str(workdir / "out"), settings, options.model_dump(by_alias=True))
            archive_s = time.perf_counter() - started
            assert report["videos"]["ok"] == len(videos), report
            print(f"archive job:            {archive_s:.1f} s ({video_s / archive_s:.2f} video-s/s)")
        print(f"archive_speedup_vs_sequential={sequential_s / archive_s:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
