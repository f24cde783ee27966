"""Shared fixtures: generated clips (session-scoped) and the shared real media."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serve_app.devtools.meeting import (
    SAMPLE_DURATION_S,
    SAMPLE_SLIDES,
    Spoken,
    espeak_available,
    write_sample_meeting,
)
from serve_app.devtools.synthetic import ScreenEvent, write_screen_share, write_video
from serve_app.schemas import ChunkPlan

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO_ROOT / ".." / "shared" / "media"


@dataclass(frozen=True)
class Clip:
    """A generated video and what was written into it."""

    path: Path
    times: list[float]  # presentation time of frame i (frame i shows index i)
    kwargs: dict[str, Any]

    @property
    def fps(self) -> float:
        return float(self.kwargs["fps"])


VideoFactory = Callable[..., Clip]


def chunk_plan(
    index: int, start: float, end: float, core_start: float | None = None, core_end: float | None = None
) -> ChunkPlan:
    """A small uniform ChunkPlan for tests of what happens after planning (timeline, flow, progress)."""
    return ChunkPlan(
        index=index,
        start_s=start,
        end_s=end,
        core_start_s=start if core_start is None else core_start,
        core_end_s=end if core_end is None else core_end,
        fps=1.0,
        width=64,
        height=64,
        max_frames=2,
        token_budget=100,
        visual_tokens=4,
        sampling="uniform",
        floor_s=15,
        change_threshold=12,
    )


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The real sample videos in ../shared/media (read-only); skip when absent."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"shared media not found at {SHARED_MEDIA.resolve()}")
    return SHARED_MEDIA.resolve()


@pytest.fixture(scope="session")
def make_video(tmp_path_factory: pytest.TempPathFactory) -> VideoFactory:
    """`make_video(name, **write_video_kwargs)`: write once per session, then reuse."""
    root = tmp_path_factory.mktemp("videos")
    made: dict[str, Clip] = {}

    def make(name: str, **kwargs: Any) -> Clip:
        if name in made:
            assert made[name].kwargs == kwargs, f"clip {name} requested with different arguments"
            return made[name]
        path = root / name
        times = write_video(path, **kwargs)
        made[name] = Clip(path=path, times=times, kwargs=kwargs)
        return made[name]

    return make


@pytest.fixture(scope="session")
def cfr_mp4(make_video: VideoFactory) -> Clip:
    """10 s of 10 fps H.264 (B-frames) in MP4, 160x96."""
    return make_video("cfr.mp4", duration_s=10, fps=10, width=160, height=96)


@pytest.fixture(scope="session")
def webm_audio(make_video: VideoFactory) -> Clip:
    """6 s of 25 fps VP8 with an Opus track, 192x128."""
    return make_video("audio.webm", duration_s=6, fps=25, width=192, height=128, audio=True)


@pytest.fixture(scope="session")
def vfr_mkv(make_video: VideoFactory) -> Clip:
    """VP9 in Matroska with irregular frame times (20 ms .. 400 ms apart), ~12 s."""
    gaps = np.random.default_rng(7).uniform(0.02, 0.4, size=60)
    times = np.round(np.concatenate([[0.0], np.cumsum(gaps)]), 3).tolist()
    return make_video(
        "vfr.mkv", duration_s=times[-1], fps=10, width=128, height=96, codec="libvpx-vp9", vfr_times=times
    )


@pytest.fixture(scope="session")
def rotated_mp4(make_video: VideoFactory) -> Clip:
    """A portrait clip stored landscape with a 90-degree display matrix."""
    return make_video("rotated.mp4", duration_s=3, fps=10, width=96, height=160, rotation=90)


@pytest.fixture(scope="session")
def long_gop_mp4(make_video: VideoFactory) -> Clip:
    """60 s at 10 fps with a keyframe every 5 s: seeking must skip most of it."""
    return make_video("long_gop.mp4", duration_s=60, fps=10, width=128, height=64, gop=50)


@pytest.fixture(scope="session")
def faststart_mp4(make_video: VideoFactory) -> Clip:
    """12 s of 10 fps H.264 in MP4 with the index (moov) first, 320x240: cut in half, the index
    promises frames that are gone (a truncated video). Shared by unit and integration tests."""
    return make_video(
        "faststart_12s.mp4", duration_s=12, fps=10, width=320, height=240, options={"movflags": "faststart"}
    )


@dataclass(frozen=True)
class ScreenClip:
    """A generated screen share with a frame counter and its change events."""

    path: Path
    events: list[ScreenEvent]
    width: int
    height: int
    fps: float


@pytest.fixture(scope="session")
def screen_share(tmp_path_factory: pytest.TempPathFactory) -> ScreenClip:
    """60 s of a 384x216 screen share at 10 fps: slides (one held 1.4 s), a dialog, a scroll,
    a moving cursor, a noisy webcam tile and a frame counter."""
    path = tmp_path_factory.mktemp("screen") / "screen.mp4"
    script = [
        ScreenEvent("slide", 0.0, 0.0, 6.0),
        ScreenEvent("dialog", 6.0, 6.0, 6.9),
        ScreenEvent("slide", 9.0, 9.0, 10.4),
        ScreenEvent("slide", 10.4, 10.4, 25.0),
        ScreenEvent("scroll", 25.0, 26.2, 40.0),
        ScreenEvent("slide", 40.0, 40.0, 60.0),
    ]
    events = write_screen_share(
        path, duration_s=60.0, fps=10.0, width=384, height=216, events=script, counter=True, gop=50
    )
    return ScreenClip(path=path, events=events, width=384, height=216, fps=10.0)


@dataclass(frozen=True)
class Meeting:
    """A generated meeting: what was said when (the truth), over slides that change at known times."""

    path: Path
    said: list[Spoken]
    slide_starts: list[float]
    duration_s: float


@pytest.fixture(scope="session")
def meeting(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    """40 s: six sentences (three voices) and four slides; needs espeak-ng (`make setup` installs it)."""
    if not espeak_available():
        pytest.skip("espeak-ng is not installed (make setup installs it with apt)")
    path = tmp_path_factory.mktemp("meeting") / "meeting.mp4"
    said = write_sample_meeting(path)
    return Meeting(path=path, said=said, slide_starts=list(SAMPLE_SLIDES), duration_s=SAMPLE_DURATION_S)


@pytest.fixture(autouse=True)
def _restore_routed_loggers() -> Iterator[None]:
    """A replica constructed in a unit test (or route_to_serve itself) reroutes serve_app's and vLLM's
    loggers for the whole process; put them back, so later tests see records once, where pytest looks."""
    import logging

    from serve_app.observability.logs import ROUTED_LOGGERS

    saved = {name: logging.getLogger(name) for name in ROUTED_LOGGERS}
    state = {name: (list(lg.handlers), lg.propagate, lg.level) for name, lg in saved.items()}
    yield
    for name, lg in saved.items():
        lg.handlers[:], lg.propagate, lg.level = state[name][0], state[name][1], state[name][2]
