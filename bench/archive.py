"""Archive job vs a sequential HTTP client: the same videos, engine settings and machine, in one run.

    .venv/bin/python bench/archive.py [--minutes 4] [--orders both]

Processes one corpus (every clip of ../shared/media plus distinct generated
screen shares, about `--minutes` of video; sha256 checked, duplicates fail
the run) two ways: (a) one video at a time through `POST /v1/analyze` — what
a simple batch script does — and (b) with the archive job (Ray Data decode
tasks + batched requests to the VLM deployment). Each side runs in its own
process on its own freshly started local stack (Ray + the Serve app from
serve_config.yaml, the same settings object for both sides), with its own
result store, media cache, search cache and vLLM cache folder, and the
corpus dropped from the OS page cache first: no side inherits warm caches
from the other. Neither side gets a warm-up request; the clock starts once
the stack is up (engine load excluded on both sides). With `--orders both`
(the default) the pair runs in both orders (sequential first, then archive
first) and each order's ratio is printed. Last line:
`archive_speedup_vs_sequential=<x>` (total sequential time / total archive
time over the orders run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from data_jobs.archive import run
from serve_app.cli import client
from serve_app.cli.local_stack import local_stack
from serve_app.config import ServeConfig, Settings
from serve_app.devtools.synthetic import write_screen_share
from serve_app.schemas import AnalyzeOptions
from serve_app.video import probe

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
SIDES = {"s": "sequential", "a": "archive"}


def build_corpus(root: Path, minutes: float) -> list[Path]:
    """Every clip of the shared media plus distinct generated screen shares until about `minutes` of video."""
    root.mkdir(parents=True, exist_ok=True)
    video_settings = ServeConfig.load(None).settings().video
    real = [p for p in sorted(SHARED_MEDIA.glob("*")) if p.suffix.lower() in {".webm", ".avi", ".mp4", ".mkv"}]
    videos = [Path(shutil.copy(p, root / p.name)) for p in real]
    total = sum(probe(v, video_settings).duration_s for v in videos)
    seed = 0
    while total < minutes * 60:
        path = root / f"generated-{seed}.mp4"
        # A seed of its own per file: another script and other pages, so no two files are alike.
        write_screen_share(
            path, duration_s=40.0, fps=10.0, width=960, height=540, seed=500 + seed, encoder_options={"threads": "2"}
        )
        total += probe(path, video_settings).duration_s
        videos.append(path)
        seed += 1
    return videos


def check_unique(videos: list[Path]) -> None:
    """Fail when two files of the corpus have the same content (a duplicate would flatter a cache)."""
    names: dict[str, list[str]] = defaultdict(list)
    for video in videos:
        with video.open("rb") as f:
            names[hashlib.file_digest(f, "sha256").hexdigest()].append(video.name)
    duplicates = [group for group in names.values() if len(group) > 1]
    if duplicates:
        raise SystemExit(f"duplicate files in the corpus (same sha256): {duplicates}")


def drop_from_page_cache(videos: list[Path]) -> None:
    """Evict the corpus from the OS page cache, so neither side reads what the other side loaded."""
    for video in videos:
        fd = os.open(video, os.O_RDONLY)
        try:
            os.fsync(fd)  # only clean pages can be dropped (the generated files were just written)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def side_settings(workdir: Path, side: str) -> Settings:
    """The settings both sides share, with folders of this side's own (nothing cached carries over)."""
    own = workdir / side
    return ServeConfig.load(None).settings(
        {
            "serve": {"store_dir": str(own / "store"), "media_cache_dir": str(own / "media-cache")},
            "search": {"cache_dir": str(own / "search-cache")},
            # A local benchmark on 127.0.0.1: no API key, explicitly.
            "security": {"auth": "disabled"},
        }
    )


def engine_settings(settings: Settings) -> str:
    """What must be equal on both sides: the model, the VLM deployment and the sampling."""
    return json.dumps(
        {
            "model": settings.model.model_dump(mode="json"),
            "vlm": settings.serve.vlm.model_dump(mode="json"),
            "video": settings.video.model_dump(mode="json"),
            "flow": settings.flow.model_dump(mode="json"),
        },
        sort_keys=True,
    )


def run_side(side: str, corpus: Path, workdir: Path, mode: str) -> None:
    """One side on a fresh stack (in its own process); prints one JSON line with its figures."""
    settings = side_settings(workdir, side)
    # vLLM's compile and kernel caches: a fresh folder per side (local_stack only sets a default).
    os.environ["VLLM_CACHE_ROOT"] = str(workdir / side / "vllm-cache")
    videos = sorted(p for p in corpus.iterdir() if p.is_file())
    options = AnalyzeOptions(mode=mode)
    started_stack = time.perf_counter()
    with local_stack(settings) as url:
        stack_s = time.perf_counter() - started_stack
        started = time.perf_counter()
        if side == "sequential":
            for video in videos:
                client.analyze(url, str(video), options)
            chunks = None
        else:
            report = run(str(corpus), str(workdir / side / "out"), settings, options.model_dump(by_alias=True))
            if report["videos"]["ok"] != len(videos):
                raise SystemExit(f"archive job did not finish every video: {report['videos']}")
            chunks = report["chunks"]
        wall_s = time.perf_counter() - started
    figures = {
        "side": side,
        "wall_s": wall_s,
        "stack_start_s": stack_s,
        "engine_settings": hashlib.sha256(engine_settings(settings).encode()).hexdigest()[:12],
        "chunks": chunks,
    }
    print("RESULT " + json.dumps(figures), flush=True)


def spawn_side(side: str, corpus: Path, workdir: Path, mode: str, videos: list[Path]) -> dict:
    drop_from_page_cache(videos)
    command = [sys.executable, __file__, "--side", side, "--corpus", str(corpus), "--workdir", str(workdir)]
    done = subprocess.run([*command, "--mode", mode], capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"the {side} side failed (exit {done.returncode})")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="minutes of video in the corpus")
    parser.add_argument("--mode", default="screen_share")
    parser.add_argument(
        "--orders", choices=["both", "sa", "as"], default="both", help="s: sequential, a: archive; both: sa then as"
    )
    # Internal: run one side in this process (the parent spawns one process per side).
    parser.add_argument("--side", choices=list(SIDES.values()), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args.side, args.corpus, args.workdir, args.mode)
        return

    workdir = Path(tempfile.mkdtemp(prefix="reelserve-bench-archive-"))
    try:
        corpus = workdir / "in"
        videos = build_corpus(corpus, args.minutes)
        check_unique(videos)
        video_settings = side_settings(workdir, "probe").video
        video_s = sum(probe(v, video_settings).duration_s for v in videos)
        print(
            f"machine: {platform.machine()} {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}, "
            f"python {platform.python_version()}"
        )
        print(
            f"corpus: {len(videos)} videos ({', '.join(v.name for v in videos)}), {video_s / 60:.1f} min of video, "
            f"all distinct by sha256, mode {args.mode}"
        )
        orders = ["sa", "as"] if args.orders == "both" else [args.orders]
        totals = {"sequential": 0.0, "archive": 0.0}
        for round_index, order in enumerate(orders):
            results = {}
            for letter in order:
                side = SIDES[letter]
                # A round's own folders: the second round must not find the first round's results or caches.
                results[side] = spawn_side(side, corpus, workdir / f"round{round_index}", args.mode, videos)
                r = results[side]
                print(
                    f"  order {order}: {side:<10s} {r['wall_s']:7.1f} s ({video_s / r['wall_s']:.2f} video-s/s), "
                    f"stack start {r['stack_start_s']:.0f} s (not counted), engine settings {r['engine_settings']}"
                    + (f", chunks {r['chunks']}" if r["chunks"] else "")
                )
            if results["sequential"]["engine_settings"] != results["archive"]["engine_settings"]:
                raise SystemExit("the two sides ran with different engine settings")
            for side in totals:
                totals[side] += results[side]["wall_s"]
            ratio = results["sequential"]["wall_s"] / results["archive"]["wall_s"]
            print(f"order {order} ({' then '.join(SIDES[c] for c in order)}): archive x{ratio:.2f} vs sequential")
        print(f"archive_speedup_vs_sequential={totals['sequential'] / totals['archive']:.2f}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
