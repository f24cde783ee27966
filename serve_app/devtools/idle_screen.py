"""Generated screen shares with idle stretches, for the compressed-domain pass and its decoder.

`write_screen_share` (synthetic.py) moves its cursor every frame, as a hand on a mouse does; real
recordings also hold still for seconds (the presenter talks over a slide). Here the cursor rests and
only glides to its next place in the `_GLIDE_S` before each change, so between changes nothing moves
(with `webcam`, the tile stays live). Each frame's picture gets a number (`picture_ids`): it grows by
one whenever the rendered picture differs from the frame before. With `code`, the counter box shows
that number (`read_counter`), so a test can check that a reused picture was really on screen at the
time reported for it.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from serve_app.devtools.synthetic import (
    CODE_BITS,
    ScreenEvent,
    ScreenRenderer,
    counter_box,
    render_frame_index,
    screen_share_events,
)

__all__ = ["write_idle_screen"]

#: The cursor glides to its next place during this long before each change.
_GLIDE_S = 0.4


class _RestingCursor(ScreenRenderer):
    def _cursor(self, image: np.ndarray, t: float) -> None:
        w, h = self.width, self.height
        k = max(i for i, e in enumerate(self.events) if e.start_s <= t + 1e-9)
        x, y = self._rest(k)
        if k + 1 < len(self.events):
            to = self.events[k + 1].start_s
            if t > to - _GLIDE_S:
                progress = (t - (to - _GLIDE_S)) / _GLIDE_S
                nx, ny = self._rest(k + 1)
                x, y = x + (nx - x) * progress, y + (ny - y) * progress
        ch, cw = max(3, h // 40), max(2, h // 60)
        cx, cy = int(x * w), int(y * h)
        image[cy : cy + ch, cx : cx + cw] = (20, 20, 20)
        image[cy + 1 : cy + ch - 1, cx + 1 : cx + cw - 1] = (245, 245, 245)

    @staticmethod
    def _rest(k: int) -> tuple[float, float]:
        return 0.15 + 0.6 * (0.5 + 0.5 * math.sin(k * 1.7)), 0.25 + 0.5 * (0.5 + 0.5 * math.sin(k * 2.3 + 1.0))


def write_idle_screen(
    path: str | Path,
    *,
    duration_s: float,
    fps: float = 30.0,
    width: int = 1920,
    height: int = 1080,
    seed: int = 0,
    events: list[ScreenEvent] | None = None,
    webcam: bool = False,
    code: bool = False,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> list[int]:
    """Write the screen share; return each frame's picture number (see the module docstring)."""
    if events is None:
        events = screen_share_events(duration_s, seed=seed, fps=fps)
    screen = _RestingCursor(width, height, events, seed, webcam)
    rate = Fraction(fps).limit_denominator(1001)
    side, margin = counter_box(width, height)
    ids: list[int] = []
    previous: np.ndarray | None = None
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for index in range(round(duration_s * rate)):
            image = screen.render(index, float(index / rate))
            same = previous is not None and np.array_equal(image, previous)
            ids.append(ids[-1] + (not same) if ids else 0)
            previous = image.copy()
            if code:
                image[margin : margin + side, margin : margin + side] = render_frame_index(
                    ids[-1] % 2**CODE_BITS, side, side
                )
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return ids
