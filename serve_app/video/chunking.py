"""Plan how a video is cut into overlapping chunks and sampled within budget.

Uniform sampling: each chunk is sampled at (at most) the requested fps;
frames get the largest size that keeps the chunk's visual tokens within the
budget. When that size would make screen text illegible (below
`min_frame_pixels`), the plan keeps the frames larger and samples fewer of
them instead.

Adaptive sampling keeps only a few of its candidates (drawn at the base fps),
so frames get the largest size (`max_frame_pixels`, never above the source)
and the budget sets the ceiling on how many are kept. Either way the planned
size is exactly what the model sees: sides are multiples of 32, the token
count is Qwen3-VL's own arithmetic.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from pathlib import Path

from serve_app.config import VideoSettings
from serve_app.errors import InvalidOptions
from serve_app.schemas import AnalyzeOptions, ChunkingOptions, ChunkPlan, VideoInfo, overlap_problem
from serve_app.video.guided import activity
from serve_app.video.packets import packet_params
from serve_app.video.probe import probe
from serve_app.video.tokens import FACTOR, TEMPORAL_PATCH, fit_frame_size, visual_tokens

__all__ = ["MAX_FRAMES", "MIN_FRAMES", "chunking_options", "plan_chunks", "plan_file"]

logger = logging.getLogger(__name__)

#: Qwen3-VL's processor limits per video item.
MIN_FRAMES = 2
MAX_FRAMES = 768
# A last chunk shorter than this (seconds) is merged into the previous one.
_MIN_TAIL_S = 1.0
_EPS = 1e-9


def plan_chunks(
    info: VideoInfo,
    options: ChunkingOptions,
    limits: VideoSettings,
    active: list[tuple[float, float]] | None = None,
) -> list[ChunkPlan]:
    """Chunks covering [0, info.duration_s], each within `options.token_budget`.

    `active`: the stretches that may show a change (`serve_app.video.guided.activity`); with adaptive
    sampling a chunk then grows over the grid steps that have none, up to `options.static_chunk_s`.
    None (not known, or nothing static): the plain grid. The plan depends on the file and options only.
    """
    spans = _spans(info.duration_s, options.chunk_s, options.overlap_s)
    if options.sampling == "adaptive" and active is not None and options.static_chunk_s > options.chunk_s:
        spans = _grow_over_static(spans, active, options.static_chunk_s)
    cores = _cores(spans, info.duration_s)
    fps = min(options.fps, info.fps)  # sampling above the source rate only repeats frames
    wanted = [_frames_for(end - start, fps) for start, end in spans]
    if options.sampling == "adaptive":
        width, height, max_frames = _adaptive_size(info, max(wanted), options.token_budget, limits)
    else:
        width, height, max_frames = _frame_size(info, max(wanted), options.token_budget, limits)

    plans = []
    for index, ((start, end), (core_start, core_end), n) in enumerate(zip(spans, cores, wanted, strict=True)):
        n = min(n, max_frames)
        plans.append(
            ChunkPlan(
                index=index,
                start_s=start,
                end_s=end,
                core_start_s=core_start,
                core_end_s=core_end,
                # Uniform: lower than asked when the frame cap or the budget cut the count.
                # Adaptive: the candidates' rate; n is only the ceiling.
                fps=fps if options.sampling == "adaptive" else min(fps, n / (end - start)),
                width=width,
                height=height,
                max_frames=n,
                token_budget=options.token_budget,
                visual_tokens=visual_tokens(n, height, width),
                sampling=options.sampling,
                floor_s=options.floor_s,
                change_threshold=options.change_threshold,
            )
        )
    logger.debug(
        "planned %d %s chunks of %.1f s for %.1f s: %dx%d, up to %d frames",
        len(plans),
        options.sampling,
        options.chunk_s,
        info.duration_s,
        width,
        height,
        max(p.max_frames for p in plans),
    )
    return plans


def plan_file(
    path: str | Path, options: ChunkingOptions, limits: VideoSettings, sha256: str | None = None
) -> tuple[VideoInfo, list[ChunkPlan]]:
    """Probe the video at `path` and plan its chunks: online (the Chunker) and bulk (the archive job)
    alike, so both cut a file the same way. The packet pass (`activity`) runs only when chunks may grow."""
    info = probe(path, limits, sha256=sha256)
    grows = options.sampling == "adaptive" and options.static_chunk_s > options.chunk_s
    params = packet_params(limits) if grows else None
    return info, plan_chunks(info, options, limits, activity(path, params) if params is not None else None)


def _spans(duration: float, chunk_s: float, overlap_s: float) -> list[tuple[float, float]]:
    """[start, end] of each chunk: a grid of step chunk_s - overlap_s from 0."""
    step = chunk_s - overlap_s
    starts = [0.0]
    while starts[-1] + chunk_s < duration - _EPS:
        starts.append(len(starts) * step)  # multiply, not add: no drift over hours
    spans = [(s, min(s + chunk_s, duration)) for s in starts]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < max(2 * overlap_s, _MIN_TAIL_S):
        # A sliver of a last chunk costs a model call for almost nothing new.
        spans.pop()
        spans[-1] = (spans[-1][0], duration)
    spans[-1] = (spans[-1][0], duration)  # exact end, whatever the float grid did
    return spans


def _grow_over_static(
    spans: list[tuple[float, float]], active: list[tuple[float, float]], longest_s: float
) -> list[tuple[float, float]]:
    """Join each grid span to the chunk before it when what it adds holds no active stretch and the
    chunk stays within `longest_s`: a static stretch costs one chunk, and a chunk ends at the last grid
    point before a change (the next one opens on the overlap before it, as on the plain grid)."""
    ends = [b for _, b in active]  # active stretches are disjoint and in time order
    grown = [spans[0]]
    for start, end in spans[1:]:
        first, last = grown[-1]
        at = bisect.bisect_left(ends, last)  # the first stretch that ends at or after `last`
        if end - first <= longest_s + _EPS and not (at < len(active) and active[at][0] <= end):
            grown[-1] = (first, end)
        else:
            grown.append((start, end))
    return grown


def _cores(spans: list[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """Split each overlap at its midpoint so the cores tile [0, duration]."""
    cuts = [0.0] + [(nxt[0] + cur[1]) / 2 for cur, nxt in itertools.pairwise(spans)] + [duration]
    return list(itertools.pairwise(cuts))


def _frames_for(seconds: float, fps: float) -> int:
    """Frames to sample over `seconds`: even (Qwen3-VL pairs frames), 2..768."""
    n = math.ceil(seconds * fps - _EPS)
    n = min(MAX_FRAMES, max(MIN_FRAMES, n))
    return n + n % TEMPORAL_PATCH


def _frame_size(info: VideoInfo, frames: int, budget: int, limits: VideoSettings) -> tuple[int, int, int]:
    """(width, height, max frames) shared by all chunks of the video.

    Sized for the chunk that wants the most frames, so every chunk fits.
    """
    per_pair_px = budget // math.ceil(frames / TEMPORAL_PATCH) * FACTOR * FACTOR
    cap = min(limits.max_frame_pixels, per_pair_px)
    # The smallest frame worth sending, or the source itself if it is smaller.
    floor_w, floor_h = fit_frame_size(info.width, info.height, min(limits.min_frame_pixels, limits.max_frame_pixels))
    if cap >= FACTOR * FACTOR:
        width, height = fit_frame_size(info.width, info.height, cap)
        if width * height >= floor_w * floor_h:
            return width, height, frames
    # Too many frames for legible frames: keep the floor size, drop frames.
    pairs = budget // visual_tokens(TEMPORAL_PATCH, floor_h, floor_w)
    if pairs >= 1:
        logger.info(
            "token budget %d too small for %d frames; sampling %d frames of %dx%d",
            budget,
            frames,
            pairs * TEMPORAL_PATCH,
            floor_w,
            floor_h,
        )
        return floor_w, floor_h, min(frames, pairs * TEMPORAL_PATCH)
    # Not even one frame pair of the floor size fits: shrink below it.
    if budget < 1:
        raise InvalidOptions(f"a token budget of {budget} cannot hold two {FACTOR}x{FACTOR} frames")
    width, height = fit_frame_size(info.width, info.height, min(limits.max_frame_pixels, budget * FACTOR * FACTOR))
    logger.info("token budget %d only fits 2 frames of %dx%d", budget, width, height)
    return width, height, MIN_FRAMES


def _adaptive_size(info: VideoInfo, candidates: int, budget: int, limits: VideoSettings) -> tuple[int, int, int]:
    """(width, height, ceiling) for adaptive sampling: the largest frames, as many as the budget holds.

    Adaptive keeps few frames, so they get the largest size (what a 2-frame
    plan would get) and the budget decides the ceiling, never above the
    candidate count or Qwen3-VL's 768.
    """
    width, height, _ = _frame_size(info, MIN_FRAMES, budget, limits)
    pairs = budget // visual_tokens(TEMPORAL_PATCH, height, width)
    ceiling = max(MIN_FRAMES, min(candidates, MAX_FRAMES, pairs * TEMPORAL_PATCH))
    return width, height, ceiling


def chunking_options(options: AnalyzeOptions, video: VideoSettings) -> ChunkingOptions:
    """A request's chunking knobs with the server's defaults filled in (online and bulk alike).

    Raises InvalidOptions (422) when the request's chunk length or overlap clashes with the other one,
    requested or the server's default (`overlap_problem`, the rule the planner needs), naming which is which.
    """
    sampling = options.sampling or video.sampling
    # A requested fps is the rate of either strategy; adaptive draws its candidates faster by default.
    default_fps = video.adaptive_fps if sampling == "adaptive" else video.fps
    chunk_s = options.chunk_s or video.chunk_s
    overlap_s = video.overlap_s if options.overlap_s is None else options.overlap_s
    if (problem := overlap_problem(chunk_s, overlap_s)) is not None:
        given = [name for name in ("chunk_s", "overlap_s") if getattr(options, name) is not None]
        defaults = [name for name in ("chunk_s", "overlap_s") if name not in given]
        origin = f" ({' and '.join(defaults)}: the server's default)" if defaults else ""
        raise InvalidOptions(problem + origin)
    return ChunkingOptions(
        chunk_s=chunk_s,
        overlap_s=overlap_s,
        fps=options.fps or default_fps,
        token_budget=video.token_budget,
        sampling=sampling,
        floor_s=video.floor_s,
        change_threshold=video.change_threshold,
        static_chunk_s=video.static_chunk_s if video.packet_guided else 0.0,
    )
