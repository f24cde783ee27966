from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import (
    ChangeDurations,
    ScreenLayout,
    ScreenRenderer,
    read_frame_index,
    render_frame_index,
    screen_share_events,
    write_sample_video,
    write_video,
)
from serve_app.video.probe import probe


@pytest.mark.parametrize("index", [0, 1, 2, 1234, 2**16 - 1])
@pytest.mark.parametrize(("width", "height"), [(64, 64), (160, 96), (1280, 720), (33, 17)])
def test_frame_index_round_trip(index: int, width: int, height: int) -> None:
    assert read_frame_index(render_frame_index(index, width, height)) == index


def test_frame_index_survives_scaling_and_noise() -> None:
    image = render_frame_index(40_321, 320, 180)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    small = frame.reformat(width=64, height=64, format="yuv420p").reformat(format="rgb24").to_ndarray()
    noisy = np.clip(small.astype(int) + np.random.default_rng(0).integers(-40, 40, small.shape), 0, 255)
    assert read_frame_index(noisy.astype(np.uint8)) == 40_321


def test_frame_index_out_of_range() -> None:
    with pytest.raises(ValueError):
        render_frame_index(2**16, 64, 64)


def test_vfr_times_must_increase(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_video(tmp_path / "bad.mp4", duration_s=1, fps=10, width=64, height=64, vfr_times=[0.0, 0.5, 0.5])


def test_sample_video(tmp_path: Path) -> None:
    path = tmp_path / "sample.mp4"
    starts = write_sample_video(path, duration_s=7, fps=5)  # the demo uses the 30 s default
    assert starts == [0.0, 6.0]
    info = probe(path, VideoSettings())
    assert (info.width, info.height, info.codec) == (1280, 720, "h264")
    assert info.duration_s == pytest.approx(7.0)


def test_default_script_is_the_tuning_script() -> None:
    # bench/sampling.py's tuning split (seed 11 of 3): held-out parameters must not move its figures.
    events = screen_share_events(120.0, seed=11, fps=15.0)
    frames = [(e.kind, round(e.shown_s * 15), round(e.end_s * 15)) for e in events]
    assert frames == [
        ("slide", 0, 55), ("dialog", 55, 68), ("slide", 112, 211), ("scroll", 231, 258), ("slide", 258, 595),
        ("dialog", 595, 619), ("slide", 710, 1067), ("scroll", 1085, 1107), ("slide", 1107, 1295),
        ("scroll", 1313, 1443), ("slide", 1443, 1469), ("slide", 1469, 1493), ("slide", 1493, 1671),
        ("slide", 1671, 1800),
    ]  # fmt: skip


def test_change_durations_bound_the_script() -> None:
    fps = 10.0
    durations = ChangeDurations(hold_s=(2.0, 3.0), short_fraction=0.0, dialog_s=(0.6, 0.7), scroll_s=(0.5, 0.6))
    events = screen_share_events(300.0, seed=7, fps=fps, durations=durations)
    tick = 1 / fps + 1e-9  # times snap up to the frame grid
    for event in events[1:-1]:
        held = event.end_s - event.shown_s
        if event.kind == "dialog":
            assert 0.6 - 1e-9 <= held <= 0.7 + tick
        else:
            assert 2.0 - tick <= held <= 3.0 + tick
        if event.kind == "scroll":
            assert 0.5 - 1e-9 <= event.shown_s - event.start_s <= 0.6 + tick
    assert {e.kind for e in events} == {"slide", "dialog", "scroll"}


def test_layout_places_the_webcam_and_adds_noise() -> None:
    width, height = 320, 180
    events = screen_share_events(10.0, seed=1, fps=10.0)
    top_left = ScreenRenderer(width, height, events, seed=1, webcam=True, layout=ScreenLayout(webcam_corner="top-left"))
    a, b = top_left.render(0, 0.0).astype(int), top_left.render(1, 0.1).astype(int)
    moving = np.abs(a - b).max(axis=2) > 30  # the webcam tile redraws its noise every frame
    th, tw = height // 7, width // 7
    top = height // 12 + height // 60  # below the title bar
    assert moving[top : top + th, width // 80 : width // 80 + tw].mean() > 0.5
    assert moving[: height // 12].mean() == 0
    assert (
        moving[height - th - height // 60 : height - height // 60, width - tw - width // 80 : -width // 80].mean()
        < 0.05
    )
    clean = ScreenRenderer(width, height, events, seed=1, webcam=False)
    noisy = ScreenRenderer(width, height, events, seed=1, webcam=False, layout=ScreenLayout(noise=4.0))
    difference = noisy.render(0, 0.0).astype(int) - clean.render(0, 0.0).astype(int)
    assert 3.0 < difference.std() < 5.0
    assert np.array_equal(clean.render(0, 0.0), clean.render(0, 0.0))
