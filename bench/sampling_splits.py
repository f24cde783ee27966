"""The generated screen shares `bench/sampling.py` scores on: the tuning split and the held-out split.

The tuning split is the set the sampler's thresholds were chosen on (three
seeds of one layout, 1280x720 at 15 fps, clean capture): its clips and
figures must stay exactly as they were so runs stay comparable. The held-out
split was never looked at while tuning: other seeds, resolutions, frame
rates, aspect ratios, layouts (webcam corner and size, title bar, dialog
size), change durations and capture noise. Its definitions are fixed here,
before its first run, and no sampling default may be changed because of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common import cached

from serve_app.devtools.idle_screen import write_idle_screen
from serve_app.devtools.synthetic import (
    ChangeDurations,
    ScreenEvent,
    ScreenLayout,
    screen_share_events,
    write_screen_share,
)


@dataclass(frozen=True)
class GeneratedClip:
    """One generated screen share: the generator's inputs, enough to rebuild it and its change times."""

    seed: int
    width: int
    height: int
    fps: float
    duration_s: float
    webcam: bool = True
    layout: ScreenLayout = field(default_factory=ScreenLayout)
    durations: ChangeDurations = field(default_factory=ChangeDurations)
    #: Cache-file tag for non-default layout/durations (the tuning files keep their old names).
    tag: str = ""

    @property
    def name(self) -> str:
        tag = f"-{self.tag}" if self.tag else ""
        return f"screen-share-{self.width}x{self.height}-{self.fps:g}fps-{self.duration_s:g}s-seed{self.seed}{tag}.mp4"

    def events(self) -> list[ScreenEvent]:
        return screen_share_events(self.duration_s, seed=self.seed, fps=self.fps, durations=self.durations)

    def path(self) -> Path:
        return cached(
            self.name,
            lambda p: write_screen_share(
                p,
                duration_s=self.duration_s,
                fps=self.fps,
                width=self.width,
                height=self.height,
                seed=self.seed,
                webcam=self.webcam,
                layout=self.layout,
                durations=self.durations,
                encoder_options={"threads": "2"},
            ),
        )


def tuning(duration_s: float = 120.0) -> list[GeneratedClip]:
    """The set the thresholds were tuned on (unchanged)."""
    return [GeneratedClip(seed=seed, width=1280, height=720, fps=15.0, duration_s=duration_s) for seed in (11, 12, 13)]


#: Never tuned on. Each clip differs from the tuning set in several ways at once.
HELD_OUT: tuple[GeneratedClip, ...] = (
    # Full HD at 30 fps, a big webcam tile top-left, small dialogs, shorter holds, more of them under 2 s.
    GeneratedClip(
        seed=101,
        width=1920,
        height=1080,
        fps=30.0,
        duration_s=90.0,
        layout=ScreenLayout(webcam_div=5, webcam_corner="top-left", dialog_div=(4, 5)),
        durations=ChangeDurations(
            hold_s=(2.0, 25.0), short_fraction=0.35, short_hold_s=(0.7, 1.5), dialog_s=(0.6, 1.4)
        ),
        tag="heldout",
    ),
    # 4:3 at 10 fps, no webcam, a tall title bar, large dialogs, longer dialogs, capture noise (sigma 4).
    GeneratedClip(
        seed=202,
        width=1024,
        height=768,
        fps=10.0,
        duration_s=120.0,
        webcam=False,
        layout=ScreenLayout(title_div=8, dialog_div=(2, 3), noise=4.0),
        durations=ChangeDurations(
            hold_s=(3.0, 20.0), short_fraction=0.15, short_hold_s=(1.0, 2.5), dialog_s=(1.0, 3.0)
        ),
        tag="heldout",
    ),
    # 480p at 24 fps, webcam bottom-left, light noise, quick scrolls and short pauses after dialogs.
    GeneratedClip(
        seed=303,
        width=854,
        height=480,
        fps=24.0,
        duration_s=120.0,
        layout=ScreenLayout(webcam_div=6, webcam_corner="bottom-left", noise=2.0),
        durations=ChangeDurations(
            hold_s=(3.0, 30.0),
            short_fraction=0.3,
            short_hold_s=(0.8, 1.6),
            after_dialog_s=(1.0, 4.0),
            scroll_s=(0.5, 1.0),
        ),
        tag="heldout",
    ),
    # Portrait (a phone screen) at 15 fps, webcam top-right, rapid changes: sub-second holds and dialogs.
    GeneratedClip(
        seed=404,
        width=720,
        height=1280,
        fps=15.0,
        duration_s=120.0,
        layout=ScreenLayout(webcam_div=8, webcam_corner="top-right"),
        durations=ChangeDurations(
            hold_s=(1.5, 12.0),
            short_fraction=0.2,
            short_hold_s=(0.6, 1.2),
            dialog_s=(0.5, 1.0),
            after_dialog_s=(0.5, 3.0),
        ),
        tag="heldout",
    ),
)


@dataclass(frozen=True)
class IdleClip:
    """A generated screen share whose cursor rests between changes (`write_idle_screen`, x264 defaults:
    scene-cut on), as a presenter talking over a slide: the content the compressed-domain pass and
    content-sized chunks are for. Same interface as `GeneratedClip`."""

    seed: int
    width: int
    height: int
    fps: float
    duration_s: float
    webcam: bool = False
    durations: ChangeDurations = field(default_factory=ChangeDurations)

    @property
    def name(self) -> str:
        cam = "-webcam" if self.webcam else ""
        return f"idle-screen-{self.width}x{self.height}-{self.fps:g}fps-{self.duration_s:g}s-seed{self.seed}{cam}.mp4"

    def events(self) -> list[ScreenEvent]:
        return screen_share_events(self.duration_s, seed=self.seed, fps=self.fps, durations=self.durations)

    def path(self) -> Path:
        return cached(
            self.name,
            lambda p: write_idle_screen(
                p,
                duration_s=self.duration_s,
                fps=self.fps,
                width=self.width,
                height=self.height,
                seed=self.seed,
                events=self.events(),
                webcam=self.webcam,
                options={"threads": "2"},
            ),
        )


#: Never tuned on (defined 2026-12-03 before their first run; the pass's constants were measured on a
#: 640x360 clip with hand-placed changes and on tests/video/test_packets.py's clips). Idle screens of a
#: talk (long holds) and of a meeting with a live webcam tile (the pass then finds nothing static).
IDLE_HELD_OUT: tuple[IdleClip, ...] = (
    IdleClip(
        seed=404, width=1280, height=720, fps=30.0, duration_s=300.0, durations=ChangeDurations(hold_s=(20.0, 90.0))
    ),
    IdleClip(seed=505, width=1920, height=1080, fps=30.0, duration_s=120.0),
    IdleClip(seed=606, width=1280, height=720, fps=25.0, duration_s=120.0, webcam=True),
)
