"""Thumbnails of the frames a chunk showed the model, and a contact sheet of them (Pillow).

Which frames: the ones the sampler kept. Adaptive sampling sends each keep with its partner (the next
candidate, a fraction of a second later: `serve_app.video.sampling`), so only the keeps — even positions —
are thumbnailed; uniform sampling keeps every frame. The repeats that pad a chunk to an even count are
dropped, and a chunk thumbnails only frames in its core range, so the overlap between neighbouring chunks
gives no duplicates and the thumbnails of a video tile its time line.

Thumbnails are made from the decoded RGB frames the chunk already holds (no second decode), at most
`THUMB_PX` on the longer side: ~3-6 KB JPEGs a page can show by the hundred.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from serve_app.video.decode import SampledChunk

__all__ = ["THUMB_PX", "contact_sheet", "kept_frames", "sheet_tiles", "thumbnail_jpeg"]

T = TypeVar("T")

#: Longer side of a thumbnail, px: a strip of them reads at a glance, a contact sheet stays small.
THUMB_PX = 160
JPEG_QUALITY = 80
#: A contact sheet shows at most this many frames, evenly thinned, so a long video's sheet stays one image.
MAX_SHEET_TILES = 60
SHEET_COLUMNS = 6
_LABEL_PX = 18
_GAP_PX = 6


def kept_frames(chunk: SampledChunk) -> list[tuple[float, np.ndarray]]:
    """(time, RGB frame) of the frames the sampler kept that lie in the chunk's core range, in time order."""
    plan = chunk.plan
    step = 2 if plan.sampling == "adaptive" else 1
    out: list[tuple[float, np.ndarray]] = []
    for i in range(0, len(chunk.frame_times_s), step):
        t = chunk.frame_times_s[i]
        if out and t == out[-1][0]:
            continue  # padding repeats the last frame
        if plan.core_start_s <= t < plan.core_end_s:
            out.append((t, chunk.frames[i]))
    return out


def thumbnail_jpeg(frame: np.ndarray, max_side: int = THUMB_PX) -> bytes:
    image = Image.fromarray(frame)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def _label(t: float) -> str:
    minutes, secs = divmod(max(0.0, t), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes:02d}:{secs:04.1f}"


def sheet_tiles(items: Sequence[T]) -> list[T]:
    """The items a contact sheet shows: all, or every k-th when there are more than `MAX_SHEET_TILES` (the
    whole video stays represented). Callers thin first to read only these."""
    return list(items)[:: -(-len(items) // MAX_SHEET_TILES) or 1]


def contact_sheet(thumbs: Sequence[tuple[float, bytes]], title: str = "") -> bytes:
    """One JPEG: the thumbnails (time, JPEG) in a grid, each labelled with its time; `title` on top (at most
    `MAX_SHEET_TILES` of them: `sheet_tiles`)."""
    if not thumbs:
        raise ValueError("a contact sheet needs at least one thumbnail")
    tiles = [(t, Image.open(io.BytesIO(data)).convert("RGB")) for t, data in sheet_tiles(thumbs)]
    cell_w = max(image.width for _, image in tiles)
    cell_h = max(image.height for _, image in tiles) + _LABEL_PX
    columns = min(SHEET_COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    top = _LABEL_PX + _GAP_PX if title else 0
    sheet = Image.new(
        "RGB", (columns * (cell_w + _GAP_PX) + _GAP_PX, top + rows * (cell_h + _GAP_PX) + _GAP_PX), "white"
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    if title:
        draw.text((_GAP_PX, _GAP_PX), title, fill="black", font=font)
    for n, (t, image) in enumerate(tiles):
        x = _GAP_PX + (n % columns) * (cell_w + _GAP_PX)
        y = top + _GAP_PX + (n // columns) * (cell_h + _GAP_PX)
        sheet.paste(image, (x + (cell_w - image.width) // 2, y))
        draw.text((x, y + cell_h - _LABEL_PX + 3), _label(t), fill="black", font=font)
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
