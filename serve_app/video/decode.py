"""Decode one planned chunk: seek, decode only its range, sample, resize.

The decoder does only the work the sampling needs:
- it seeks to the keyframe before the chunk and stops after the last target;
- frames no other frame depends on (non-reference frames: most B-frames) are
  skipped unless they lie within `_NEED_FRAMES` source frames of a sample
  time, so the frame nearest each target is still decoded (variable-rate
  streams skip only before the chunk);
- decoder threads (frame + slice) per `threads`;
- only the frames kept are converted to RGB at the planned size (the
  expensive part of a naive loop is converting every frame); adaptive
  sampling looks at candidates through a small grey thumbnail.

Timestamps reported are the picked frames' real presentation times, counted
from the video stream's start, so the model is told when each frame was shown.

Frames are only ever from their own time: every frame of a chunk was on screen
during [start_s, end_s]. Its time lies in that range, or before start_s when
it is the frame still shown at start_s (sparse or variable-rate video: the
last frame before the chunk, with its true time; the reference frame before
it if that one was a skipped non-reference frame), at most one chunk length
before; never after end_s (`END_SLACK_S` for millisecond timestamps). A chunk
with no such frame is empty: InvalidVideo, naming the frames around the gap.
Corrupt packets are skipped, the chunk keeps the frames around them, and a
warning is logged (`serve_app.video.probe`'s policy; `packets_skipped`).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from serve_app.errors import InvalidVideo
from serve_app.schemas import ChunkPlan, DecodeStats
from serve_app.video.guided import Shown, guided_frames
from serve_app.video.packets import PacketParams
from serve_app.video.probe import (
    BadPackets,
    display_rotation,
    ffmpeg_reason,
    frames_from,
    header_fps,
    open_video,
    stream_start_s,
    video_stream,
)
from serve_app.video.sampling import AdaptiveParams, AdaptiveSampler, thumbnail_size
from serve_app.video.tokens import visual_tokens

__all__ = ["SampledChunk", "decode_chunk"]

logger = logging.getLogger(__name__)

#: Non-reference frames this close to a sample time (in source frames) are decoded: one may be the nearest.
_NEED_FRAMES = 1.5
# Decoders that read `skip_frame` for every packet (FFmpeg's native ones). libdav1d
# (AV1) fixes it when it opens, so switching it on would drop frames near targets too.
_PER_PACKET_SKIP = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video", "vp8", "vp9"})
#: A frame this far after a chunk's end still counts as inside it: timestamps are rounded to milliseconds.
END_SLACK_S = 1e-3


@dataclass
class SampledChunk:
    """Frames of one chunk, ready for the model (an in-process value, not a schema)."""

    frames: np.ndarray  # uint8 [T, H, W, 3], T even, upright, plan.height x plan.width
    frame_times_s: list[float]  # source presentation time of each frame (from stream start)
    source_fps: float
    plan: ChunkPlan
    stats: DecodeStats
    packets_skipped: int = 0  # corrupt packets skipped while decoding the chunk (logged as a warning)

    @property
    def frame_indices(self) -> list[int]:
        """Frame numbers at `source_fps`: the metadata Qwen3-VL derives its timestamps from."""
        return [round(t * self.source_fps) for t in self.frame_times_s]


def decode_chunk(
    path: str | Path, plan: ChunkPlan, threads: int = 0, packets: PacketParams | None = None
) -> SampledChunk:
    """Sample frames from [plan.start_s, plan.end_s] of the video as the plan says.

    Uniform: `plan.max_frames` frames, the nearest decoded frame to each
    target time (never the same frame twice). Adaptive: candidates at
    `plan.fps` picked the same way, of which `AdaptiveSampler` keeps those
    that show a change, at most `plan.max_frames`. Only frames shown during
    the chunk are candidates (see the module docstring): none after
    `plan.end_s`, and before `plan.start_s` only the one still shown then,
    from at most a chunk length before, so a chunk past the end of the data
    or inside a longer gap fails with InvalidVideo instead of showing frames
    from another time. The result is padded to an even count of at least 2
    by repeating the last frame. `threads` = 0 lets FFmpeg choose.

    `packets`: with adaptive sampling, decode only what the packets say can
    have changed (`serve_app.video.guided`); a static frame is then the last
    decoded picture at its own time. None decodes every needed frame.
    """
    started = time.perf_counter()
    targets = plan.sample_times()
    interval = plan.duration_s / len(targets)
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
        stated_fps = header_fps(stream)
        source_fps = stated_fps or 1000.0
        skip = _SkipPolicy(ctx, stream, origin, targets, interval, stated_fps)
        sink = _sink(plan)

        # `prev` is the last frame before the current target, `frame` the first
        # at or after it; whichever is nearer wins.
        prev: tuple[av.VideoFrame, float] | None = None
        # A frame shown before the chunk may stand for its start (sparse,
        # variable-rate video), but not one from further back than a chunk.
        earliest = plan.start_s - plan.duration_s
        latest = plan.end_s + END_SLACK_S  # a frame after this is not shown yet when the chunk ends
        before_t = after_t = None  # the frames around the chunk, when none is within its reach
        # The last frame given to the sink, by picture and time: a reused picture stands for several times.
        last_kept: tuple[av.VideoFrame, float] | None = None
        next_target = 0
        bad = BadPackets()
        try:
            for shown in _pictures(container, stream, plan, skip, bad, packets):
                frame = shown.frame
                if shown.time_s is None:
                    decoded += 1
                    t = _frame_time(frame, origin, prev, source_fps)
                else:
                    t = shown.time_s
                if t < earliest:
                    before_t = t
                    continue
                if t > latest:
                    after_t = t
                    break  # from after the chunk: the remaining targets get the last frame within it
                while next_target < len(targets) and t >= targets[next_target]:
                    goal = targets[next_target]
                    # By time, not identity: a reused picture is the same object at several times.
                    best, best_t = (frame, t) if prev is None or t - goal < goal - prev[1] else prev
                    if not _same((best, best_t), last_kept):
                        sink.add(best, best_t)
                        last_kept = (best, best_t)
                    next_target += 1
                if next_target == len(targets):
                    break  # past the last target: the rest of the chunk is not needed
                prev = (frame, t)
            # The stream ended, or the next frame is after the chunk: the last frame within it is nearest.
            if next_target < len(targets) and prev is not None and not _same(prev, last_kept):
                sink.add(*prev)
            picked, times, sampled = sink.finish()
        except av.FFmpegError as exc:
            raise InvalidVideo(
                f"chunk {plan.index} [{plan.start_s:.2f}, {plan.end_s:.2f}] s: the video is truncated or corrupt "
                f"({ffmpeg_reason(exc)})"
            ) from exc
        except InvalidVideo as exc:  # too many corrupt packets in a row
            raise InvalidVideo(f"chunk {plan.index} [{plan.start_s:.2f}, {plan.end_s:.2f}] s: {exc.detail}") from exc

    if not picked:
        raise InvalidVideo(_empty_chunk(plan, before_t, after_t))
    if bad.count:
        logger.warning(
            "chunk %d [%.2f, %.2f] s: skipped %d corrupt packet(s)%s; kept the %d frames around them",
            plan.index,
            plan.start_s,
            plan.end_s,
            bad.count,
            f" from {bad.first_s:.2f} s" if bad.first_s is not None else "",
            len(picked),
        )
    # Qwen3-VL folds frames in pairs; repeat the last one rather than drop one.
    while len(picked) < 2 or len(picked) % 2:
        picked.append(picked[-1])
        times.append(times[-1])
    stats = DecodeStats(
        frames_decoded=decoded,
        frames_sampled=sampled,
        frames_kept=len(picked),
        decode_s=time.perf_counter() - started,
        visual_tokens=visual_tokens(len(picked), plan.height, plan.width),
        sampling=plan.sampling,
    )
    logger.debug(
        "chunk %d [%.2f, %.2f] s (%s): decoded %d, sampled %d, kept %d frames in %.3f s",
        plan.index,
        plan.start_s,
        plan.end_s,
        plan.sampling,
        decoded,
        sampled,
        len(picked),
        stats.decode_s,
    )
    return SampledChunk(
        frames=np.stack(picked),
        frame_times_s=times,
        source_fps=source_fps,
        plan=plan,
        stats=stats,
        packets_skipped=bad.count,
    )


def _pictures(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    plan: ChunkPlan,
    skip: _SkipPolicy,
    bad: BadPackets,
    packets: PacketParams | None,
) -> Iterator[Shown]:
    """The chunk's pictures in display order: guided by the packets when asked and worth it, else all."""
    if packets is not None and plan.sampling == "adaptive":
        # Uniform sampling takes a frame per target whatever it shows: nothing to follow.
        guided = guided_frames(
            container, stream, plan.start_s, plan.end_s + END_SLACK_S, skip.before_decode, bad, packets
        )
        if guided is not None:
            return guided
    return (Shown(frame) for frame in frames_from(container, stream, plan.start_s, skip.before_decode, bad))


def _same(a: tuple[av.VideoFrame, float], b: tuple[av.VideoFrame, float] | None) -> bool:
    return b is not None and a[0] is b[0] and a[1] == b[1]


def _empty_chunk(plan: ChunkPlan, before_t: float | None, after_t: float | None) -> str:
    """Why a chunk has no frame: which frames lie around it."""
    if after_t is None:
        missing = f"chunk {plan.index}: no frame decodes in [{plan.start_s:.2f}, {plan.end_s:.2f}] s"
        if before_t is None:
            return missing
        return f"{missing}: the video is truncated or corrupt, its frames end at {before_t:.2f} s"
    shown = "no frame is shown in it" if before_t is None else f"the last frame before it is at {before_t:.2f} s"
    where = f"chunk {plan.index} [{plan.start_s:.2f}, {plan.end_s:.2f}] s"
    return f"{where} is empty: {shown}, and the next is at {after_t:.2f} s"


class _SkipPolicy:
    """Tells the decoder, packet by packet, whether non-reference frames may be skipped.

    A packet's presentation time says which frame it holds; a non-reference
    frame far from every sample time cannot be picked, and nothing else
    needs it. Without a stated frame rate (variable rate) the neighbourhood
    of a target is unknown, so inside the chunk everything is decoded.
    Decoders outside `_PER_PACKET_SKIP` decode everything.
    """

    def __init__(
        self,
        ctx: av.codec.context.CodecContext,
        stream: av.video.stream.VideoStream,
        origin: float,
        targets: list[float],
        interval: float,
        stated_fps: float | None,
    ) -> None:
        self.ctx = ctx
        self.time_base = stream.time_base
        self.origin = origin
        self.targets = targets
        self.margin = _NEED_FRAMES / stated_fps if stated_fps else None
        # Before this nothing can be the nearest frame to the first target.
        self.chunk_from = targets[0] - interval
        self.enabled = ctx.name in _PER_PACKET_SKIP
        self.skipping = False

    def before_decode(self, packet: av.Packet) -> None:
        if not self.enabled:
            return
        if packet.pts is None or self.time_base is None:
            self._set(False)
            return
        t = float(packet.pts * self.time_base) - self.origin
        if t < self.chunk_from:
            self._set(True)
        elif self.margin is None:
            self._set(False)
        else:
            i = bisect.bisect_left(self.targets, t)
            near = min((abs(self.targets[j] - t) for j in (i - 1, i) if 0 <= j < len(self.targets)), default=0.0)
            self._set(near > self.margin)

    def _set(self, skip: bool) -> None:
        if skip != self.skipping:
            self.ctx.skip_frame = "NONREF" if skip else "DEFAULT"
            self.skipping = skip


class _KeepAll:
    """Uniform sampling: every picked frame is kept."""

    def __init__(self, plan: ChunkPlan) -> None:
        self.plan = plan
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []

    def add(self, frame: av.VideoFrame, time_s: float) -> None:
        self.frames.append(_to_rgb(frame, self.plan.width, self.plan.height))
        self.times.append(time_s)

    def finish(self) -> tuple[list[np.ndarray], list[float], int]:
        return self.frames, self.times, len(self.frames)


class _KeepChanges:
    """Adaptive sampling: candidates go through `AdaptiveSampler` via a grey thumbnail."""

    def __init__(self, plan: ChunkPlan) -> None:
        self.plan = plan
        params = AdaptiveParams(floor_s=plan.floor_s, tile_threshold=plan.change_threshold)
        self.sampler: AdaptiveSampler[av.VideoFrame] = AdaptiveSampler(
            params, plan.max_frames, lambda frame: _to_rgb(frame, plan.width, plan.height)
        )
        self.thumb_size: tuple[int, int] | None = None
        self._thumb: tuple[av.VideoFrame, np.ndarray] | None = None  # a reused picture's (guided decoding)

    def add(self, frame: av.VideoFrame, time_s: float) -> None:
        if self.thumb_size is None:
            self.thumb_size = thumbnail_size(frame.width, frame.height)
        width, height = self.thumb_size
        if self._thumb is not None and self._thumb[0] is frame:
            thumb = self._thumb[1]
        else:
            # Coded orientation is fine: candidates are only compared with each other.
            thumb = frame.reformat(width=width, height=height, format="gray", interpolation="AREA").to_ndarray()
            self._thumb = (frame, thumb)
        self.sampler.add(frame, time_s, thumb)

    def finish(self) -> tuple[list[np.ndarray], list[float], int]:
        selection = self.sampler.finish()
        return selection.frames, selection.times_s, selection.candidates


def _sink(plan: ChunkPlan) -> _KeepAll | _KeepChanges:
    return _KeepChanges(plan) if plan.sampling == "adaptive" else _KeepAll(plan)


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
    # Bilinear: when shrinking, swscale widens its filter by the scale factor, so
    # it averages like AREA (text stays crisp) at about half the cost (bench/decode.py).
    rgb = frame.reformat(width=out_w, height=out_h, format="rgb24", interpolation="BILINEAR").to_ndarray()
    if rotation:
        # Turn clockwise by `rotation`: np.rot90 turns counter-clockwise.
        rgb = np.rot90(rgb, k=-rotation // 90)
    return np.ascontiguousarray(rgb)
