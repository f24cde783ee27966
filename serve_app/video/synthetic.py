"""Generated videos for tests and the demo (PyAV, as in PyAV's
`examples/numpy/generate_video.py`).

Every frame of `write_video` shows its own index as a 4x4 grid of dark and
light blocks (16 bits, most significant bit top-left), so a test can read the
index back with `read_frame_index` after lossy compression, decoding, resizing
and rotation: a wrong frame, a wrong timestamp or a wrong orientation all show
up as a wrong number.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = [
    "CODE_BITS",
    "read_frame_index",
    "render_frame_index",
    "write_audio_only",
    "write_sample_video",
    "write_video",
]

logger = logging.getLogger(__name__)

#: Grid of the frame-index code: GRID x GRID blocks, one bit each.
GRID = 4
CODE_BITS = GRID * GRID
_DARK, _LIGHT = 40, 215  # far from the 128 threshold, so codec noise cannot flip a bit

# Default codec per container suffix; VP8 is the fastest WebM encoder.
_DEFAULT_CODEC = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx", ".avi": "mpeg4"}
_AUDIO_CODEC = {".webm": "libopus", ".mkv": "libopus", ".ogg": "libopus", ".opus": "libopus", ".wav": "pcm_s16le"}
# Fast settings: fixtures must be cheap on a 2-core machine.
_ENCODER_OPTIONS = {
    "libx264": {"preset": "veryfast", "threads": "1"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8", "threads": "1"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "threads": "1", "row-mt": "0"},
}


def render_frame_index(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame (height x width) whose blocks spell `index` in binary."""
    if not 0 <= index < 2**CODE_BITS:
        raise ValueError(f"index {index} does not fit in {CODE_BITS} bits")
    rows = np.arange(height) * GRID // height
    cols = np.arange(width) * GRID // width
    bit_pos = (CODE_BITS - 1) - (rows[:, None] * GRID + cols[None, :])
    bits = (index >> bit_pos) & 1
    gray = np.where(bits == 1, _LIGHT, _DARK).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def read_frame_index(frame_rgb: np.ndarray) -> int:
    """Read back the index drawn by `render_frame_index` (any size >= 16x16).

    Each bit is the mean of the central half of its block, so blurred block
    edges from scaling and compression do not matter.
    """
    height, width = frame_rgb.shape[:2]
    gray = frame_rgb.astype(np.float32).mean(axis=2) if frame_rgb.ndim == 3 else frame_rgb.astype(np.float32)
    index = 0
    for r in range(GRID):
        for c in range(GRID):
            y0, y1 = r * height // GRID, (r + 1) * height // GRID
            x0, x1 = c * width // GRID, (c + 1) * width // GRID
            qy, qx = (y1 - y0) // 4, (x1 - x0) // 4
            block = gray[y0 + qy : y1 - qy, x0 + qx : x1 - qx]
            index = (index << 1) | int(block.mean() > (_DARK + _LIGHT) / 2)
    return index


def _rate(fps: float) -> Fraction:
    # 29.97 and friends become their exact NTSC fractions.
    return Fraction(fps).limit_denominator(1001)


class _Tone:
    """A quiet 440 Hz tone encoded into its own stream, interleaved on demand.

    Audio is produced in step with the video (`until(t)`) so the muxer can
    interleave the two streams as real recordings do.
    """

    sample_rate = 48_000

    def __init__(self, container: av.container.OutputContainer, codec: str, duration_s: float) -> None:
        self.container = container
        self.stream = container.add_stream(codec, rate=self.sample_rate)
        self.stream.layout = "mono"
        codec_info = self.stream.codec_context.codec
        self.format = codec_info.audio_formats[0].name if codec_info.audio_formats else "s16"
        # AAC and Opus insist on their own frame sizes (known only after open).
        self.frame_size = {"aac": 1024, "libopus": 960}.get(codec, 1024)
        self.total = round(duration_s * self.sample_rate)
        self.next = 0

    def until(self, t: float) -> None:
        """Encode and mux all samples before time `t` (seconds)."""
        stop = min(self.total, int(t * self.sample_rate))
        while self.next < stop:
            n = min(self.frame_size, self.total - self.next)
            seconds = np.arange(self.next, self.next + n) / self.sample_rate
            wave = 0.1 * np.sin(2 * math.pi * 440.0 * seconds)
            data = (wave * 32767).astype(np.int16) if self.format.startswith("s16") else wave.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(data[None, :], format=self.format, layout="mono")
            frame.sample_rate = self.sample_rate
            frame.pts = self.next
            frame.time_base = Fraction(1, self.sample_rate)
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.next += n

    def close(self) -> None:
        self.until(self.total / self.sample_rate)
        for packet in self.stream.encode():
            self.container.mux(packet)


def write_video(
    path: str | Path,
    *,
    duration_s: float,
    fps: float,
    width: int,
    height: int,
    codec: str | None = None,
    pix_fmt: str = "yuv420p",
    gop: int | None = None,
    vfr_times: Sequence[float] | None = None,
    audio: bool = False,
    rotation: int = 0,
    options: dict[str, str] | None = None,
) -> list[float]:
    """Write a video whose frames show their index; return each frame's time.

    `width`x`height` is the displayed size. With `rotation` (clockwise
    degrees for display, a multiple of 90) frames are stored rotated back and
    a display matrix tells players to turn them upright. `vfr_times` (seconds,
    increasing, at most 65,536 frames) replaces the regular 1/fps grid and no
    nominal rate is written. `codec` defaults by suffix: .mp4/.mkv/.mov H.264,
    .webm VP8, .avi MPEG-4; `audio` adds a tone (Opus in .webm/.mkv, else AAC).
    `options` go to the muxer (e.g. {"movflags": "faststart"}). Returns
    presentation times in seconds as stored (millisecond grid for VFR).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    codec = codec or _DEFAULT_CODEC.get(suffix, "libx264")
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    rotation %= 360
    rate = _rate(fps)
    if vfr_times is not None:
        time_base = Fraction(1, 1000)
        pts = [round(t * 1000) for t in vfr_times]
        if any(b <= a for a, b in itertools.pairwise(pts)) or (pts and pts[0] < 0):
            raise ValueError("vfr_times must be increasing, >= 0 and at least 1 ms apart")
    else:
        time_base = 1 / rate
        pts = list(range(max(1, round(duration_s * rate))))
    coded_w, coded_h = (height, width) if rotation in (90, 270) else (width, height)

    with av.open(str(path), mode="w", options=options or {}) as container:
        # A variable-rate stream claims no nominal rate (or Matroska would
        # write it as every frame's default duration).
        nominal = rate if vfr_times is None else None
        encoder_options = dict(_ENCODER_OPTIONS.get(codec, {}))
        if gop is not None and codec == "libx264":
            encoder_options["x264-params"] = "scenecut=0"  # keyframes exactly every `gop` frames
        stream = container.add_stream(codec, rate=nominal, options=encoder_options)
        stream.width, stream.height, stream.pix_fmt = coded_w, coded_h, pix_fmt
        stream.codec_context.time_base = time_base
        if vfr_times is not None:
            stream.codec_context.framerate = Fraction(0, 1)  # PyAV would default to 24
        if gop is not None:
            stream.codec_context.gop_size = gop
        if rotation:
            # PyAV takes the angle counter-clockwise (as VideoFrame.rotation
            # reads it back); a clockwise display rotation is its negative.
            stream.set_display_rotation(-rotation)
        tone = _Tone(container, _AUDIO_CODEC.get(suffix, "aac"), duration_s) if audio else None
        for index, frame_pts in enumerate(pts):
            if tone is not None:
                tone.until(float(frame_pts * time_base))
            image = render_frame_index(index, width, height)
            if rotation:
                image = np.ascontiguousarray(np.rot90(image, k=rotation // 90))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = frame_pts
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if tone is not None:
            tone.close()
    return [float(p * time_base) for p in pts]


def write_audio_only(path: str | Path, duration_s: float) -> None:
    """An audio-only file (AAC in .m4a/.mp4, Opus in .ogg/.webm, PCM in .wav)."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        _Tone(container, _AUDIO_CODEC.get(path.suffix.lower(), "aac"), duration_s).close()


# Slides of the sample clip: (start time s, background level, bar rows).
_SLIDES: tuple[tuple[float, int, int], ...] = (
    (0.0, 250, 5),
    (6.0, 235, 8),
    (13.0, 245, 3),
    (21.0, 225, 10),
    (26.0, 250, 6),
)


def _slide_image(slide: int, t: float, width: int, height: int, rows: int, background: int) -> np.ndarray:
    rng = np.random.default_rng(slide)
    image = np.full((height, width, 3), background, np.uint8)
    image[: height // 12] = (40, 60, 110)  # window title bar
    title_w = int(width * rng.uniform(0.3, 0.6))
    image[height // 7 : height // 7 + height // 18, width // 10 : width // 10 + title_w] = (20, 20, 20)
    line_h = max(4, height // 40)
    top = height // 4
    for r in range(rows):
        y = top + r * (height * 2 // 3) // max(rows, 1)
        x = width // 10
        # Words: dark runs of random length separated by gaps, like text.
        while x < width * 0.85:
            word = int(rng.integers(width // 40, width // 12))
            image[y : y + line_h, x : min(x + word, width)] = (60, 60, 60)
            x += word + width // 80
    # A mouse cursor gliding across the slide, so frames are not all static.
    cx = int((0.1 + 0.8 * ((t * 0.15) % 1.0)) * width)
    cy = int(height * (0.3 + 0.4 * abs(math.sin(t))))
    image[cy : cy + height // 40, cx : cx + width // 80] = (200, 30, 30)
    return image


def write_sample_video(path: str | Path, *, duration_s: float = 30.0, fps: float = 10.0) -> list[float]:
    """A ~30 s 1280x720 screen-share-like clip of a few "slides" of text bars.

    Used by the demo when `../shared/media` is absent. Returns the start time
    of each slide (the moments a model should report a change).
    """
    width, height = 1280, 720
    rate = _rate(fps)
    starts = [s for s, _, _ in _SLIDES if s < duration_s]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate, options=dict(_ENCODER_OPTIONS["libx264"]))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for index in range(round(duration_s * rate)):
            t = float(index / rate)
            slide = max(i for i, s in enumerate(starts) if s <= t)
            _, background, rows = _SLIDES[slide]
            frame = av.VideoFrame.from_ndarray(_slide_image(slide, t, width, height, rows, background), format="rgb24")
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    logger.info("wrote sample video %s (%.0f s, slides at %s)", path, duration_s, starts)
    return starts
