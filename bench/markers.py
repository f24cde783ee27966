"""Exact time: how far each `<t seconds>` marker the model reads lies from the frames it stamps.

    .venv/bin/python bench/markers.py          # ~40 s on 2 cores (vLLM's import is half of it)

For every chunk of each case, vLLM's real Qwen3-VL processor builds what
`VLMEngine` would send (`serve_app.devtools.markers`: prompt markers decoded
from the token ids, frames un-patchified from `pixel_values_videos`); each
frame's true source time comes from the frame code drawn in its pixels. The
cases are those of tests/engine/test_markers.py (same clips, same options)
plus ../shared/media/display-dual-monitors.webm with the service defaults,
whose truth is the decoder's own frame times (it has no frame codes). Rows
marked "info" (uniform at the service's 1 fps: a pair spans a whole second,
so its marker is 0.5 s from both frames by construction) are left out of
the last line, `worst_marker_error_s=<x>`: the worst |marker - frame time|
over every pair of every chunk of the other cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from common import SHARED_MEDIA, cached, hardware

from serve_app.config import VideoSettings
from serve_app.devtools.markers import ChunkCheck, ModelInputProbe, check_chunk, write_offset_video
from serve_app.devtools.synthetic import ScreenEvent, read_counter, read_frame_index, write_screen_share, write_video
from serve_app.schemas import AnalyzeOptions
from serve_app.video import chunking_options, decode_chunk, plan_chunks, probe

LIMITS = VideoSettings()
MAX_MARKER_ERROR_S = 0.5


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    times: list[float] | None  # true time of source frame i (None: trust the decoder's times)
    read_index: Callable[[np.ndarray], int] | None
    options: AnalyzeOptions
    last_only: bool = False
    info: bool = False  # shown, not counted in the last line


def _clip(name: str, **kwargs: object) -> tuple[Path, list[float]]:
    """A write_video clip (the parameters of tests/conftest.py's fixtures) and its frame times."""
    times: list[float] = []

    def make(path: Path) -> None:
        times.extend(write_video(path, **kwargs))  # type: ignore[arg-type]

    path = cached(f"markers-{name}", make)
    if not times:  # cached: the times are those of the frame grid written
        vfr = kwargs.get("vfr_times")
        if vfr is not None:
            times = [round(t * 1000) / 1000 for t in vfr]  # type: ignore[union-attr]
        else:
            rate = float(kwargs["fps"])  # type: ignore[arg-type]
            times = [i / rate for i in range(max(1, round(float(kwargs["duration_s"]) * rate)))]  # type: ignore[arg-type]
    return path, times


def _screen_share() -> Path:
    script = [
        ScreenEvent("slide", 0.0, 0.0, 6.0),
        ScreenEvent("dialog", 6.0, 6.0, 6.9),
        ScreenEvent("slide", 9.0, 9.0, 10.4),
        ScreenEvent("slide", 10.4, 10.4, 25.0),
        ScreenEvent("scroll", 25.0, 26.2, 40.0),
        ScreenEvent("slide", 40.0, 40.0, 60.0),
    ]
    return cached(
        "markers-screen.mp4",
        lambda path: write_screen_share(
            path, duration_s=60.0, fps=10.0, width=384, height=216, events=script, counter=True, gop=50
        ),
    )


def cases() -> list[Case]:
    uniform = partial(AnalyzeOptions, sampling="uniform")
    cfr, cfr_times = _clip("cfr.mp4", duration_s=10, fps=10, width=160, height=96)
    gaps = np.random.default_rng(7).uniform(0.02, 0.4, size=60)
    vfr_grid = np.round(np.concatenate([[0.0], np.cumsum(gaps)]), 3).tolist()
    vfr, vfr_times = _clip(
        "vfr.mkv", duration_s=vfr_grid[-1], fps=10, width=128, height=96, codec="libvpx-vp9", vfr_times=vfr_grid
    )
    rotated, rotated_times = _clip("rotated.mp4", duration_s=3, fps=10, width=96, height=160, rotation=90)
    tail, tail_times = _clip("tail.mp4", duration_s=10.4, fps=2.5, width=128, height=96)
    offset = cached(
        "markers-offset.mp4",
        lambda path: write_offset_video(path, start_s=7.5, duration_s=6.0, fps=10, width=128, height=96),
    )
    offset_times = [i / 10 for i in range(60)]  # from the stream's first frame (stored at 7.5 s)
    screen = _screen_share()
    counter = partial(read_counter, width=384, height=216)
    found = [
        Case("uniform", cfr, cfr_times, read_frame_index, uniform(chunk_s=4, overlap_s=1, fps=2)),
        Case("adaptive", screen, [i / 10 for i in range(600)], counter, AnalyzeOptions(sampling="adaptive")),
        Case("vfr", vfr, vfr_times, read_frame_index, uniform(chunk_s=5, overlap_s=1, fps=2)),
        Case("offset-start", offset, offset_times, read_frame_index, uniform(chunk_s=4, overlap_s=1, fps=2)),
        Case("rotated", rotated, rotated_times, read_frame_index, uniform(fps=4)),
        Case("last-chunk", tail, tail_times, read_frame_index, uniform(chunk_s=4, overlap_s=1, fps=3), True),
        Case("uniform-1fps", cfr, cfr_times, read_frame_index, uniform(chunk_s=4, overlap_s=1), info=True),
        Case("screen-uniform-1fps", screen, [i / 10 for i in range(600)], counter, uniform(), info=True),
    ]
    demo = SHARED_MEDIA / "display-dual-monitors.webm"
    if demo.exists():
        found.append(Case("demo (defaults)", demo, None, None, AnalyzeOptions()))
        found.append(Case("demo uniform-1fps", demo, None, None, uniform(), info=True))
    else:
        print(f"{demo} not found: demo rows skipped")
    return found


def run(case: Case, model_input: ModelInputProbe) -> list[ChunkCheck]:
    plans = plan_chunks(probe(case.path, LIMITS), chunking_options(case.options, LIMITS), LIMITS)
    checks = []
    for plan in plans[-1:] if case.last_only else plans:
        chunk = decode_chunk(case.path, plan, threads=LIMITS.decode_threads)
        view = model_input.view(chunk)
        checks.append(check_chunk(view, chunk, case.times, case.read_index, max_error_s=MAX_MARKER_ERROR_S))
    return checks


def main() -> None:
    print(hardware())
    started = time.perf_counter()
    model_input = ModelInputProbe()
    print(f"vLLM Qwen3-VL processor ready in {time.perf_counter() - started:.1f} s")
    all_cases = cases()
    print(f"{'case':<28} {'sampling':<9} {'chunks':>6} {'pairs':>5} {'worst s':>8} {'mean s':>7}  problems")
    worst = 0.0
    for case in all_cases:
        checks = run(case, model_input)
        errors = [p.error_s for c in checks for p in c.pairs]
        problems = [f"chunk {c.index}: {p}" for c in checks for p in c.problems]
        case_worst = max(errors, default=float("nan"))
        if not case.info:
            worst = max(worst, case_worst)
        label = f"{case.name}{' (info)' if case.info else ''}"
        sampling = case.options.sampling or LIMITS.sampling
        print(
            f"{label:<28} {sampling:<9} {len(checks):>6} {len(errors):>5} {case_worst:>8.3f} "
            f"{float(np.mean(errors)):>7.3f}  {len(problems)}"
        )
        for line in problems[:3]:
            print(f"    {line}")
        if len(problems) > 3:
            print(f"    ... {len(problems) - 3} more")
    print(f"total {time.perf_counter() - started:.1f} s")
    print(f"worst_marker_error_s={worst:.3f}")


if __name__ == "__main__":
    main()
