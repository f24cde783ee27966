"""The compressed-domain pass: which frames can show a change, from the packets alone (no decoding).

An encoder spends bits where the picture changes. On a static screen an inter
frame codes almost nothing (all macroblocks skipped: tens to hundreds of bytes
against tens of kilobytes for a keyframe), and each change shows as a packet
far above that floor. So per packet, from its size, key flag and pts:

- the payload size is the packet size minus codec padding that carries no
  picture (CBR rate control fills the budget with it): H.264 filler NAL units
  (type 12), HEVC filler (type 38), AV1 padding OBUs (type 15), MPEG-4 Part 2
  stuffing (a 0x1C3 start code and 0xFF bytes); VP8/VP9 have no padding syntax
  (libvpx undershoots instead);
- the baseline is the smallest inter payload of the range: what "nothing
  changed" costs with this encoder, bitrate and resolution (sizes are only
  ever compared with it, never with a constant);
- an inter packet is static when its payload is at most `spike_ratio` times
  the baseline (`bitmap_spike_ratio` for MPEG-4 Part 2, whose idle frame codes
  a skip flag per macroblock: its floor grows with the resolution and a small
  change adds little to it); anything larger (a relative spike) may show a change;
- a hidden frame (VP8/VP9 alt-ref, AV1 frames shown later with
  `show_existing_frame`) carries a picture that a later, small packet shows:
  from it to the next keyframe nothing counts as static;
- the range is quiet only when its baseline is a small fraction
  (`quiet_fraction`) of its keyframes: on camera footage, under noise, or
  with a live region (a webcam tile, a playing video) every inter frame codes
  real content, nothing is static, and decoding falls back to the full path.
  Unstripped padding (an encoder whose filler is not recognised) raises the
  baseline the same way: it fails safe, as "possibly changing".

Keyframes are never static: an encoder's scene-cut puts them at changes.
Frames whose packet is static show the picture of the frame before them in
display order (what the decoder following this pass relies on,
`serve_app.video.guided`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median

from serve_app.config import VideoSettings

__all__ = [
    "CATCH_UP_S",
    "JOIN_S",
    "WINDOW_S",
    "PacketInfo",
    "active_spans",
    "PacketParams",
    "has_hidden_frame",
    "nal_length_size",
    "packet_params",
    "payload_size",
    "static_flags",
]

#: Possibly-changing packets closer than this (seconds) form one active stretch: on busy content (typing,
#: scrolling) the list stays as short as the stretches, not one entry per frame.
JOIN_S = 1.0
#: The pass judges a stream in windows of this many seconds (a chunk's length: what the decoder judges).
WINDOW_S = 20.0
#: x264 refines a keyframe's picture over the next ~0.9 s (measured on idle 640x360 screens: packets 2-15x
#: the idle cost in the first 0.3 s, 1.5x in the 0.5-0.9 s after): not a change.
CATCH_UP_S = 1.0

# Codecs whose idle inter frame codes a skip flag per macroblock (see `bitmap_spike_ratio`).
_SKIP_BITMAP = frozenset({"mpeg4", "msmpeg4v3", "msmpeg4v2", "mpeg2video", "mpeg1video"})


@dataclass(frozen=True)
class PacketParams:
    """Thresholds of the compressed-domain pass; the values and the measurements behind them are settings
    (`VideoSettings.packet_*`, made into this by `packet_params`)."""

    spike_ratio: float  # a static inter packet is at most this many times the range's smallest one
    bitmap_spike_ratio: float  # the same for the codecs in `_SKIP_BITMAP`
    quiet_fraction: float  # smallest inter payload above this fraction of the median keyframe: nothing static


def packet_params(video: VideoSettings) -> PacketParams | None:
    """The pass's thresholds, or None when guided decoding is switched off (`video.packet_guided`)."""
    if not video.packet_guided:
        return None
    return PacketParams(video.packet_spike_ratio, video.packet_bitmap_spike_ratio, video.packet_quiet_fraction)


@dataclass(frozen=True)
class PacketInfo:
    """One demuxed packet, in decode order."""

    pts_s: float | None  # presentation time (seconds from the stream start), if the container says
    size: int  # payload bytes (`payload_size`)
    key: bool
    hidden: bool = False  # carries a picture shown by a later packet (`has_hidden_frame`)


def static_flags(codec: str, packets: Sequence[PacketInfo], params: PacketParams) -> list[bool]:
    """Per packet (decode order): True when its frame shows the same picture as the frame before it.

    A range longer than `WINDOW_S` (a chunk grown over static stretches) is judged in parts of about
    `WINDOW_S`, each from a keyframe, as a chunk of the plain grid would be: one stray small packet then
    sets the floor of its part only (one 29-byte packet among 53-byte idle ones made a whole 58 s chunk
    "changing", decoded in full). All False for a part that is not quiet or has no keyframe.
    """
    cuts = _window_cuts(packets)
    return [flag for a, b in itertools.pairwise(cuts) for flag in _range_static_flags(codec, packets[a:b], params)]


def _window_cuts(packets: Sequence[PacketInfo]) -> list[int]:
    """Indices (decode order) where the parts of `static_flags` start, and the end: at the first keyframe
    `WINDOW_S` or more after the part's start, unless less than half a window would remain."""
    times = [p.pts_s for p in packets if p.pts_s is not None]
    cuts = [0]
    if times:
        last, start = max(times), packets[0].pts_s if packets[0].pts_s is not None else min(times)
        for i, p in enumerate(packets):
            t = p.pts_s
            if i and p.key and t is not None and t - start >= WINDOW_S and last - t >= WINDOW_S / 2:
                cuts.append(i)
                start = t
    return [*cuts, len(packets)]


def _range_static_flags(codec: str, packets: Sequence[PacketInfo], params: PacketParams) -> list[bool]:
    limit = _static_limit(codec, packets, params)
    if limit is None:
        return [False] * len(packets)
    flags, after_hidden = [], False
    for p in packets:
        after_hidden = (after_hidden and not p.key) or p.hidden
        flags.append(not p.key and not after_hidden and 0 < p.size <= limit)
    return flags


def active_spans(codec: str, packets: Sequence[PacketInfo], params: PacketParams) -> list[tuple[float, float]] | None:
    """[first, last] presentation times of the stretches that may show a change, in time order (packets
    less than `JOIN_S` apart joined); None when nothing in the stream can be called static (camera
    footage, a live region everywhere) or when packets lack times.

    For planning, not decoding (the sampler still compares the pictures of every chunk; a chunk only
    grows over stretches this finds nothing in, `serve_app.video.chunking`), so it errs towards "active":
    - judged window by window (`WINDOW_S` of presentation time): an encoder's idle cost moves with the
      picture it holds, so one floor for a whole file calls later idle stretches changing;
    - a window's idle cost is its median inter payload, not its smallest (x264's idle B-frames code
      ~35 bytes, its idle P-frames ~55: the smallest makes every P-frame a change), and the window is
      quiet only when that median is under `quiet_fraction` of its keyframes (typing or a live tile
      everywhere: the whole window is active);
    - keyframes do not count, nor the packets in the `CATCH_UP_S` after one (the encoder refining the
      keyframe's picture): a periodic keyframe on a static screen changes nothing;
    - after a hidden frame (VP8/VP9 alt-ref, AV1) up to the next keyframe everything is active.
    """
    if not packets or any(p.pts_s is None for p in packets):
        return None
    windows: dict[int, list[PacketInfo]] = {}
    for p in packets:
        windows.setdefault(int((p.pts_s or 0.0) // WINDOW_S), []).append(p)
    times: list[float] = []
    quiet = False
    for window in windows.values():
        limit = _static_limit(codec, window, params, idle_cost=median)
        if limit is None:
            times.extend(p.pts_s or 0.0 for p in window)
            continue
        quiet = True
        key_s, after_hidden = float("-inf"), False
        for p in window:  # decode order: a hidden frame precedes the packets that show it
            t = p.pts_s or 0.0
            after_hidden = (after_hidden and not p.key) or p.hidden
            if p.key:
                key_s = t
            elif (after_hidden or p.size > limit) and t - key_s > CATCH_UP_S:
                times.append(t)
    if not quiet:
        return None
    spans: list[tuple[float, float]] = []
    for t in sorted(times):
        if spans and t - spans[-1][1] < JOIN_S:
            spans[-1] = (spans[-1][0], t)
        else:
            spans.append((t, t))
    return spans


def _static_limit(
    codec: str,
    packets: Sequence[PacketInfo],
    params: PacketParams,
    idle_cost: Callable[[list[int]], float] = min,
) -> float | None:
    """The largest static inter payload of the range: `spike_ratio` times its idle cost (`idle_cost` of
    its inter payloads: the smallest for decoding, the median for planning); None when the range is not
    quiet (idle cost above `quiet_fraction` of its median keyframe) or has no keyframe."""
    inter = [p.size for p in packets if not p.key and p.size > 0]
    keys = [p.size for p in packets if p.key]
    if not inter or not keys:
        return None
    floor = idle_cost(inter)
    if floor > params.quiet_fraction * median(keys):
        return None
    return (params.bitmap_spike_ratio if codec in _SKIP_BITMAP else params.spike_ratio) * floor


def has_hidden_frame(codec: str, data: bytes) -> bool:
    """True when the packet holds a picture it does not show, or shows one decoded before.

    VP8: the frame tag's show_frame bit; VP9: a superframe (several frames, the hidden alt-ref
    among them) or a frame header with show_existing_frame or without show_frame; AV1: a temporal
    unit with more than one frame, or whose frame is show_existing_frame.
    """
    if not data:
        return False
    if codec == "vp8":
        return not data[0] & 0x10
    if codec == "vp9":
        if data[-1] & 0xE0 == 0xC0:  # superframe index
            return True
        bits = int.from_bytes(data[:2].ljust(2, b"\x00"), "big")

        def bit(i: int) -> int:  # the i-th bit from the left of the header's first two bytes
            return (bits >> (15 - i)) & 1

        # frame_marker (2 bits), profile low and high bits, a reserved bit in profile 3, then the flags.
        existing = 5 if bit(2) | bit(3) << 1 == 3 else 4
        return bool(bit(existing)) or not bit(existing + 2)
    if codec == "av1":
        frames = [payload for kind, payload in _obus(data) if kind in (3, 6)]  # FRAME_HEADER, FRAME
        return len(frames) > 1 or bool(frames and frames[0] and frames[0][0] & 0x80)
    return False


def payload_size(codec: str, data: bytes, nal_length_size: int | None = None) -> int:
    """Bytes of `data` that code the picture: the packet minus its codec's padding.

    `nal_length_size`: the NAL length prefix of H.264/HEVC in MP4/Matroska (from the avcC/hvcC
    extradata); None for Annex B streams (start codes), which are detected from the data too.
    """
    if codec == "h264":
        return len(data) - _nal_padding(data, nal_length_size, lambda b: b & 0x1F == 12)
    if codec == "hevc":
        return len(data) - _nal_padding(data, nal_length_size, lambda b: (b >> 1) & 0x3F == 38)
    if codec == "av1":
        return len(data) - _av1_padding(data)
    if codec == "mpeg4":
        at = data.rfind(b"\x00\x00\x01\xc3")
        if at >= 0 and data[at + 4 :].count(0xFF) == len(data) - at - 4:
            return at
    return len(data)


def nal_length_size(codec: str, extradata: bytes | None) -> int | None:
    """The NAL length prefix size from avcC/hvcC extradata; None for Annex B (no or start-code extradata)."""
    if not extradata or extradata[:3] == b"\x00\x00\x01" or extradata[:4] == b"\x00\x00\x00\x01":
        return None
    if codec == "h264" and len(extradata) > 4:
        return (extradata[4] & 0x03) + 1
    if codec == "hevc" and len(extradata) > 21:
        return (extradata[21] & 0x03) + 1
    return None


def _nal_padding(data: bytes, length_size: int | None, test: Callable[[int], bool]) -> int:
    """Total bytes of filler NAL units (prefix included) in an H.264/HEVC access unit.

    `test` says from a NAL header's first byte whether the unit is filler.
    """
    padding = 0
    if length_size is None or data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01":
        # Annex B: NAL units between start codes.
        starts = []
        at = data.find(b"\x00\x00\x01")
        while at >= 0:
            starts.append(at + 3)
            at = data.find(b"\x00\x00\x01", at + 3)
        for i, start in enumerate(starts):
            end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
            if start < len(data) and test(data[start]):
                padding += end - start + 3
        return padding
    at = 0
    while at + length_size < len(data):
        size = int.from_bytes(data[at : at + length_size], "big")
        if test(data[at + length_size]):
            padding += length_size + size
        at += length_size + size
    return padding


def _av1_padding(data: bytes) -> int:
    """Total bytes of padding OBUs (type 15) in an AV1 temporal unit (low-overhead format)."""
    return sum(end - start for kind, _, start, end in _obu_spans(data) if kind == 15)


def _obus(data: bytes) -> list[tuple[int, bytes]]:
    """(type, payload) of each OBU of an AV1 temporal unit."""
    return [(kind, data[payload:end]) for kind, payload, _, end in _obu_spans(data)]


def _obu_spans(data: bytes) -> list[tuple[int, int, int, int]]:
    """(type, payload start, OBU start, OBU end) of each OBU of an AV1 temporal unit."""
    spans = []
    at = 0
    while at < len(data):
        header = data[at]
        start = at
        at += 2 if header & 0x04 else 1  # the extension byte
        if not header & 0x02:  # no size field: the OBU runs to the end
            size = len(data) - at
        else:
            size = shift = 0
            while at < len(data):
                byte = data[at]
                at += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
        spans.append(((header >> 3) & 0x0F, at, start, min(at + size, len(data))))
        at += size
    return spans
