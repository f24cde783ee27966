"""Decode one planned chunk: seek, decode only its range, sample, resize.

Only the frames picked at the plan's target times are converted to RGB at the
planned size (the expensive part of a naive loop is converting every frame).
Timestamps reported are the picked frames' real presentation times, counted
from the video stream's start, so the model is told when each frame was shown.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from serve_app.errors import InvalidVideo
from serve_app.schemas import ChunkPlan, DecodeStats
from serve_app.video.probe import (
    display_rotation,
    frames_from,
    header_fps,
    open_video,
    stream_start_s,
    video_stream,
)

__all__ = ["SampledChunk", "decode_chunk"]

logger = logging.getLogger(__name__)


@dataclass
class SampledChunk:
    """Frames of one chunk, ready for the model (an in-process value, not a schema)."""

    frames: np.ndarray  # uint8 [T, H, W, 3], T even, upright, plan.height x plan.width
    frame_times_s: list[float]  # source presentation time of each frame (from stream start)
    source_fps: float
    plan: ChunkPlan
    stats: DecodeStats

    @property
    def frame_indices(self) -> list[int]:
        """Frame numbers at `source_fps`: the metadata Qwen3-VL derives its timestamps from."""
        return [round(t * self.source_fps) for t in self.frame_times_s]


def decode_chunk(path: str | Path, plan: ChunkPlan, threads: int = 0) -> SampledChunk:
    """Sample `plan.max_frames` frames from [plan.start_s, plan.end_s] of the video.

    For each target time the nearest decoded frame is taken (never the same
    frame twice). Frames from more than a chunk length before the chunk do
    not count, so a chunk past the end of the data fails with InvalidVideo
    instead of returning stale frames. The result is padded to an even count
    of at least 2 by repeating the last frame. `threads` = 0 lets FFmpeg
    choose.
    """
    started = time.perf_counter()
    targets = plan.target_times()
    picked: list[np.ndarray] = []
    times: list[float] = []
    decoded = 0
    with open_video(path) as container:
        stream = video_stream(container)
        if stream.codec_context is None:
            raise InvalidVideo(f"chunk {plan.index}: the video stream has no decoder")
        ctx = stream.codec_context
        ctx.thread_type = "AUTO"  # frame + slice threads: the one setting that speeds decoding up
        ctx.thread_count = threads
        origin = stream_start_s(stream)
        # Without a stated rate (variable-rate Matroska), a millisecond grid
        # keeps `frame_indices / source_fps` equal to the true timestamps.
        source_fps = header_fps(stream) or 1000.0

        def keep(frame: av.VideoFrame, t: float) -> None:
            picked.append(_to_rgb(frame, plan.width, plan.height))
            times.append(t)

        # `prev` is the last frame before the current target, `frame` the first
        # at or after it; whichever is nearer wins.
        prev: tuple[av.VideoFrame, float] | None = None
        # A frame shown before the chunk may stand for its start (sparse,
        # variable-rate video), but not one from further back than a chunk.
        earliest = plan.start_s - plan.duration_s
        last_kept: av.VideoFrame | None = None
        next_target = 0
        try:
            for frame in frames_from(container, stream, plan.start_s):
                decoded += 1
                t = _frame_time(frame, origin, prev, source_fps)
                if t < earliest:
                    continue
                while next_target < len(targets) and t >= targets[next_target]:
                    goal = targets[next_target]
                    best = frame if prev is None or t - goal < goal - prev[1] else prev[0]
                    best_t = t if best is frame else prev[1]
                    if best is not last_kept:
                        keep(best, best_t)
                        last_kept = best
                    next_target += 1
                if next_target == len(targets):
                    break  # past the last target: the rest of the chunk is not needed
                prev = (frame, t)
        except av.FFmpegError as exc:
            raise InvalidVideo(
                f"chunk {plan.index} [{plan.start_s:.2f}, {plan.end_s:.2f}] s: the video is truncated or corrupt "
                f"({getattr(exc, 'strerror', None) or exc})"
            ) from exc
        # The stream ended before the last targets: the last frame is nearest.
        if next_target < len(targets) and prev is not None and prev[0] is not last_kept:
            keep(*prev)

    if not picked:
        raise InvalidVideo(f"chunk {plan.index}: no frame decodes in [{plan.start_s:.2f}, {plan.end_s:.2f}] s")
    sampled = len(picked)
    # Qwen3-VL folds frames in pairs; repeat the last one rather than drop one.
    while len(picked) < 2 or len(picked) % 2:
        picked.append(picked[-1])
        times.append(times[-1])
    stats = DecodeStats(
        frames_decoded=decoded,
        frames_sampled=sampled,
        frames_kept=len(picked),
        decode_s=time.perf_counter() - started,
    )
    logger.debug(
        "chunk %d [%.2f, %.2f] s: decoded %d, kept %d frames in %.3f s",
        plan.index,
        plan.start_s,
        plan.end_s,
        decoded,
        len(picked),
        stats.decode_s,
    )
    return SampledChunk(frames=np.stack(picked), frame_times_s=times, source_fps=source_fps, plan=plan, stats=stats)


def _frame_time(frame: av.VideoFrame, origin: float, prev: tuple[av.VideoFrame, float] | None, fps: float) -> float:
    """Seconds from the stream start; a frame without pts follows the previous one."""
    if frame.time is not None:
        return float(frame.time) - origin
    return prev[1] + 1 / fps if prev is not None else 0.0


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """The frame upright as RGB at width x height.

    Scaling happens in the coded orientation (swapping the target sides for
    quarter turns), then the small result is rotated: cheaper than rotating
    the full-size frame.
    """
    rotation = display_rotation(frame)
    quarter = rotation in (90, 270)
    out_w, out_h = (height, width) if quarter else (width, height)
    rgb = frame.reformat(width=out_w, height=out_h, format="rgb24", interpolation="AREA").to_ndarray()
    if rotation:
        # Turn clockwise by `rotation`: np.rot90 turns counter-clockwise.
        rgb = np.rot90(rgb, k=-rotation // 90)
    return np.ascontiguousarray(rgb)
