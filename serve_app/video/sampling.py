"""Adaptive frame selection: keep frames where the picture changes, not every second.

Screen shares are mostly static: uniform sampling pays again and again for
the same slide. `AdaptiveSampler` receives candidate frames at a base rate
(in time order, as the decoder produces them) and keeps a candidate when it
differs from the last kept frame, compared on a small grey thumbnail cut into
tiles:

- a tile changed when its mean absolute difference exceeds `tile_threshold`;
- a change counts when enough tiles changed (`min_tiles`) or one connected
  group of changed tiles is wider or taller than `min_side` tiles, so a
  moving mouse cursor (a tile or two at its old and new place) does not;
- tiles that change continuously around the candidate (a webcam tile, a
  playing video, a clock) are "live" and ignored if they were live at the
  last kept frame too and cover a small part of the frame: a region coming
  alive is a change, and large continuous motion is content, not noise;
- while the page is scrolling (the next candidate is this one shifted up or
  down) nothing is kept; the candidate where it comes to rest is;
- with nothing new for `floor_s` seconds a candidate is kept anyway (unless
  a change follows within the next two candidates, or not one tile changed
  since the last kept frame), so a clock or a progress bar too small to count
  as a change is still shown now and then, while a static screen is sent once
  however long the chunk;
- every keep travels as a pair with the candidate after it (the chunk's last
  candidate with itself): Qwen3-VL fuses frames two by two into one temporal
  patch stamped with the pair's mean time, so a pair must never join frames
  seconds apart — each `<t seconds>` marker then lies within half a candidate
  interval of both its frames, and the model never sees two unrelated
  pictures blended. The partner is also the reference for the next change;
- the count is capped at the chunk's frame budget (`ceiling`), dropping the
  pairs that changed the least (never the chunk's first).

A home-made detector rather than PySceneDetect's: its content and hash
detectors score whole-frame averages between consecutive frames, which
cannot tell a small dialog from webcam noise. Fed the same candidates in
`bench/sampling.py`, with their default thresholds they missed 40% of the
changes of generated screen shares; with a threshold low enough for full
recall (content, 3) they kept 20% more frames than this sampler, and on the
real GNOME recording they still missed 4 of 13 changes, this sampler none.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

__all__ = ["AdaptiveParams", "AdaptiveSampler", "ChangeDetector", "Selection", "is_scrolled", "thumbnail_size"]

logger = logging.getLogger(__name__)

FrameT = TypeVar("FrameT")

#: Thumbnail pixels per tile side, and tiles along the thumbnail's longer side.
TILE = 8
TILES_LONG_SIDE = 32
# Comparisons on each side of a candidate that decide whether a tile is live:
# two before, two after (a 4-comparison window; 3 changes in it = live).
_LIVE_WINDOW = 2
_LIVE_MIN_CHANGES = 3
# A scroll: shifted by the best vertical offset, thumbnails differ at most this
# fraction of their unshifted difference (measured: scrolls 0.5-0.6, slide changes 0.9+).
_SCROLL_RATIO = 0.75


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the grey thumbnail: 32 tiles of 8 px along the longer side."""
    long_px = TILE * TILES_LONG_SIDE
    if width >= height:
        return long_px, max(TILE, round(long_px * height / width / TILE) * TILE)
    return max(TILE, round(long_px * width / height / TILE) * TILE), long_px


@dataclass(frozen=True)
class AdaptiveParams:
    """Knobs of the change detector and the floor (see the module docstring)."""

    floor_s: float
    tile_threshold: float
    min_tiles: int = 9
    min_side: int = 5
    # A webcam tile (1/7 of each side) grown by a tile covers ~6% of a 16:9 frame.
    max_live_fraction: float = 0.1


class ChangeDetector:
    """Tile-difference maps and the "is this a real change" test on grey thumbnails."""

    def __init__(self, params: AdaptiveParams) -> None:
        self.params = params

    def changed_tiles(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Bool [rows, cols]: tiles whose mean absolute difference exceeds the threshold."""
        rows, cols = a.shape[0] // TILE, a.shape[1] // TILE
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        means = diff[: rows * TILE, : cols * TILE].reshape(rows, TILE, cols, TILE).mean(axis=(1, 3))
        return means > self.params.tile_threshold

    def same_picture(self, a: np.ndarray, b: np.ndarray) -> bool:
        """Not one tile changed: codec noise at most (a periodic keyframe's re-encode moves tiles by up
        to ~4 grey levels on idle screens), unlike a clock or a progress bar, which change a few tiles."""
        return not self.changed_tiles(a, b).any()

    def score(self, changed: np.ndarray, live: np.ndarray) -> float:
        """Fraction of tiles that changed (live tiles ignored); 0 when the change does not count."""
        changed = changed & ~live
        count = int(changed.sum())
        if count == 0:
            return 0.0
        if count >= self.params.min_tiles or _widest_group(changed) >= self.params.min_side:
            return count / changed.size
        return 0.0


def is_scrolled(a: np.ndarray, b: np.ndarray) -> bool:
    """True when thumbnail `b` is mostly `a` moved up or down (a scroll in progress).

    The shift is found on row profiles (cheap), then checked on the pixels:
    shifted, the pictures must differ much less than unshifted. Different
    pages of similar layout (slide to slide) do not pass: shifting does not
    make them alike.
    """
    height = a.shape[0]
    pa, pb = a.mean(axis=1), b.mean(axis=1)
    best_dy, best_err = 0, math.inf
    for dy in range(1 - height // 2, height // 2):
        err = float(np.abs(pa[max(dy, 0) : height + min(dy, 0)] - pb[max(-dy, 0) : height + min(-dy, 0)]).mean())
        if err < best_err:
            best_dy, best_err = dy, err
    a16, b16 = a.astype(np.int16), b.astype(np.int16)
    still = float(np.abs(a16 - b16).mean())
    if best_dy == 0 or still < 1.0:
        return False
    # Thumbnails are scaled: the true shift may fall between rows.
    shifted = min(
        float(np.abs(a16[max(dy, 0) : height + min(dy, 0)] - b16[max(-dy, 0) : height + min(-dy, 0)]).mean())
        for dy in (best_dy - 1, best_dy, best_dy + 1)
        if dy != 0
    )
    return shifted <= _SCROLL_RATIO * still


def _dilate(mask: np.ndarray) -> np.ndarray:
    """`mask` grown by one tile in all eight directions."""
    grown = mask.copy()
    rows, cols = mask.shape
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            grown[max(dr, 0) : rows + min(dr, 0), max(dc, 0) : cols + min(dc, 0)] |= mask[
                max(-dr, 0) : rows + min(-dr, 0), max(-dc, 0) : cols + min(-dc, 0)
            ]
    return grown


def _widest_group(changed: np.ndarray) -> int:
    """Largest bounding-box side among 8-connected groups of changed tiles.

    Only called with fewer than `min_tiles` changed tiles, so a plain flood
    fill over them is cheap.
    """
    todo = {(int(r), int(c)) for r, c in zip(*np.nonzero(changed), strict=True)}
    widest = 0
    while todo:
        stack = [todo.pop()]
        rows, cols = [stack[0][0]], [stack[0][1]]
        while stack:
            r, c = stack.pop()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if (r + dr, c + dc) in todo:
                        todo.remove((r + dr, c + dc))
                        stack.append((r + dr, c + dc))
                        rows.append(r + dr)
                        cols.append(c + dc)
        widest = max(widest, max(rows) - min(rows) + 1, max(cols) - min(cols) + 1)
    return widest


@dataclass
class _Candidate(Generic[FrameT]):
    frame: FrameT
    time_s: float
    thumb: np.ndarray
    change: np.ndarray | None = None  # changed tiles versus the previous candidate


@dataclass
class Selection:
    """What the sampler kept: frames (converted), their times, and why.

    Frames come in pairs: frame 2i is a keep, frame 2i+1 its partner (the next candidate, or the keep
    again at the chunk's end). `scores` has one entry per pair: the keep's change score, 0 for the
    chunk start and floor keeps.
    """

    frames: list[np.ndarray] = field(default_factory=list)
    times_s: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    candidates: int = 0


class AdaptiveSampler(Generic[FrameT]):
    """Streams candidates in, keeps the informative ones (see the module docstring).

    A candidate is decided once the two after it have arrived (live tiles
    need both sides), so at most three undecided frames are held. Kept frames
    are converted with `convert` right away; the rest are dropped unconverted.
    """

    def __init__(self, params: AdaptiveParams, ceiling: int, convert: Callable[[FrameT], np.ndarray]) -> None:
        if ceiling < 2 or ceiling % 2:
            raise ValueError(f"ceiling must be even and >= 2, got {ceiling}")
        self.detector = ChangeDetector(params)
        self.params = params
        self.ceiling = ceiling
        self.convert = convert
        self._pending: deque[_Candidate[FrameT]] = deque()
        # Change maps of the decided candidates' last comparisons, oldest first (for the live test).
        self._history: deque[np.ndarray] = deque(maxlen=_LIVE_WINDOW)
        self._last_kept: _Candidate[FrameT] | None = None
        self._last_keep_s = 0.0
        self._live_at_kept = np.zeros((1, 1), bool)
        self._last: _Candidate[FrameT] | None = None
        self._selection = Selection()

    def add(self, frame: FrameT, time_s: float, thumb: np.ndarray) -> None:
        """Offer the next candidate (times increase)."""
        candidate = _Candidate(frame, time_s, thumb)
        if self._last is not None:
            candidate.change = self.detector.changed_tiles(self._last.thumb, thumb)
        self._last = candidate
        self._selection.candidates += 1
        self._pending.append(candidate)
        if len(self._pending) > _LIVE_WINDOW:
            self._decide(self._pending.popleft(), list(self._pending))

    def finish(self) -> Selection:
        """Decide the remaining candidates; cap the pairs at the ceiling."""
        while self._pending:
            self._decide(self._pending.popleft(), list(self._pending))
        sel = self._selection
        while len(sel.frames) > self.ceiling:
            # The least informative pair goes first (the latest of equals); the chunk's first stays.
            drop = 1 + min(range(len(sel.scores) - 1), key=lambda i: (sel.scores[i + 1], -i))
            del sel.frames[2 * drop : 2 * drop + 2], sel.times_s[2 * drop : 2 * drop + 2], sel.scores[drop]
        logger.debug("adaptive sampling kept %d pairs of %d candidates", len(sel.scores), sel.candidates)
        return sel

    def _decide(self, candidate: _Candidate[FrameT], after: list[_Candidate[FrameT]]) -> None:
        if candidate.change is not None:
            self._history.append(candidate.change)
        # Comparisons k-1 and k (history) and k+1, k+2 (the candidates after it).
        live = self._live([*self._history, *(c.change for c in after if c.change is not None)])
        partner = after[0] if after else candidate
        if self._last_kept is None:
            self._keep(candidate, partner, 0.0, live)  # the chunk's start: the reference for what follows
            return
        if candidate is self._last_kept:  # the previous keep's partner: already shown
            return
        # Only tiles that were already live at the last kept frame are ignored:
        # that frame shows them as the webcam or video they are; a region that
        # comes alive (a person walking in, a video starting) is a change.
        ignore = live & self._live_at_kept
        score = self.detector.score(self.detector.changed_tiles(self._last_kept.thumb, candidate.thumb), ignore)
        if score > 0 and after and is_scrolled(candidate.thumb, after[0].thumb):
            # Mid-scroll: the page is still moving; the frame where it stops shows the new content.
            score = 0.0
        if score > 0:
            self._keep(candidate, partner, score, live)
        elif (
            candidate.time_s - self._last_keep_s >= self.params.floor_s - 1e-6
            and not self._change_ahead(after, ignore)
            and not self.detector.same_picture(self._last_kept.thumb, candidate.thumb)
        ):
            self._keep(candidate, partner, 0.0, live)

    def _change_ahead(self, after: list[_Candidate[FrameT]], ignore: np.ndarray) -> bool:
        """A change among the next candidates will be kept anyway: a floor frame now would be wasted."""
        assert self._last_kept is not None
        reference = self._last_kept.thumb
        return any(self.detector.score(self.detector.changed_tiles(reference, c.thumb), ignore) > 0 for c in after)

    def _live(self, window: list[np.ndarray]) -> np.ndarray:
        """Tiles that changed in most comparisons around the candidate, if they are a small area."""
        if len(window) < 2:
            return np.zeros_like(window[0]) if window else np.zeros((1, 1), bool)
        # Grown by a tile: the tiles a live region only grazes flicker around the threshold.
        live = _dilate(np.sum(window, axis=0) >= min(_LIVE_MIN_CHANGES, len(window)))
        if live.mean() > self.params.max_live_fraction:
            return np.zeros_like(live)  # large continuous motion is content (typing, scrolling, camera video)
        return live

    def _keep(self, candidate: _Candidate[FrameT], partner: _Candidate[FrameT], score: float, live: np.ndarray) -> None:
        sel = self._selection
        for shown in (candidate, partner):
            sel.frames.append(self.convert(shown.frame))
            sel.times_s.append(shown.time_s)
        sel.scores.append(score)
        self._last_kept = partner  # the latest picture the model sees: what the next change is measured from
        self._last_keep_s = candidate.time_s  # the floor counts from the keep, so floors stay on their grid
        self._live_at_kept = live
