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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

__all__ = [
    "CODE_BITS",
    "ChangeDurations",
    "ScreenEvent",
    "ScreenLayout",
    "ScreenRenderer",
    "counter_box",
    "read_counter",
    "read_frame_index",
    "render_frame_index",
    "screen_share_events",
    "write_audio_only",
    "write_sample_video",
    "write_screen_share",
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
    "libx265": {"preset": "ultrafast", "x265-params": "log-level=error:pools=1:frame-threads=1"},
    # Faster presets and temporal filtering blend the counter blocks of neighbouring frames.
    "libsvtav1": {"preset": "8", "svtav1-params": "enable-tf=0"},
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


def _encode_cfr(
    path: str | Path,
    render: Callable[[int, float], np.ndarray],
    *,
    duration_s: float,
    rate: Fraction,
    width: int,
    height: int,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    gop: int | None = None,
) -> None:
    """Encode `render(index, t)` frames on a constant-rate grid (frame i at pts i)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        if gop is not None:
            stream.codec_context.gop_size = gop
        for index in range(round(duration_s * rate)):
            frame = av.VideoFrame.from_ndarray(render(index, float(index / rate)), format="rgb24")
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_sample_video(path: str | Path, *, duration_s: float = 30.0, fps: float = 10.0) -> list[float]:
    """A ~30 s 1280x720 screen-share-like clip of a few "slides" of text bars.

    Used by the demo when `../shared/media` is absent. Returns the start time
    of each slide (the moments a model should report a change).
    """
    width, height = 1280, 720
    rate = _rate(fps)
    starts = [s for s, _, _ in _SLIDES if s < duration_s]

    def render(_: int, t: float) -> np.ndarray:
        slide = max(i for i, s in enumerate(starts) if s <= t)
        _, background, rows = _SLIDES[slide]
        return _slide_image(slide, t, width, height, rows, background)

    _encode_cfr(
        path,
        render,
        duration_s=duration_s,
        rate=rate,
        width=width,
        height=height,
        options=dict(_ENCODER_OPTIONS["libx264"]),
    )
    logger.info("wrote sample video %s (%.0f s, slides at %s)", path, duration_s, starts)
    return starts


# --- Screen-share recordings with known change times -------------------------


@dataclass(frozen=True)
class ScreenEvent:
    """A content change in a generated screen share.

    The new content is fully visible from `shown_s` (a scroll's end; the start
    for a slide or dialog) until `end_s`, when the next change begins (or the
    dialog closes). A sampler covers the event when it keeps a frame shown in
    [shown_s, end_s).
    """

    kind: Literal["slide", "dialog", "scroll"]
    start_s: float
    shown_s: float
    end_s: float


@dataclass(frozen=True)
class ChangeDurations:
    """How long content holds in `screen_share_events` (seconds, uniform ranges).

    The defaults are the script `bench/sampling.py` tuned the sampler on; other
    values make held-out scripts (the draws happen in the same order, so the
    defaults reproduce the original scripts exactly).
    """

    hold_s: tuple[float, float] = (4.0, 40.0)
    #: Share of holds drawn from `short_hold_s` (the changes a 1 fps grid can straddle).
    short_fraction: float = 0.25
    short_hold_s: tuple[float, float] = (1.0, 1.8)
    dialog_s: tuple[float, float] = (0.8, 1.8)
    #: Pause after a dialog closes, before the next change.
    after_dialog_s: tuple[float, float] = (2.0, 8.0)
    scroll_s: tuple[float, float] = (0.8, 1.6)


def screen_share_events(
    duration_s: float, *, seed: int = 0, fps: float = 30.0, durations: ChangeDurations | None = None
) -> list[ScreenEvent]:
    """An irregular script: content held 4..40 s, a quarter under 2 s, dialogs, scrolls.

    Times fall on the frame grid of `fps`, so "shown from frame i" is exact.
    Every kind of event appears at least once in 60 s. `durations` changes the
    hold, dialog and scroll lengths (the defaults are the ones above).
    """
    d = durations or ChangeDurations()
    rng = np.random.default_rng(seed)

    def snap(t: float) -> float:
        return math.ceil(t * fps - 1e-9) / fps

    first_hold = snap(float(rng.uniform(3.0, 8.0)))
    events = [ScreenEvent(kind="slide", start_s=0.0, shown_s=0.0, end_s=min(first_hold, duration_s))]
    t, scrolls_on_slide = first_hold, 0
    # Guarantee variety early on, then draw kinds at random.
    kinds = ["dialog", "slide", "scroll", "slide"]
    while True:
        kind = kinds.pop(0) if kinds else str(rng.choice(["slide", "dialog", "scroll"], p=[0.55, 0.25, 0.2]))
        if kind == "scroll" and scrolls_on_slide >= 2:
            kind = "slide"  # a page holds two scrolls' worth of text
        # Short holds (< 2 s) are the changes a 1 fps grid can straddle.
        hold = float(rng.uniform(*d.short_hold_s)) if rng.random() < d.short_fraction else float(rng.uniform(*d.hold_s))
        start = snap(t)
        if kind == "dialog":
            shown, end = start, snap(start + float(rng.uniform(*d.dialog_s)))
            after = snap(end + float(rng.uniform(*d.after_dialog_s)))
        else:
            shown = snap(start + float(rng.uniform(*d.scroll_s))) if kind == "scroll" else start
            end = after = snap(shown + hold)
        if after >= duration_s:
            break
        events.append(ScreenEvent(kind=kind, start_s=start, shown_s=shown, end_s=end))  # type: ignore[arg-type]
        scrolls_on_slide = 0 if kind == "slide" else scrolls_on_slide + (kind == "scroll")
        t = after
    if events[-1].kind != "dialog":  # the last hold runs to the end of the video
        last = events[-1]
        events[-1] = ScreenEvent(kind=last.kind, start_s=last.start_s, shown_s=last.shown_s, end_s=duration_s)
    return events


def counter_box(width: int, height: int) -> tuple[int, int]:
    """Side and top-left offset (square, pixels) of the frame counter in a screen share."""
    side = max(16, height // 8)
    return side, max(1, height // 60)


def read_counter(frame_rgb: np.ndarray, width: int, height: int) -> int:
    """The frame index shown by the counter of a `width`x`height` screen share, in a frame of any size."""
    side, margin = counter_box(width, height)
    sy, sx = frame_rgb.shape[0] / height, frame_rgb.shape[1] / width
    y0, y1, x0, x1 = (round(v) for v in (margin * sy, (margin + side) * sy, margin * sx, (margin + side) * sx))
    return read_frame_index(frame_rgb[y0:y1, x0:x1])


@dataclass(frozen=True)
class ScreenLayout:
    """Geometry and noise of a generated screen share.

    Sizes are integer divisors of the frame's sides so the defaults (the
    layout `bench/sampling.py` tuned the sampler on) render exactly as before.
    """

    #: Title bar height = frame height // title_div.
    title_div: int = 12
    #: Webcam tile sides = frame sides // webcam_div, in this corner.
    webcam_div: int = 7
    webcam_corner: Literal["bottom-right", "bottom-left", "top-right", "top-left"] = "bottom-right"
    #: Dialog sides = (frame width // dialog_div[0], frame height // dialog_div[1]).
    dialog_div: tuple[int, int] = (3, 4)
    #: Standard deviation (grey levels) of fresh noise on every pixel of every frame: a screen
    #: filmed by a camera or captured through a noisy analogue path. 0: a clean digital capture.
    noise: float = 0.0


class ScreenRenderer:
    """Renders the screen at any time of a script (title bar, page, dialog, webcam, cursor)."""

    def __init__(
        self,
        width: int,
        height: int,
        events: list[ScreenEvent],
        seed: int,
        webcam: bool,
        layout: ScreenLayout | None = None,
    ) -> None:
        self.width, self.height, self.webcam, self.seed = width, height, webcam, seed
        self.layout = layout or ScreenLayout()
        self.events = events
        self.top = height // self.layout.title_div  # window title bar
        self.view_h = height - self.top
        self.page_h = self.view_h * 2  # two scrolls' worth of extra text below the fold
        self.scroll_px = self.view_h // 2
        self._page_key: int | None = None
        self._page = np.empty((0, 0, 3), np.uint8)
        # Per event: (slide id, scroll offset at its end); dialogs keep both.
        self.states: list[tuple[int, int]] = []
        slide, offset = 0, 0
        for i, event in enumerate(events):
            if event.kind == "slide":
                slide, offset = i, 0
            elif event.kind == "scroll":
                offset += self.scroll_px
            self.states.append((slide, offset))

    def page(self, slide: int) -> np.ndarray:
        if self._page_key != slide:
            rng = np.random.default_rng((self.seed, slide))
            w, h = self.width, self.page_h
            page = np.full((h, w, 3), int(rng.integers(225, 252)), np.uint8)
            line_h = max(2, self.height // 45)
            y = self.height // 20
            title_w = int(w * rng.uniform(0.3, 0.6))
            page[y : y + 2 * line_h, w // 10 : w // 10 + title_w] = (20, 20, 20)
            y += 4 * line_h
            while y < h - 2 * line_h:
                x = w // 10
                indent = rng.random() < 0.2
                x += w // 20 if indent else 0
                while x < w * 0.85:
                    word = int(rng.integers(w // 50, w // 12))
                    page[y : y + line_h, x : min(x + word, w)] = (60, 60, 60)
                    x += word + w // 90
                y += int(line_h * rng.uniform(2.0, 3.5))
            self._page, self._page_key = page, slide
        return self._page

    def render(self, index: int, t: float) -> np.ndarray:
        w, h = self.width, self.height
        current = max(i for i, e in enumerate(self.events) if e.start_s <= t + 1e-9)
        event = self.events[current]
        slide, offset = self.states[current]
        if event.kind == "scroll" and t < event.shown_s:
            # Smooth scroll from the previous offset to this event's offset.
            progress = (t - event.start_s) / (event.shown_s - event.start_s)
            offset = round(offset - self.scroll_px * (1 - progress))
        image = np.empty((h, w, 3), np.uint8)
        image[: self.top] = (40, 60, 110)
        image[self.top :] = self.page(slide)[offset : offset + self.view_h]
        if event.kind == "dialog" and t < event.end_s:
            self._dialog(image, current)
        if self.webcam:
            self._webcam(image, index, t)
        self._cursor(image, t)
        if self.layout.noise > 0:
            self._noise(image, index)
        return image

    def _noise(self, image: np.ndarray, index: int) -> None:
        # Grey (luma) noise, fresh every frame; int16 so it can go negative before clipping.
        rng = np.random.default_rng((self.seed, 30_000, index))
        noise = rng.normal(0.0, self.layout.noise, image.shape[:2]).astype(np.int16)
        image[:] = np.clip(image.astype(np.int16) + noise[:, :, None], 0, 255).astype(np.uint8)

    def _dialog(self, image: np.ndarray, key: int) -> None:
        w, h = self.width, self.height
        rng = np.random.default_rng((self.seed, 10_000 + key))
        dw, dh = w // self.layout.dialog_div[0], h // self.layout.dialog_div[1]
        x0, y0 = (w - dw) // 2 + int(rng.integers(-w // 10, w // 10)), (h - dh) // 2
        image[y0 : y0 + dh, x0 : x0 + dw] = (250, 250, 250)
        image[y0 : y0 + dh // 6, x0 : x0 + dw] = (70, 90, 160)
        for row in range(3):
            y = y0 + dh // 3 + row * dh // 6
            image[y : y + max(2, h // 60), x0 + dw // 10 : x0 + int(dw * rng.uniform(0.4, 0.9))] = (30, 30, 30)
        image[y0 + dh - dh // 5 : y0 + dh - dh // 12, x0 + dw - dw // 4 : x0 + dw - dw // 20] = (40, 120, 220)

    def _webcam(self, image: np.ndarray, index: int, t: float) -> None:
        w, h = self.width, self.height
        tw, th = w // self.layout.webcam_div, h // self.layout.webcam_div
        x0 = w - tw - w // 80 if self.layout.webcam_corner.endswith("right") else w // 80
        # Below the title bar when at the top, so the tile never hides the window's title.
        y0 = h - th - h // 60 if self.layout.webcam_corner.startswith("bottom") else self.top + h // 60
        rng = np.random.default_rng((self.seed, 20_000, index))
        tile = np.clip(rng.normal(90, 18, (th, tw, 3)), 0, 255)
        # A head bobbing in the tile: a brighter ellipse that moves every frame.
        yy, xx = np.mgrid[0:th, 0:tw]
        cx, cy = tw / 2 + tw / 10 * math.sin(t * 2.1), th / 2 + th / 12 * math.sin(t * 3.3)
        head = ((xx - cx) / (tw / 5)) ** 2 + ((yy - cy) / (th / 3)) ** 2 < 1
        tile[head] += 70
        image[y0 : y0 + th, x0 : x0 + tw] = np.clip(tile, 0, 255).astype(np.uint8)

    def _cursor(self, image: np.ndarray, t: float) -> None:
        w, h = self.width, self.height
        ch, cw = max(3, h // 40), max(2, h // 60)
        cx = int((0.15 + 0.6 * (0.5 + 0.5 * math.sin(t * 0.7))) * w)
        cy = int((0.25 + 0.5 * (0.5 + 0.5 * math.sin(t * 0.45 + 1.0))) * h)
        image[cy : cy + ch, cx : cx + cw] = (20, 20, 20)
        image[cy + 1 : cy + ch - 1, cx + 1 : cx + cw - 1] = (245, 245, 245)


def write_screen_share(
    path: str | Path,
    *,
    duration_s: float,
    fps: float = 30.0,
    width: int = 1920,
    height: int = 1080,
    seed: int = 0,
    events: list[ScreenEvent] | None = None,
    webcam: bool = True,
    counter: bool = False,
    codec: str = "libx264",
    gop: int = 250,
    encoder_options: dict[str, str] | None = None,
    layout: ScreenLayout | None = None,
    durations: ChangeDurations | None = None,
) -> list[ScreenEvent]:
    """A screen-share recording: text pages, slide changes, dialogs, scrolls,
    a moving cursor and a noisy webcam tile; return its change events.

    With `counter`, a corner box shows the frame index (`counter_box`,
    `read_frame_index`) so sampled frames can be checked against their
    timestamps. H.264 uses x264's default B-frames and a `gop`-frame GOP, as
    screen recorders (OBS) do; `encoder_options` overrides the encoder's.
    `layout` and `durations` vary the picture and the script (held-out sets).
    """
    if events is None:
        events = screen_share_events(duration_s, seed=seed, fps=fps, durations=durations)
    screen = ScreenRenderer(width, height, events, seed, webcam, layout)
    rate = _rate(fps)
    side, margin = counter_box(width, height)
    options = dict(_ENCODER_OPTIONS.get(codec, {}))
    if codec == "libx264":
        options["x264-params"] = f"keyint={gop}:min-keyint={min(gop, 25)}"
    options.update(encoder_options or {})

    def render(index: int, t: float) -> np.ndarray:
        image = screen.render(index, t)
        if counter:
            image[margin : margin + side, margin : margin + side] = render_frame_index(index, side, side)
        return image

    _encode_cfr(
        path,
        render,
        duration_s=duration_s,
        rate=rate,
        width=width,
        height=height,
        codec=codec,
        options=options,
        gop=None if codec == "libx264" else gop,  # x264 takes its GOP from x264-params above
    )
    logger.info("wrote screen share %s (%.0f s, %d events)", path, duration_s, len(events))
    return events
