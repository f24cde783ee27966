"""Visual tokens and change recall: adaptive sampling vs uniform 1 fps and 2 fps, tuning and held-out split.

    .venv/bin/python bench/sampling.py          # ~5-8 min on 2 cores (first run also generates the videos)

Inputs (bench/sampling_splits.py):
- tuning split: generated screen shares with known change times (text
  pages changing at irregular intervals, a quarter of them held under 2 s,
  dialogs, scrolls, a moving cursor, a noisy webcam tile; 1280x720 at
  15 fps, seeds 11-13) — the set the sampler's thresholds were chosen on;
- held-out idle screens (`IDLE_HELD_OUT`), never tuned on: the cursor rests between changes, as in
  a talk over slides (x264 defaults), one with a live webcam tile;
- held-out split, never tuned on: generated screen shares with other seeds,
  resolutions, frame rates, layouts, change durations and capture noise, and
  every real clip in ../shared/media. The real clips have no ground truth:
  their reference changes come from frame-to-frame pixel differences
  (`pixel_change_events`), derived once per clip and scored the same way for
  every strategy (approximate).
Every strategy decodes the service's 20 s / 1 s overlap grid (adaptive: grown where static) and
its tokens are counted at the same frame size (Qwen3-VL's arithmetic, what
the model would be sent):
- uniform 1 fps and 2 fps (budget lifted so neither is capped);
- adaptive with the defaults (budget ceiling, floor, change threshold), planned as the service plans
  (chunks grown over static stretches up to `video.static_chunk_s`) and decoded as it decodes (guided
  by the packets, `video.packet_guided`); the same plan with every frame decoded (full decoding): same
  recall is the guided decoder's promise; the same on the plain 20 s grid (what sizing chunks by
  content saves); on the tuning split only, a sweep of the floor;
- chunk starts + floor only: adaptive with a change threshold no tile can
  reach, i.e. what no detector at all keeps;
- PySceneDetect's ContentDetector and HashDetector fed the same 2 fps
  candidates (chunk start + detected cuts + the same floor and pairing).
Recall: a change counts as covered when a kept frame shows the new content
(`ScreenEvent.shown_s <= t < end_s`). Detector recall: the same, over the
changes the chunk-start and floor frames alone do not cover (the ones only a
detector can find). Each split prints tokens/min vs uniform 1 fps and says
whether adaptive's recall equals uniform 1 fps's.
The held-out screen recordings (generated + display-dual-monitors.webm, not the camera clips) are also
pooled apart, with the projected visual tokens per hour of 1080p30 screen recording (the held-out 1080p30
clip's rate) and the frames decoded per minute, guided and full.
Last line: `token_reduction_vs_uniform_1fps=<x> recall=<r> heldout_token_reduction=<x> heldout_recall=<r>
heldout_screen_token_reduction=<x> heldout_screen_recall=<r> heldout_idle_token_reduction=<x>
heldout_idle_recall=<r> guided_recall_equals_full=<bool>` (adaptive defaults; tuning split, held-out generated +
idle + real pooled, held-out screen recordings, held-out idle screens).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av
import numpy as np
from common import SHARED_MEDIA, hardware
from sampling_splits import HELD_OUT, IDLE_HELD_OUT, tuning

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import ScreenEvent
from serve_app.schemas import ChunkingOptions, ChunkPlan, VideoInfo
from serve_app.video import decode_chunk, plan_chunks, probe, visual_tokens
from serve_app.video.guided import activity
from serve_app.video.packets import PacketParams, packet_params

# Real clips: every video in ../shared/media (held out; none has ground-truth change times).
REAL_SUFFIXES = {".webm", ".avi", ".mp4", ".mkv", ".mov"}
# A change threshold no tile difference reaches (grey levels go to 255): only the chunk-start and floor
# pairs are kept. The changes those alone cover are not the detector's merit ("detector recall").
NO_DETECTOR = 1e9
# The held-out real clips that are screen recordings (the others are camera footage and a film).
SCREEN_RECORDINGS = {"display-dual-monitors.webm"}
IDLE = "held-out idle screens"
GUIDED, FULL, GRID = "adaptive (defaults)", "adaptive, full decoding", "adaptive, 20 s grid (static_chunk_s 0)"
HD30 = (1920, 1080, 30)
# Candidates for the PySceneDetect runs are decoded this small (the detectors downscale anyway).
DETECTOR_SIZE = (320, 192)


@dataclass
class Outcome:
    """Kept frames of one strategy over one video."""

    times: list[float]
    tokens: int
    seconds: float
    decoded: int = 0  # frames the decoder produced
    chunks: int = 0  # model calls, each with its answer (output tokens follow the count)


def uniform(path: Path, info: VideoInfo, fps: float, settings: VideoSettings) -> Outcome:
    options = ChunkingOptions(
        chunk_s=settings.chunk_s,
        overlap_s=settings.overlap_s,
        fps=fps,
        token_budget=10**7,
        sampling="uniform",
        floor_s=settings.floor_s,
        change_threshold=settings.change_threshold,
        static_chunk_s=0.0,
    )
    return run(path, plan_chunks(info, options, settings))


def adaptive(
    path: Path, info: VideoInfo, settings: VideoSettings, guided: bool = True, grow: bool = True, **overrides: float
) -> Outcome:
    """The service's plan (chunks grown over static stretches, `plan_file`'s rule) unless `grow` is off
    (the plain 20 s grid); decoded guided by the packets, or in full."""
    options = ChunkingOptions(
        chunk_s=settings.chunk_s,
        overlap_s=settings.overlap_s,
        fps=settings.adaptive_fps,
        token_budget=settings.token_budget,
        sampling="adaptive",
        floor_s=overrides.get("floor_s", settings.floor_s),
        change_threshold=overrides.get("change_threshold", settings.change_threshold),
        static_chunk_s=settings.static_chunk_s if grow else 0.0,
    )
    params = packet_params(settings)
    active = activity(path, params) if grow and params is not None else None
    return run(path, plan_chunks(info, options, settings, active), params if guided else None)


def run(path: Path, plans: list[ChunkPlan], packets: PacketParams | None = None) -> Outcome:
    started = time.perf_counter()
    times: list[float] = []
    tokens = decoded = 0
    for plan in plans:
        chunk = decode_chunk(path, plan, threads=1, packets=packets)
        times += chunk.frame_times_s
        tokens += chunk.stats.visual_tokens
        decoded += chunk.stats.frames_decoded
    return Outcome(
        times=times, tokens=tokens, seconds=time.perf_counter() - started, decoded=decoded, chunks=len(plans)
    )


def scenedetect_run(
    path: Path,
    info: VideoInfo,
    *,
    settings: VideoSettings,
    make_detector: Callable[[], object],
    size: tuple[int, int],
) -> Outcome:
    """PySceneDetect's detector on the same 2 fps candidates, per chunk, with the same floor and pairing."""
    from scenedetect import FrameTimecode

    options = ChunkingOptions(
        chunk_s=settings.chunk_s,
        overlap_s=settings.overlap_s,
        fps=settings.adaptive_fps,
        token_budget=10**7,
        sampling="uniform",
        floor_s=settings.floor_s,
        change_threshold=settings.change_threshold,
        static_chunk_s=0.0,
    )
    started = time.perf_counter()
    times: list[float] = []
    tokens = 0
    width, height = size  # the adaptive plan's frame size, for counting tokens
    for plan in plan_chunks(info, options, settings):
        small = plan.model_copy(update={"width": DETECTOR_SIZE[0], "height": DETECTOR_SIZE[1]})
        chunk = decode_chunk(path, small, threads=1)
        detector = make_detector()
        cuts: set[float] = set()
        for frame, t in zip(chunk.frames, chunk.frame_times_s, strict=True):
            # Timecodes in source frames; the detector wants BGR.
            for cut in detector.process_frame(FrameTimecode(round(t * info.fps), info.fps), frame[:, :, ::-1]):
                cuts.add(round(cut.frame_num / info.fps, 6))
        kept = [chunk.frame_times_s[0]]
        for t in chunk.frame_times_s[1:]:
            if any(abs(t - c) < 1e-3 for c in cuts):
                kept.append(t)
            elif t - kept[-1] >= settings.floor_s:
                kept.append(t)
        if len(kept) % 2 and chunk.frame_times_s[-1] > kept[-1]:
            kept.append(chunk.frame_times_s[-1])
        if len(kept) % 2:
            kept.append(kept[-1])
        times += kept
        tokens += visual_tokens(len(kept), height, width)
    return Outcome(times=times, tokens=tokens, seconds=time.perf_counter() - started)


def recall(events: list[ScreenEvent], times: list[float]) -> tuple[int, int]:
    covered = sum(any(e.shown_s - 1e-6 <= t < e.end_s for t in times) for e in events)
    return covered, len(events)


def pixel_change_events(path: Path, duration_s: float) -> list[ScreenEvent]:
    """Reference changes of a real recording, from frame-to-frame pixel differences.

    A frame "moves" when more than 1% of its pixels change by more than 32
    grey levels (a cursor is far less). Moving frames less than 0.5 s apart
    form one change (an animation, a drag), shown from its last moving frame
    until the next change; changes shown for less than 0.5 s (hover flicker)
    are dropped, as a 2 fps sampler cannot be expected to see them.
    Approximate by nature: it is not ground truth.
    """
    moving: list[float] = []
    prev: np.ndarray | None = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            gray = frame.reformat(width=stream.width // 4, height=stream.height // 4, format="gray").to_ndarray()
            gray = gray.astype(np.int16)
            if prev is not None and (np.abs(gray - prev) > 32).mean() > 0.01:
                moving.append(float(frame.time or 0.0))
            prev = gray
    runs: list[list[float]] = []
    for t in moving:
        if runs and t - runs[-1][1] < 0.5:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    events = []
    for i, (start, last) in enumerate(runs):
        shown = last  # the frame that completed the change
        end = runs[i + 1][0] if i + 1 < len(runs) else duration_s
        if end - shown >= 0.5:
            events.append(ScreenEvent("slide", start, shown, end))
    return events


@dataclass
class Video:
    """One scored video: its change times (`None`: derived from pixel differences) and its split."""

    path: Path
    events: list[ScreenEvent] | None
    split: str


@dataclass
class Tally:
    """A strategy's sums over a split."""

    tokens: int = 0
    minutes: float = 0.0
    decoded: int = 0
    covered: int = 0
    total: int = 0
    # Over the changes the chunk-start and floor pairs alone do not cover.
    detector_covered: int = 0
    detector_total: int = 0
    chunks: int = 0

    def add(self, other: Tally) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def fraction(covered: int, total: int) -> str:
    return f"{covered / total:.3f} ({covered}/{total})" if total else "- (0/0)"


def print_split(name: str, tallies: dict[str, Tally]) -> None:
    base = tallies["uniform 1 fps"]
    print(f"\n{name}:")
    for strategy, t in tallies.items():
        print(
            f"   {strategy:<30s} {t.tokens / t.minutes:8.0f} tokens/min  x{base.tokens / t.tokens:5.2f} fewer than "
            f"uniform 1 fps | recall {fraction(t.covered, t.total)} "
            f"| detector recall {fraction(t.detector_covered, t.detector_total)}"
            + (f" | {t.chunks / t.minutes:.2f} chunks/min" if t.chunks else "")
        )
    adaptive = tallies[GUIDED]
    full = tallies.get(FULL)
    if full is not None:
        print(
            f"   decoded frames/min: guided {adaptive.decoded / adaptive.minutes:.0f}, full "
            f"{full.decoded / full.minutes:.0f}; recall guided {adaptive.covered}/{adaptive.total}, full "
            f"{full.covered}/{full.total}"
        )
    if adaptive.covered == base.covered:
        verdict = "at equal recall"
    elif adaptive.covered < base.covered:
        verdict = f"NOT at equal recall: adaptive covers {base.covered - adaptive.covered} fewer changes"
    else:
        verdict = f"adaptive covers {adaptive.covered - base.covered} more changes (uniform 1 fps straddles them)"
    print(
        f"   adaptive vs uniform 1 fps: {adaptive.tokens / adaptive.minutes:.0f} vs {base.tokens / base.minutes:.0f} "
        f"tokens/min, x{base.tokens / adaptive.tokens:.2f} fewer, {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="length of each tuning-split video (s)")
    args = parser.parse_args()
    print(f"hardware: {hardware()}")
    settings = VideoSettings()
    print(
        f"defaults: adaptive at {settings.adaptive_fps:g} fps, floor {settings.floor_s:g} s, "
        f"change threshold {settings.change_threshold:g}, budget {settings.token_budget} tokens per "
        f"{settings.chunk_s:g} s chunk"
    )
    try:
        from scenedetect import ContentDetector, HashDetector
    except ImportError:
        ContentDetector = HashDetector = None  # noqa: N806 - the classes, when present
        print("PySceneDetect not installed (pip install scenedetect-headless): its rows are skipped")

    videos = [Video(clip.path(), clip.events(), "tuning") for clip in tuning(args.duration)]
    videos += [Video(clip.path(), clip.events(), "held-out generated") for clip in HELD_OUT]
    videos += [Video(clip.path(), clip.events(), IDLE) for clip in IDLE_HELD_OUT]
    real = sorted(p for p in SHARED_MEDIA.glob("*") if p.suffix.lower() in REAL_SUFFIXES)
    if not real:
        print(f"(no real clips found in {SHARED_MEDIA})")
    videos += [Video(path, None, "held-out real") for path in real]

    strategies: dict[str, Callable[[Path, VideoInfo], Outcome]] = {
        "uniform 1 fps": lambda p, i: uniform(p, i, 1.0, settings),
        "uniform 2 fps": lambda p, i: uniform(p, i, 2.0, settings),
        GUIDED: lambda p, i: adaptive(p, i, settings),
        FULL: lambda p, i: adaptive(p, i, settings, guided=False),
        GRID: lambda p, i: adaptive(p, i, settings, grow=False),
    }
    # The floor sweep explains the tuning split's default; it is not run on held-out clips.
    sweep: dict[str, Callable[[Path, VideoInfo], Outcome]] = {
        f"adaptive, floor {floor:g} s": lambda p, i, f=floor: adaptive(p, i, settings, floor_s=f)
        for floor in (5.0, 10.0, 15.0, 20.0)
        if floor != settings.floor_s
    }
    detectors: dict[str, Callable[[], object]] = {}
    if ContentDetector is not None:
        # Default threshold (27, tuned for film cuts) and a low one that sees text-sized changes.
        detectors["PySceneDetect content (27)"] = partial(ContentDetector, threshold=27.0, min_scene_len=1)
        detectors["PySceneDetect content (3)"] = partial(ContentDetector, threshold=3.0, min_scene_len=1)
        detectors["PySceneDetect hash"] = partial(HashDetector, min_scene_len=1)
    floor_only = "chunk starts + floor only"
    totals: dict[str, dict[str, Tally]] = {}  # split -> strategy -> sums
    screens: dict[str, Tally] = {}  # held-out screen recordings (generated + real), strategy -> sums
    per_hour_1080p30: dict[str, float] = {}  # held-out 1080p30 clip -> its guided visual tokens per hour
    for video in videos:
        path = video.path
        info = probe(path, settings)
        truth = "known"
        events = video.events
        if events is None:
            truth = "reference from pixel differences, the same for every strategy"
            events = pixel_change_events(path, info.duration_s)
        size = plan_chunks(
            info,
            ChunkingOptions(
                chunk_s=20,
                overlap_s=1,
                fps=2,
                token_budget=settings.token_budget,
                sampling="adaptive",
                floor_s=settings.floor_s,
                change_threshold=settings.change_threshold,
                static_chunk_s=0.0,
            ),
            settings,
        )[0]
        frame_size = (size.width, size.height)
        minutes = info.duration_s / 60
        print(
            f"\n== [{video.split}] {path.name}: {info.width}x{info.height} {info.fps:g} fps {info.duration_s:.0f} s, "
            f"{len(events)} changes ({truth}), tokens counted at {size.width}x{size.height}"
        )
        # What no detector at all would keep: the changes it covers are excluded from detector recall.
        baseline_floor = adaptive(path, info, settings, change_threshold=NO_DETECTOR)
        detector_events = [e for e in events if not recall([e], baseline_floor.times)[0]]
        print(f"   {len(events) - len(detector_events)} of {len(events)} changes fall on chunk-start/floor frames")
        runs: dict[str, Callable[[Path, VideoInfo], Outcome]] = dict(strategies)
        runs[floor_only] = lambda p, i, done=baseline_floor: done
        if video.split == "tuning":
            runs.update(sweep)
        for name, factory in detectors.items():
            runs[name] = partial(scenedetect_run, settings=settings, make_detector=factory, size=frame_size)
        baseline = None
        for name, strategy in runs.items():
            outcome = strategy(path, info)
            covered, total = recall(events, outcome.times)
            detector_covered, detector_total = recall(detector_events, outcome.times)
            baseline = baseline or outcome.tokens
            missed = [f"{e.kind}@{e.shown_s:.1f}" for e in events if not recall([e], outcome.times)[0]]
            print(
                f"   {name:<30s} {outcome.tokens / minutes:8.0f} tokens/min  x{baseline / outcome.tokens:5.2f} fewer "
                f"| {len(set(outcome.times)):4d} frames | recall {covered}/{total} "
                f"| detector {detector_covered}/{detector_total} "
                f"| {outcome.seconds:5.1f} s{'  missed: ' + ', '.join(missed[:6]) if missed else ''}"
            )
            tally = Tally(
                outcome.tokens,
                minutes,
                outcome.decoded,
                covered,
                total,
                detector_covered,
                detector_total,
                outcome.chunks,
            )
            totals.setdefault(video.split, {}).setdefault(name, Tally()).add(tally)
            if video.split in ("held-out generated", IDLE) or path.name in SCREEN_RECORDINGS:
                screens.setdefault(name, Tally()).add(tally)
            if name == GUIDED and video.split != "tuning" and (info.width, info.height, round(info.fps)) == HD30:
                per_hour_1080p30[path.name] = outcome.tokens / minutes * 60

    held_out: dict[str, Tally] = {}
    for split in ("held-out generated", IDLE, "held-out real"):
        for name, tally in totals.get(split, {}).items():
            held_out.setdefault(name, Tally()).add(tally)
    print_split("tuning split (3 x generated, the thresholds were chosen on these)", totals["tuning"])
    for split in ("held-out generated", IDLE, "held-out real"):
        if split in totals:
            print_split(f"{split} (never tuned on)", totals[split])
    print_split("held-out, all (generated + idle + real)", held_out)
    print_split("held-out screen recordings (generated + idle + display-dual-monitors.webm)", screens)
    for clip, per_hour in per_hour_1080p30.items():
        print(f"projected visual tokens per hour of 1080p30 screen recording like {clip} (guided): {per_hour:,.0f}")
    tuned, tuned_base = totals["tuning"][GUIDED], totals["tuning"]["uniform 1 fps"]
    held, held_base = held_out[GUIDED], held_out["uniform 1 fps"]
    screen, screen_base = screens[GUIDED], screens["uniform 1 fps"]
    idle, idle_base = totals[IDLE][GUIDED], totals[IDLE]["uniform 1 fps"]
    same = all(split[GUIDED].covered == split[FULL].covered for split in (*totals.values(), held_out, screens))
    print(
        f"token_reduction_vs_uniform_1fps={tuned_base.tokens / tuned.tokens:.2f} "
        f"recall={tuned.covered / tuned.total:.3f} "
        f"heldout_token_reduction={held_base.tokens / held.tokens:.2f} heldout_recall={held.covered / held.total:.3f} "
        f"heldout_screen_token_reduction={screen_base.tokens / screen.tokens:.2f} "
        f"heldout_screen_recall={screen.covered / screen.total:.3f} "
        f"heldout_idle_token_reduction={idle_base.tokens / idle.tokens:.2f} "
        f"heldout_idle_recall={idle.covered / idle.total:.3f} "
        f"guided_recall_equals_full={same}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
