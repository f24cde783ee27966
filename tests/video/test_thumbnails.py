"""Thumbnails of the kept frames and the contact sheet (real PyAV decode of a generated clip, real JPEGs).

The clip's frames spell their own index in pixels, so each thumbnail is read back to check that it shows
the frame of its time."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import read_frame_index
from serve_app.schemas import AnalyzeOptions
from serve_app.video import chunking_options, decode_chunk, plan_chunks, probe
from serve_app.video.thumbnails import (
    MAX_SHEET_TILES,
    THUMB_PX,
    contact_sheet,
    kept_frames,
    sheet_tiles,
    thumbnail_jpeg,
)
from tests.conftest import Clip

VIDEO = VideoSettings()


def decoded_chunks(clip: Clip, sampling: str):
    options = AnalyzeOptions(chunk_s=4, overlap_s=1, sampling=sampling)
    plans = plan_chunks(probe(clip.path, VIDEO), chunking_options(options, VIDEO), VIDEO)
    assert len(plans) >= 3 and all(p.start_s < p.core_start_s for p in plans[1:]), "chunks overlap"
    return [decode_chunk(clip.path, plan) for plan in plans]


@pytest.mark.parametrize("sampling", ["adaptive", "uniform"])
def test_kept_frames_tile_the_video_once_and_are_the_frames_the_model_saw(cfr_mp4: Clip, sampling: str) -> None:
    chunks = decoded_chunks(cfr_mp4, sampling)
    times: list[float] = []
    for chunk in chunks:
        kept = kept_frames(chunk)
        assert kept, f"chunk {chunk.plan.index} has a thumbnail"
        shown = chunk.frame_times_s[:: 2 if sampling == "adaptive" else 1]  # adaptive: the keeps, not partners
        assert {t for t, _ in kept} <= set(shown)
        assert all(chunk.plan.core_start_s <= t < chunk.plan.core_end_s for t, _ in kept)
        times += [t for t, _ in kept]
    assert times == sorted(set(times)), "no frame twice, although the chunks overlap"
    chunk = chunks[1]
    for t, frame in kept_frames(chunk):
        jpeg = thumbnail_jpeg(frame)
        image = Image.open(io.BytesIO(jpeg))
        assert image.format == "JPEG" and max(image.size) <= THUMB_PX
        assert read_frame_index(np.asarray(image.convert("RGB"))) == cfr_mp4.times.index(t)


def test_thumbnails_are_small_and_keep_the_aspect() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[:, 320:] = 255
    image = Image.open(io.BytesIO(thumbnail_jpeg(frame)))
    assert image.size == (THUMB_PX, 90)
    assert len(thumbnail_jpeg(frame)) < 8000


def test_contact_sheet_lays_out_every_tile_with_its_time() -> None:
    tiles = [(i * 1.5, thumbnail_jpeg(np.full((90, 160, 3), 40 * i, np.uint8))) for i in range(7)]
    sheet = Image.open(io.BytesIO(contact_sheet(tiles, title="talk.mp4, 10.5 s")))
    assert sheet.format == "JPEG"
    # 6 columns, 2 rows of 160x90 tiles with an 18 px time label under each, a title line on top.
    assert sheet.width == 6 * (160 + 6) + 6 and sheet.height == 24 + 2 * (90 + 18 + 6) + 6
    pixels = np.asarray(sheet.convert("L")).astype(int)
    first = pixels[30 + 10 : 30 + 80, 16:150]  # inside the first tile: black
    label = pixels[30 + 90 : 30 + 108, 6:80]  # its time label: dark text on white
    assert first.mean() < 20 and label.min() < 100 and label.max() > 200
    with pytest.raises(ValueError):
        contact_sheet([])


def test_a_long_video_sheet_is_thinned_evenly() -> None:
    picked = sheet_tiles(list(range(130)))
    assert len(picked) <= MAX_SHEET_TILES and picked[0] == 0 and picked[-1] >= 120
    assert sheet_tiles(list(range(5))) == list(range(5)) and sheet_tiles([]) == []
