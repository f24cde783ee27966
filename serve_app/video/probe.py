"""Probe and validate a video file with PyAV.

This is the boundary where PyAV/FFmpeg errors become reelserve's typed errors
(`serve_app.errors`): whatever passes `probe` can be planned and decoded.
Messages never contain the file's path (it is a server-side detail); logs do.

Corrupt packets: a packet FFmpeg cannot demux or decode (invalid data), or one of a stream that
appeared mid-file, is skipped and counted (`BadPackets`), here and in `decode`; the frames around it
still count. Only `_MAX_BAD_IN_A_ROW` failures in a row make the file (or the chunk) invalid. A file
whose data ends before its stated duration (by more than 2.5 frames) is truncated, wherever the cut.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.container
import av.stream
import av.video.stream

from serve_app.config import VideoSettings
from serve_app.errors import (
    EmptyUpload,
    InvalidVideo,
    NoVideoStream,
    PayloadTooLarge,
    UnsupportedCodec,
    VideoTooLong,
    ZeroDuration,
)
from serve_app.schemas import VideoInfo

__all__ = [
    "BadPackets",
    "demux",
    "ffmpeg_reason",
    "file_sha256",
    "display_rotation",
    "frames_from",
    "header_fps",
    "open_video",
    "packets_from",
    "probe",
    "stream_start_s",
    "video_stream",
]

logger = logging.getLogger(__name__)

# FFmpeg happily "decodes" text files as ANSI art; these demuxers mean text.
_TEXT_FORMATS = frozenset({"tty", "bin", "xbin", "adf", "idf"})
# Still-image demuxers: a single picture, nothing to sample over time.
_IMAGE_FORMATS = frozenset({"image2", "image2pipe"})
# Decoder errors that mean "this build cannot decode it", not "the file is bad".
_CANNOT_DECODE = (av.error.DecoderNotFoundError, av.error.PatchWelcomeError, av.error.NotImplementedError)
# How far before the end the tail check seeks (seconds).
_TAIL_S = 1.5
# When a seek lands past the wanted time (inexact indexes, e.g. WebM without
# cues), seek again this much earlier; None = from the start of the stream.
_SEEK_RETRY_BACK_S: tuple[float | None, ...] = (0.0, 3.0, 15.0, 60.0, None)
_HASH_BLOCK = 1024 * 1024
# Corrupt packets skipped in a row beyond which the rest of the stream counts as unreadable.
_MAX_BAD_IN_A_ROW = 64
# Errors that mean "this packet is damaged", not "this build cannot decode the codec".
_BAD_DATA = (av.error.InvalidDataError,)


@dataclass
class BadPackets:
    """Corrupt packets skipped while reading a stream: the policy is skip, keep the rest, warn."""

    count: int = 0
    first_s: float | None = None  # stream time of the first one, when known
    _in_a_row: dict[str, int] = field(default_factory=dict)

    def skip(self, what: Literal["demuxed", "decoded"], exc: Exception, time_s: float | None = None) -> None:
        self.count += 1
        if self.first_s is None:
            self.first_s = time_s
        row = self._in_a_row[what] = self._in_a_row.get(what, 0) + 1
        logger.debug("skipping a packet that cannot be %s (at %s s): %s", what, time_s, exc)
        if row > _MAX_BAD_IN_A_ROW:
            at = f" from {time_s:.2f} s on" if time_s is not None else ""
            raise InvalidVideo(f"the file is corrupt: {row} packets in a row cannot be {what}{at}") from exc

    def ok(self, what: Literal["demuxed", "decoded"]) -> None:
        self._in_a_row[what] = 0


def open_video(path: str | Path) -> av.container.InputContainer:
    """Open `path` for reading, translating FFmpeg's refusal into InvalidVideo.

    A missing file is not the client's fault and propagates as OSError.
    """
    try:
        return av.open(str(path), mode="r", metadata_errors="replace")
    except (av.error.FileNotFoundError, av.error.IsADirectoryError):
        raise
    except av.error.PermissionError as exc:
        if exc.errno == errno.EACCES:  # the server cannot read its own file (EPERM is FFmpeg's bare -1)
            raise
        raise InvalidVideo(f"not a readable media container: FFmpeg could not open it ({ffmpeg_reason(exc)})") from exc
    except av.FFmpegError as exc:
        raise InvalidVideo(f"not a readable media container: FFmpeg could not open it ({ffmpeg_reason(exc)})") from exc


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The video stream to analyse: the default one, else the first.

    Cover art (an `attached_pic` in audio files) is a still image, not video.
    """
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not container.streams:  # e.g. an MP4 cut inside its index: nothing to call a stream of any kind
        raise InvalidVideo("not a readable media container: FFmpeg finds no stream in it (truncated or not a video)")
    if not streams:
        kinds = ", ".join(_describe(s) for s in container.streams) or "none"
        raise NoVideoStream(f"the file has no video stream (streams: {kinds})")
    defaults = [s for s in streams if s.disposition & av.stream.Disposition.default]
    return (defaults or streams)[0]


def stream_start_s(stream: av.stream.Stream) -> float:
    """Presentation time of the stream's first frame; chunk times count from it."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def display_rotation(frame: av.VideoFrame) -> int:
    """Clockwise rotation (0/90/180/270) a player applies to show `frame` upright.

    PyAV reports the display matrix's angle counter-clockwise; FFmpeg's own
    autorotate turns the picture by its negative, and so do we.
    """
    return (-round(frame.rotation / 90) * 90) % 360


def demux(
    container: av.container.InputContainer, stream: av.stream.Stream | None = None, bad: BadPackets | None = None
) -> Iterator[av.Packet]:
    """Packets of `stream` (of every stream when None) from where the demuxer is, past unreadable ones.

    A read FFmpeg reports as invalid data, and a packet of a stream that appeared mid-file (MPEG-TS
    may add one; PyAV then fails with IndexError), are skipped into `bad`: the next read goes on
    after them.
    """
    bad = bad if bad is not None else BadPackets()
    while True:
        try:
            for packet in container.demux(stream) if stream is not None else container.demux():
                bad.ok("demuxed")
                yield packet
            return
        except (IndexError, *_BAD_DATA) as exc:
            bad.skip("demuxed", exc)


def _seek(container: av.container.InputContainer, stream: av.video.stream.VideoStream, time_s: float) -> bool:
    """Seek to the keyframe at or before `time_s` (from the stream's start; 0 = the very start).

    The start is sought at timestamp 0 (or the stream's start, if negative), not at the stream's
    start time: MPEG-TS seeks by decoding time, which B-frames put before the first keyframe's
    presentation time, so a seek to that lands one packet late (and the first keyframe is lost).
    False when FFmpeg refuses the seek (some demuxers answer with a bare -1, "Operation not
    permitted"), which callers treat as "not there".
    """
    if time_s > 0:
        target = int((stream_start_s(stream) + time_s) / stream.time_base)
    else:
        target = min(stream.start_time or 0, 0)
    try:
        container.seek(target, stream=stream, backward=True)
    except av.FFmpegError as exc:
        logger.debug("seek to %.3f s refused: %s", time_s, exc)
        return False
    return True


def frames_from(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    time_s: float,
    before_decode: Callable[[av.Packet], None] | None = None,
    bad: BadPackets | None = None,
) -> Iterator[av.VideoFrame]:
    """Decoded frames from the last keyframe at or before `time_s` onward.

    `time_s` counts from the stream's start; the packets are `packets_from`'s.
    `before_decode` sees each packet before the decoder does (to set what the
    decoder may skip). Corrupt packets are skipped and counted in `bad` (the
    module's policy).
    """
    origin = stream_start_s(stream)
    time_base = stream.time_base
    bad = bad if bad is not None else BadPackets()
    for packet in packets_from(container, stream, time_s, bad):
        if before_decode is not None:
            before_decode(packet)
        try:
            frames = stream.decode(packet)
        except _BAD_DATA as exc:
            at = float(packet.pts * time_base) - origin if packet.pts is not None and time_base else None
            bad.skip("decoded", exc, at)
            continue
        if frames:
            bad.ok("decoded")
        yield from frames


def packets_from(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    time_s: float,
    bad: BadPackets,
) -> Iterator[av.Packet]:
    """Packets from the last keyframe at or before `time_s` onward (decode order, the empty flush last).

    `time_s` counts from the stream's start. Decoding starts at a keyframe:
    inter frames after a seek only give decoder errors. If the demuxer lands
    after `time_s` (or refuses the seek), seek again further back, ending at
    the stream's start.
    """
    origin = stream_start_s(stream)
    time_base = stream.time_base
    for back in _SEEK_RETRY_BACK_S:
        seek_s = 0.0 if back is None else max(0.0, time_s - back)
        if not _seek(container, stream, seek_s) and seek_s > 0:
            continue
        # (A refused seek to the start reads on from where the demuxer is: a fresh container is there.)
        packets = demux(container, stream, bad)
        first = None
        for packet in packets:
            # At the stream start any packet decodes cleanly, keyframe flag or
            # not; the empty packet that ends the demux is no start.
            if packet.size and (packet.is_keyframe or seek_s == 0):
                first = packet
                break
        if first is None:
            if seek_s == 0:
                return
            continue
        ts = first.pts if first.pts is not None else first.dts
        if ts is not None and float(ts * time_base) - origin > time_s + 1e-3 and seek_s > 0:
            logger.debug("seek to %.3f s landed at %.3f s; retrying earlier", time_s, float(ts * time_base) - origin)
            continue
        yield from itertools.chain((first,), packets)
        return


def probe(path: str | Path, limits: VideoSettings, sha256: str | None = None) -> VideoInfo:
    """Describe and validate the video at `path`; raise a ReelserveError if unusable.

    `sha256`: the file's hash when the caller has already computed it (the archive job does, to skip
    finished videos before probing); otherwise it is computed here.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise EmptyUpload("the uploaded file is empty")
    if size > limits.max_upload_bytes:
        raise PayloadTooLarge(f"the file has {size} bytes; the limit is {limits.max_upload_bytes} bytes")

    with open_video(path) as container:
        fmt = container.format.name
        if fmt in _TEXT_FORMATS:
            raise InvalidVideo(f"not a video: FFmpeg reads the file as text ('{fmt}' demuxer)")
        stream = video_stream(container)
        if stream.codec_context is None:
            raise UnsupportedCodec(
                f"the video codec has no decoder in this build (container '{fmt}'); re-encode it to H.264, VP9 or AV1"
            )
        codec = stream.codec_context.codec.canonical_name
        if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):
            raise UnsupportedCodec(f"still images are not supported ('{codec}' image in '{fmt}')")

        duration = _duration_s(container, stream)
        if duration is None or duration <= 0:
            raise ZeroDuration("the video stream has no duration (no frames or no timestamps)")
        if duration > limits.max_duration_s:
            raise VideoTooLong(f"the video lasts {duration:.1f} s; the limit is {limits.max_duration_s:.1f} s")

        first = _first_frame(container, stream, codec)
        rotation = display_rotation(first)
        duration = _check_tail(container, stream, duration, codec)
        fps = _fps(container, stream, duration)
        width, height = _display_size(first, stream, rotation)
        info = VideoInfo(
            container=fmt,
            codec=codec,
            duration_s=duration,
            fps=fps,
            width=width,
            height=height,
            rotation=rotation,
            frame_count=stream.frames or None,
            has_audio=bool(container.streams.audio),
            stream_count=len(container.streams),
            size_bytes=size,
            sha256=sha256 or file_sha256(path),
        )
    logger.info(
        "probed %s: %s/%s %.2f s %.3f fps %dx%d rot %d", path.name, fmt, codec, duration, fps, width, height, rotation
    )
    return info


def ffmpeg_reason(exc: av.FFmpegError) -> str:
    """What went wrong, in FFmpeg's words, for a message."""
    if getattr(exc, "errno", None) == errno.EPERM:
        # FFmpeg's bare -1, which PyAV spells "Operation not permitted": nothing was forbidden.
        return "FFmpeg failed without naming a reason"
    return getattr(exc, "strerror", None) or str(exc)


def _describe(stream: av.stream.Stream) -> str:
    ctx = stream.codec_context
    return f"{stream.type} {ctx.codec.canonical_name}" if ctx is not None else stream.type


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Video duration from the stream, else the container, else a packet scan."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        container_start = (container.start_time or 0) / av.time_base
        length = container.duration / av.time_base
        if container.format.name.startswith("matroska"):
            # Matroska's Segment Duration (what FFmpeg reports here) is the end timestamp: FFmpeg's
            # muxer writes it from 0, so a 10 s clip whose timestamps start at 3600 s "lasts" 3610 s.
            # (Should a muxer write the length instead, `_check_tail` corrects it from the packets.)
            length -= container_start
        # The container spans all streams; count from the video's own start.
        return length - max(0.0, stream_start_s(stream) - container_start)
    logger.info("no duration in the headers; scanning packets")
    end = None
    try:
        for packet in demux(container, stream):
            packet_end = _packet_end(packet)
            if packet_end is not None:
                end = packet_end if end is None else max(end, packet_end)
    except av.FFmpegError as exc:
        raise InvalidVideo(f"the file is truncated or corrupt: demuxing failed ({ffmpeg_reason(exc)})") from exc
    return None if end is None else end - stream_start_s(stream)


def _packet_end(packet: av.Packet) -> float | None:
    if packet.pts is None or packet.time_base is None:
        return None
    return float((packet.pts + (packet.duration or 0)) * packet.time_base)


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, codec: str
) -> av.VideoFrame:
    try:
        frame = next(frames_from(container, stream, 0.0), None)
    except _CANNOT_DECODE as exc:
        raise UnsupportedCodec(f"the '{codec}' video cannot be decoded by this build ({ffmpeg_reason(exc)})") from exc
    except av.FFmpegError as exc:
        raise InvalidVideo(
            f"the file is truncated or corrupt: its first video frame cannot be decoded ({ffmpeg_reason(exc)})"
        ) from exc
    if frame is None:
        raise InvalidVideo("the file is truncated or corrupt: its video stream holds no decodable frame")
    return frame


def _check_tail(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, duration: float, codec: str
) -> float:
    """Prove the end of the file is there and decodes; return the video duration.

    A file cut short keeps its header's duration but its packets stop early,
    so a frame is decoded near the end and the packets are read to the end of
    the file. All streams are read so audio running past the video is not
    mistaken for a cut; the video's own last packet then corrects a
    container-wide duration.
    """
    start = stream_start_s(stream)
    tail = max(0.0, duration - _TAIL_S)
    file_end = video_end = None
    try:
        frame = next(frames_from(container, stream, tail), None)
        _seek(container, stream, tail)  # refused: the packets are read on from where the decoder stopped
        for packet in demux(container):
            end = _packet_end(packet)
            if end is not None:
                file_end = end if file_end is None else max(file_end, end)
                if packet.stream is stream:
                    video_end = end if video_end is None else max(video_end, end)
    except _CANNOT_DECODE as exc:
        raise UnsupportedCodec(f"the '{codec}' video cannot be decoded by this build ({ffmpeg_reason(exc)})") from exc
    except av.FFmpegError as exc:
        raise InvalidVideo(f"the file is truncated or corrupt near its end ({ffmpeg_reason(exc)})") from exc
    # Intact files end within a frame of their stated duration (the last packet may state no duration).
    rate = header_fps(stream) or (stream.frames / duration if stream.frames else 0.0)
    tolerance = max(0.1, 2.5 / rate) if rate else 0.5
    if frame is None or file_end is None or file_end - start < duration - tolerance:
        if frame is None or file_end is None:
            seen = "no frame near its end decodes"
        elif file_end <= start:
            seen = "no data near its end belongs to the video's time"
        else:
            seen = f"its data ends at {file_end - start:.2f} s"
        raise InvalidVideo(f"the file is truncated or corrupt: its header says {duration:.2f} s but {seen}")
    if video_end is not None and not stream.duration and video_end > start:
        # The duration came from the container (it spans every stream); the video's packets are exact.
        if video_end - start < duration or video_end - start > duration + tolerance:
            duration = video_end - start
    return duration


def header_fps(stream: av.video.stream.VideoStream) -> float | None:
    """The frame rate the headers state, if plausible.

    A "rate" of 1000 or more is the time base of a variable-rate stream
    (Matroska's milliseconds), not a frame rate.
    """
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate and 0 < rate < 1000:
            return float(rate)
    return None


def _fps(container: av.container.InputContainer, stream: av.video.stream.VideoStream, duration: float) -> float:
    """Average frame rate: the header's, else frames over duration.

    Variable-rate files may state no rate at all; counting their packets
    (demuxing only, no decoding) gives the true average.
    """
    fps = header_fps(stream)
    if fps:
        return fps
    frames = stream.frames
    if not frames:
        try:
            _seek(container, stream, 0.0)
            frames = sum(1 for packet in demux(container, stream) if packet.size)
        except av.FFmpegError as exc:
            raise InvalidVideo(f"the file is truncated or corrupt ({ffmpeg_reason(exc)})") from exc
    if not frames:
        raise InvalidVideo("the frame rate of the video cannot be determined")
    return frames / duration


def _display_size(frame: av.VideoFrame, stream: av.video.stream.VideoStream, rotation: int) -> tuple[int, int]:
    """Frame size as shown: non-square pixels stretched, then rotated."""
    width, height = frame.width, frame.height
    sar = stream.sample_aspect_ratio
    if sar and sar > 0 and sar != 1:
        width = max(1, round(width * Fraction(sar)))
    return (height, width) if rotation in (90, 270) else (width, height)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes: the video's identity (`VideoInfo.video_id`)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
