"""Qwen3-VL visual-token arithmetic.

The vision encoder cuts frames into 16x16 patches, pairs consecutive frames
(temporal patch 2) and merges 2x2 patches before the LLM, so one LLM token
covers 32x32 pixels across two frames. Frame sides must be multiples of 32.
"""

from __future__ import annotations

import math

__all__ = ["FACTOR", "PIXELS_PER_TOKEN", "TEMPORAL_PATCH", "fit_frame_size", "visual_tokens"]

#: Pixels per side covered by one LLM token (patch 16 x spatial merge 2).
FACTOR = 32
#: Frames folded into one token (temporal patch size).
TEMPORAL_PATCH = 2
#: Source pixels (summed over frames) behind one LLM token: what Qwen3-VL's processor budgets in.
PIXELS_PER_TOKEN = FACTOR * FACTOR * TEMPORAL_PATCH


def visual_tokens(num_frames: int, height: int, width: int) -> int:
    """LLM tokens Qwen3-VL spends on `num_frames` frames of `width`x`height`.

    An odd frame count still costs a whole frame pair: the processor pads the
    last group by repeating the last frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if height < FACTOR or width < FACTOR or height % FACTOR or width % FACTOR:
        raise ValueError(f"frame size {width}x{height} must be positive multiples of {FACTOR}")
    return math.ceil(num_frames / TEMPORAL_PATCH) * (height // FACTOR) * (width // FACTOR)


def _nearest_multiple(value: float, bound: int) -> int:
    """`value` rounded to the nearest multiple of FACTOR, within [FACTOR, bound]."""
    return min(bound, max(FACTOR, FACTOR * round(value / FACTOR)))


def fit_frame_size(src_width: int, src_height: int, max_pixels: int) -> tuple[int, int]:
    """Largest (width, height), multiples of 32, with width*height <= max_pixels.

    The aspect ratio of the source is kept as closely as 32-pixel steps allow,
    and the result never exceeds the source size rounded down to a multiple
    of 32 (no upscaling), except that each side is at least 32.
    """
    if src_width <= 0 or src_height <= 0:
        raise ValueError(f"source size {src_width}x{src_height} must be positive")
    if max_pixels < FACTOR * FACTOR:
        raise ValueError(f"max_pixels {max_pixels} is below one {FACTOR}x{FACTOR} token")
    bound_w = max(FACTOR, src_width // FACTOR * FACTOR)
    bound_h = max(FACTOR, src_height // FACTOR * FACTOR)
    aspect = src_width / src_height

    # For every width, the height nearest to the source aspect (and vice versa
    # for tall sources); among those that fit, the largest area wins and a
    # smaller aspect error breaks ties. 32x32 always fits, so there is a winner.
    candidates = {(FACTOR, FACTOR)}
    candidates.update((w, _nearest_multiple(w / aspect, bound_h)) for w in range(FACTOR, bound_w + 1, FACTOR))
    candidates.update((_nearest_multiple(h * aspect, bound_w), h) for h in range(FACTOR, bound_h + 1, FACTOR))
    fitting = [(w, h) for w, h in candidates if w * h <= max_pixels]
    return max(fitting, key=lambda wh: (wh[0] * wh[1], -abs(math.log(wh[0] / wh[1] / aspect))))
