"""A decoder that follows the compressed-domain pass: decode what can have changed, reuse the rest.

`guided_frames` reads a chunk's packets first (demux only, `serve_app.video.packets`), then decodes
group by group (a keyframe and the packets up to the next one, decode order):

- a group whose inter packets are all static costs its keyframe only: that picture stands for every
  frame of the group, each reported at its own presentation time;
- otherwise the group is decoded from its keyframe through its last possibly-changing packet (and any
  packet shown before one already fed: B-frames), then the decoder is drained; the static frames after
  that show the last decoded picture, again each at its own time.

The decoder needs a decode-order prefix of each group only, so every fed frame has its references.
Non-reference frames are skipped as the caller's `before_decode` says (as in the full path).
When nothing would be saved (camera footage, a live region, no pts), `guided_frames` returns None
and the caller decodes as before: the pass then costs one demux of the chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video.stream

from serve_app.errors import InvalidVideo
from serve_app.video.packets import (
    PacketInfo,
    PacketParams,
    active_spans,
    has_hidden_frame,
    nal_length_size,
    payload_size,
    static_flags,
)
from serve_app.video.probe import BadPackets, demux, open_video, packets_from, stream_start_s, video_stream

__all__ = ["Shown", "activity", "guided_frames"]

# Packets read past the chunk's end: B-frames put frames shown before it after a later frame.
_REORDER_PACKETS = 16
_BAD_DATA = (av.error.InvalidDataError,)


@dataclass(frozen=True)
class Shown:
    """A picture and when it was on screen (seconds from the stream start; None: the frame's own pts)."""

    frame: av.VideoFrame
    time_s: float | None = None


@dataclass
class _Group:
    packets: list[av.Packet]
    fed: int  # packets[:fed] are decoded; the frames of the rest show the last decoded picture
    times: list[float]  # stream times of packets[fed:], in display order


def guided_frames(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    start_s: float,
    end_s: float,
    before_decode: Callable[[av.Packet], None],
    bad: BadPackets,
    params: PacketParams,
) -> Iterator[Shown] | None:
    """Pictures in display order for the chunk [start_s, end_s] (seconds from the stream start).

    None when the pass finds nothing to save: the caller decodes the chunk in full instead.
    """
    if stream.time_base is None:
        return None
    origin = stream_start_s(stream)
    codec, length_size = _codec(stream)
    held: list[av.Packet] = []
    infos: list[PacketInfo] = []
    past_end = 0
    for packet in packets_from(container, stream, start_s, bad):
        if not packet.size:
            continue
        info = _packet_info(packet, stream.time_base, codec, length_size, origin)
        if info.pts_s is None:
            return None  # no presentation times: nothing to stand a picture in for
        held.append(packet)
        infos.append(info)
        past_end += info.pts_s > end_s
        if past_end > _REORDER_PACKETS:
            break
    if not held or not infos[0].key:
        return None
    groups = _plan(held, infos, static_flags(codec, infos, params))
    if all(g.fed == len(g.packets) for g in groups):
        return None
    return _decode(stream, groups, before_decode, bad, origin)


def activity(path: str | Path, params: PacketParams) -> list[tuple[float, float]] | None:
    """The stretches of the whole video stream that may show a change (`packets.active_spans`, times from
    the stream start): one demux pass, no decoding. None when nothing can be called static, or when the
    stream cannot be read through (the planner then cuts chunks without it; decoding reports the damage)."""
    try:
        with open_video(path) as container:
            stream = video_stream(container)
            if stream.time_base is None:
                return None
            codec, length_size = _codec(stream)
            origin = stream_start_s(stream)
            time_base = stream.time_base
            infos = [_packet_info(p, time_base, codec, length_size, origin) for p in demux(container, stream) if p.size]
    except (av.FFmpegError, InvalidVideo):
        return None
    return active_spans(codec, infos, params)


def _codec(stream: av.video.stream.VideoStream) -> tuple[str, int | None]:
    """The stream's format (not its decoder: libdav1d decodes "av1") and its NAL length prefix size."""
    ctx = stream.codec_context
    codec = ctx.codec.canonical_name
    return codec, nal_length_size(codec, ctx.extradata)


def _packet_info(
    packet: av.Packet, time_base: Fraction, codec: str, length_size: int | None, origin: float
) -> PacketInfo:
    pts = None
    if packet.pts is not None:
        # The float arithmetic of `VideoFrame.time`: a reused picture's time ties with a decoded one's.
        pts = float(packet.pts) * time_base.numerator / time_base.denominator - origin
    data = bytes(packet)
    return PacketInfo(pts, payload_size(codec, data, length_size), packet.is_keyframe, has_hidden_frame(codec, data))


def _plan(held: list[av.Packet], infos: list[PacketInfo], static: list[bool]) -> list[_Group]:
    """Split into keyframe groups and choose each group's decoded prefix."""
    starts = [i for i, info in enumerate(infos) if info.key] + [len(infos)]
    groups = []
    for a, b in zip(starts, starts[1:], strict=False):
        pts = [info.pts_s for info in infos[a:b]]
        assert all(t is not None for t in pts)
        times: list[float] = [t for t in pts if t is not None]
        changing = [i for i in range(1, b - a) if not static[a + i]]
        if any(t < times[0] for t in times):
            fed = b - a  # leading pictures shown before the keyframe (open GOP): decode all
        else:
            fed = changing[-1] + 1 if changing else 1
            # A later packet shown before one already fed is a B-frame between fed pictures.
            while fed < b - a and times[fed] < max(times[:fed]):
                fed += 1
        groups.append(_Group(held[a:b], fed, sorted(times[fed:])))
    return groups


def _decode(
    stream: av.video.stream.VideoStream,
    groups: list[_Group],
    before_decode: Callable[[av.Packet], None],
    bad: BadPackets,
    origin: float,
) -> Iterator[Shown]:
    ctx = stream.codec_context
    last: av.VideoFrame | None = None
    for group in groups:
        for packet in group.packets[: group.fed]:
            before_decode(packet)
            try:
                frames = ctx.decode(packet)
            except _BAD_DATA as exc:
                bad.skip("decoded", exc, float(packet.pts * stream.time_base) - origin)
                continue
            if frames:
                bad.ok("decoded")
            for frame in frames:
                last = frame
                yield Shown(frame)
        if not group.times:
            continue
        for frame in _drain(stream):  # the stand-in must be the last picture shown
            last = frame
            yield Shown(frame)
        ctx.flush_buffers()  # ready for the next group's keyframe
        if last is not None:
            for t in group.times:
                yield Shown(last, t)
    for frame in _drain(stream):
        yield Shown(frame)


def _drain(stream: av.video.stream.VideoStream) -> list[av.VideoFrame]:
    """The frames the decoder still holds (it then takes no packet until `flush_buffers`)."""
    frames = stream.codec_context.decode(None)
    for frame in frames:
        frame.time_base = stream.time_base  # PyAV takes it from the packet, and there is none
    return frames
