from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import pytest

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import write_audio_only, write_video
from serve_app.errors import (
    EmptyUpload,
    InvalidVideo,
    NoVideoStream,
    PayloadTooLarge,
    UnsupportedCodec,
    VideoTooLong,
)
from serve_app.video.probe import probe

if TYPE_CHECKING:
    from conftest import Clip, VideoFactory

LIMITS = VideoSettings()


def test_probe_mp4(cfr_mp4: Clip) -> None:
    info = probe(cfr_mp4.path, LIMITS)
    assert "mp4" in info.container and info.codec == "h264"
    assert info.duration_s == pytest.approx(10.0, abs=0.01)
    assert info.fps == pytest.approx(10.0)
    assert (info.width, info.height, info.rotation) == (160, 96, 0)
    assert info.frame_count == 100
    assert not info.has_audio and info.stream_count == 1
    data = cfr_mp4.path.read_bytes()
    assert info.size_bytes == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()


def test_probe_webm_with_audio(webm_audio: Clip) -> None:
    info = probe(webm_audio.path, LIMITS)
    assert info.container == "matroska,webm" and info.codec == "vp8"
    assert info.duration_s == pytest.approx(6.0, abs=0.05)
    assert info.fps == pytest.approx(25.0)
    assert (info.width, info.height) == (192, 128)
    assert info.has_audio and info.stream_count == 2


def test_probe_variable_frame_rate_mkv(vfr_mkv: Clip) -> None:
    info = probe(vfr_mkv.path, LIMITS)
    assert info.codec == "vp9"
    last = vfr_mkv.times[-1]
    assert last - 0.001 <= info.duration_s <= last + 0.5
    # Average rate of the irregular stream, not the nominal 10 fps.
    assert info.fps == pytest.approx(len(vfr_mkv.times) / last, rel=0.25)


def test_probe_rotated_reports_displayed_size(rotated_mp4: Clip) -> None:
    info = probe(rotated_mp4.path, LIMITS)
    assert info.rotation == 90
    assert (info.width, info.height) == (96, 160)


def test_probe_mp4_with_aac(make_video: VideoFactory) -> None:
    clip = make_video("aac.mp4", duration_s=2, fps=10, width=64, height=64, audio=True)
    info = probe(clip.path, LIMITS)
    assert info.has_audio and info.stream_count == 2
    assert info.duration_s == pytest.approx(2.0, abs=0.01)  # the video's, not the audio's


def test_probe_avi_mpeg4(make_video: VideoFactory) -> None:
    clip = make_video("plain.avi", duration_s=2, fps=10, width=64, height=64)
    info = probe(clip.path, LIMITS)
    assert (info.container, info.codec, info.frame_count) == ("avi", "mpeg4", 20)


def test_too_long(cfr_mp4: Clip) -> None:
    with pytest.raises(VideoTooLong, match=r"10\.0 s.*9\.5 s"):
        probe(cfr_mp4.path, VideoSettings(max_duration_s=9.5))


def test_too_large(cfr_mp4: Clip) -> None:
    size = cfr_mp4.path.stat().st_size
    with pytest.raises(PayloadTooLarge, match=str(size)):
        probe(cfr_mp4.path, VideoSettings(max_upload_bytes=size - 1))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(EmptyUpload):
        probe(path, LIMITS)


@pytest.mark.parametrize("name", ["notes.txt", "notes.mp4", "notes.bin", "notes"])
def test_text_file(tmp_path: Path, name: str) -> None:
    # FFmpeg opens .txt as ANSI art and .bin as binary text; neither is video.
    path = tmp_path / name
    path.write_text("meeting notes\nnot a video at all\n" * 40)
    with pytest.raises(InvalidVideo) as caught:
        probe(path, LIMITS)
    assert type(caught.value) is InvalidVideo


@pytest.mark.parametrize("name", ["noise.mp4", "noise.webm", "noise"])
def test_random_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(5).bytes(200_000))
    with pytest.raises(InvalidVideo) as caught:
        probe(path, LIMITS)
    assert type(caught.value) is InvalidVideo


def test_truncated_faststart_mp4(make_video: VideoFactory, tmp_path: Path) -> None:
    # moov first, so the index survives the cut and promises frames that are gone.
    clip = make_video("faststart.mp4", duration_s=10, fps=10, width=320, height=192, options={"movflags": "faststart"})
    data = clip.path.read_bytes()
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidVideo, match="truncated or corrupt"):
        probe(cut, LIMITS)


def test_truncated_webm(webm_audio: Clip, tmp_path: Path) -> None:
    data = webm_audio.path.read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(InvalidVideo, match="truncated or corrupt"):
        probe(cut, LIMITS)


def test_truncated_mp4_without_faststart(cfr_mp4: Clip, tmp_path: Path) -> None:
    data = cfr_mp4.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) at the end is gone
    with pytest.raises(InvalidVideo):
        probe(cut, LIMITS)


@pytest.mark.parametrize("name", ["voice.m4a", "voice.ogg"])
def test_audio_only(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_audio_only(path, 1.0)
    with pytest.raises(NoVideoStream, match="audio"):
        probe(path, LIMITS)


def test_unknown_codec(tmp_path: Path) -> None:
    # An AVI whose FourCC names no codec FFmpeg knows.
    path = tmp_path / "odd.avi"
    write_video(path, duration_s=1, fps=10, width=64, height=64, codec="mpeg4")
    data = path.read_bytes()
    assert data.count(b"FMP4") == 2
    path.write_bytes(data.replace(b"FMP4", b"QQZ9"))
    with pytest.raises(UnsupportedCodec, match="no decoder"):
        probe(path, LIMITS)


def test_still_image(tmp_path: Path) -> None:
    path = tmp_path / "slide.png"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "rgb24"
        frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(UnsupportedCodec, match="png"):
        probe(path, LIMITS)


def test_missing_file_is_not_the_clients_fault(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "gone.mp4", LIMITS)


REAL_MEDIA = [
    # name, container, codec, duration s, fps, width, height, audio
    ("display-dual-monitors.webm", "matroska,webm", "vp8", 37.1, 15.0, 1024, 768, False),
    ("vtest.avi", "avi", "msmpeg4v3", 79.5, 10.0, 768, 576, False),
    ("Megamind.avi", "avi", "mpeg4", 11.3, 23.976, 720, 528, True),
]


@pytest.mark.parametrize(("name", "container", "codec", "duration", "fps", "width", "height", "audio"), REAL_MEDIA)
def test_probe_real_media(
    media_dir: Path,
    name: str,
    container: str,
    codec: str,
    duration: float,
    fps: float,
    width: int,
    height: int,
    audio: bool,
) -> None:
    info = probe(media_dir / name, LIMITS)
    assert (info.container, info.codec) == (container, codec)
    assert info.duration_s == pytest.approx(duration, abs=0.1)
    assert info.fps == pytest.approx(fps, rel=1e-3)
    assert (info.width, info.height, info.rotation) == (width, height, 0)
    assert info.has_audio is audio


def test_audio_longer_than_video_is_not_a_truncation(make_video: VideoFactory) -> None:
    # Video frames stop at 3 s while the audio runs to 6 s: the video's length counts.
    clip = make_video(
        "short_video.webm", duration_s=6, fps=10, width=64, height=64, audio=True, vfr_times=[i / 10 for i in range(31)]
    )
    info = probe(clip.path, LIMITS)
    assert info.duration_s == pytest.approx(3.0, abs=0.11)
