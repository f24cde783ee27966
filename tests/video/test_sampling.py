"""AdaptiveSampler on rendered screen-share pictures (no codec in the way)."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.devtools.synthetic import ScreenEvent, ScreenRenderer
from serve_app.video.sampling import AdaptiveParams, AdaptiveSampler, is_scrolled, thumbnail_size

WIDTH, HEIGHT = 384, 216
BASE_FPS = 2.0
PARAMS = AdaptiveParams(floor_s=10.0, tile_threshold=12.0)


def gray_thumb(image: np.ndarray) -> np.ndarray:
    """The grey thumbnail the decoder makes (area average to 256 px wide)."""
    tw, th = thumbnail_size(image.shape[1], image.shape[0])
    gray = image.astype(np.float32).mean(axis=2)
    ys = (np.arange(th + 1) * image.shape[0] / th).astype(int)
    xs = (np.arange(tw + 1) * image.shape[1] / tw).astype(int)
    rows = np.add.reduceat(gray, ys[:-1], axis=0) / np.diff(ys)[:, None]
    return (np.add.reduceat(rows, xs[:-1], axis=1) / np.diff(xs)[None, :]).astype(np.uint8)


def run(
    events: list[ScreenEvent],
    duration_s: float,
    *,
    webcam: bool = True,
    ceiling: int = 200,
    params: AdaptiveParams | None = None,
) -> tuple[list[float], list[float], int]:
    """Candidates at BASE_FPS through the sampler: (kept times, scores, candidates)."""
    screen = ScreenRenderer(WIDTH, HEIGHT, events, seed=3, webcam=webcam)
    converted: list[float] = []
    sampler: AdaptiveSampler[float] = AdaptiveSampler(
        params or PARAMS, ceiling, lambda t: converted.append(t) or np.zeros((2, 2, 3), np.uint8)
    )
    count = round(duration_s * BASE_FPS)
    for i in range(count):
        t = (i + 0.5) / BASE_FPS
        sampler.add(t, t, gray_thumb(screen.render(round(t * 30), t)))
    selection = sampler.finish()
    assert len(selection.frames) == len(selection.times_s) == 2 * len(selection.scores)
    assert selection.candidates == count
    # Only kept frames are converted (plus any dropped at the ceiling).
    assert set(selection.times_s) <= set(converted)
    times = selection.times_s
    # Pairs: a keep and the next candidate (or itself at the end), so a pair's marker is within half a
    # candidate interval of both frames.
    for a, b in zip(times[::2], times[1::2], strict=True):
        assert 0 <= b - a <= 1 / BASE_FPS + 1e-9
    assert times == sorted(times)
    return times[::2], selection.scores, selection.candidates


def slide(start: float, end: float) -> ScreenEvent:
    return ScreenEvent("slide", start, start, end)


def covered(event: ScreenEvent, kept: list[float]) -> bool:
    return any(event.shown_s <= t < event.end_s for t in kept)


def test_static_screen_with_cursor_and_webcam_keeps_only_the_floor() -> None:
    # 40 s of one page: the cursor moves and the webcam tile flickers all the time.
    kept, scores, _ = run([slide(0, 40)], 40)
    assert kept == pytest.approx([0.25, 10.25, 20.25, 30.25])
    assert scores == [0.0] * 4  # start and floor frames, no "change"


def test_every_change_is_kept_even_short_ones() -> None:
    events = [
        slide(0, 6),
        slide(6, 7.2),  # held 1.2 s
        slide(7.2, 15),
        ScreenEvent("dialog", 15, 15, 15.8),  # open 0.8 s
        slide(19, 30),
    ]
    kept, scores, _ = run(events, 30)
    assert all(covered(e, kept) for e in events)
    changes = [t for t, s in zip(kept, scores, strict=True) if s > 0]
    # One pair per change, plus the dialog closing; nothing for the cursor or the webcam.
    assert changes == pytest.approx([6.25, 7.25, 15.25, 16.25, 19.25])


def test_scroll_keeps_the_settled_page_not_the_motion() -> None:
    events = [slide(0, 10), ScreenEvent("scroll", 10, 11.5, 25)]
    kept, scores, _ = run(events, 25)
    changes = [t for t, s in zip(kept, scores, strict=True) if s > 0]
    assert changes == pytest.approx([11.75])  # where the page came to rest, not 10.25 .. 11.25
    assert covered(events[1], kept)


def test_ceiling_drops_the_least_informative_pairs() -> None:
    events = [slide(0, 3), slide(3, 4.5), slide(4.5, 9), slide(9, 12)]
    kept, scores, _ = run(events, 24, ceiling=8)
    assert len(kept) == 4
    assert kept[0] == 0.25  # the chunk start always stays
    assert 0.0 not in scores[1:]  # the floor pair went first
    assert sum(covered(e, kept) for e in events) == 4


def test_a_keep_on_the_last_candidate_pairs_with_itself() -> None:
    screen = ScreenRenderer(WIDTH, HEIGHT, [slide(0, 8.5), slide(8.5, 9)], seed=3, webcam=True)
    sampler: AdaptiveSampler[float] = AdaptiveSampler(PARAMS, 100, lambda t: np.full((2, 2, 3), int(t * 10), np.uint8))
    for i in range(18):
        t = (i + 0.5) / BASE_FPS
        sampler.add(t, t, gray_thumb(screen.render(round(t * 30), t)))
    selection = sampler.finish()
    assert selection.times_s == pytest.approx([0.25, 0.75, 8.75, 8.75])
    assert selection.scores[0] == 0 and selection.scores[1] > 0


def test_a_region_coming_alive_is_a_change() -> None:
    # Without a webcam at the start, a webcam tile appearing is new content;
    # once it is live, its noise no longer counts.
    screen_events = [slide(0, 30)]
    still = ScreenRenderer(WIDTH, HEIGHT, screen_events, seed=3, webcam=False)
    live = ScreenRenderer(WIDTH, HEIGHT, screen_events, seed=3, webcam=True)
    sampler: AdaptiveSampler[float] = AdaptiveSampler(
        AdaptiveParams(floor_s=100, tile_threshold=12), 100, lambda t: np.zeros(1)
    )
    for i in range(60):
        t = (i + 0.5) / BASE_FPS
        screen = still if t < 10 else live
        sampler.add(t, t, gray_thumb(screen.render(round(t * 30), t)))
    selection = sampler.finish()
    changes = [t for t, s in zip(selection.times_s[::2], selection.scores, strict=True) if s > 0]
    assert changes and 10 <= changes[0] <= 11 and all(t < 12 for t in changes)


def test_scroll_detection_on_shifted_pages() -> None:
    screen = ScreenRenderer(WIDTH, HEIGHT, [slide(0, 10), slide(10, 20)], seed=5, webcam=False)
    page = screen.page(0)
    view = screen.view_h
    a = gray_thumb(page[0:view])
    assert is_scrolled(a, gray_thumb(page[40 : 40 + view]))
    assert not is_scrolled(a, a)
    other = gray_thumb(screen.page(1)[0:view])
    assert not is_scrolled(a, other)  # a different page of the same layout


def test_ceiling_must_be_even() -> None:
    with pytest.raises(ValueError):
        AdaptiveSampler(PARAMS, 3, lambda f: np.zeros(1))


def test_the_floor_does_not_resend_an_unchanged_screen_but_shows_a_small_change() -> None:
    """A static screen costs one pair however long the chunk (codec noise is not a change); a clock too
    small to count as a change (one tile) is still shown every `floor_s`."""
    page = gray_thumb(ScreenRenderer(WIDTH, HEIGHT, [slide(0, 60)], seed=3, webcam=False).page(0)[:HEIGHT])
    rng = np.random.default_rng(0)

    def kept(clock: bool) -> list[float]:
        sampler: AdaptiveSampler[float] = AdaptiveSampler(PARAMS, 200, lambda t: np.zeros(1))
        for i in range(120):
            t = (i + 0.5) / BASE_FPS
            thumb = np.clip(page.astype(np.int16) + rng.integers(-3, 4, page.shape), 0, 255).astype(np.uint8)
            if clock:
                thumb[:8, :8] = 40 * (int(t) % 4)  # one tile ticking each second
            sampler.add(t, t, thumb)
        return sampler.finish().times_s[::2]

    assert kept(clock=False) == [0.25]
    assert kept(clock=True) == pytest.approx([0.25, 10.25, 20.25, 30.25, 40.25, 50.25])
