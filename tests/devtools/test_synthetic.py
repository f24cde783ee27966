from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import read_frame_index, render_frame_index, write_sample_video, write_video
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
