"""The same event reported by two overlapping chunks, told apart from genuinely different events.

Neighbouring chunks overlap (`video.overlap_s`), so an event near a boundary is seen, and reported,
by both: with times that differ by the model's timing error and in different words. Two reports
are one event when all of these hold:

- they come from two different chunks whose ranges overlap, and from the same answer list
  (`events`, `steps`, `highlights`: a spoken highlight is never a visual event);
- both lie within one tolerance of the chunks' shared window, and their intervals overlap or are
  at most one tolerance apart. The tolerance is one temporal patch, two candidate intervals
  (2 / fps): Qwen3-VL stamps frames in pairs, so a reported time is no finer than that;
- their descriptions say the same: the sets of their content words (case-folded, function words
  dropped, Snowball-stemmed so "opens" and "opened" are one word) have a Jaccard similarity of at
  least `MIN_SIMILARITY`, or one holds all of the other's (a fuller account of the same moment:
  "slide 2 appears" and "slide 2 appears with a revenue chart"); when both mention numbers, those of
  one are all in the other; two different known speakers never say the same highlight.

Word sets rather than a character ratio (difflib's): what tells events apart on a screen is often
one word ("slide 2 appears" vs "slide 3 appears" is 0.93 similar by characters), while a model's
rewording changes whole words, which the word set weighs as such. The threshold sits above 0.5,
where three-word reports that differ in one word land ("terminal window opens" vs "browser window
opens"): a rewording is missed before two different events are merged. Of a duplicate pair the
timeline keeps the better-timed report (one not cut by its chunk's edge), then the longer
description.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import snowballstemmer

from serve_app.schemas import ChunkPlan

#: Jaccard similarity of content words from which two reports are one event: 4-word reports that
#: differ in one word (3/5 = 0.6) still are, 3-word ones (2/4) are not.
MIN_SIMILARITY = 0.6

_WORD = re.compile(r"[^\W_]+")
# Function words carry no event; dropping them keeps "the slide changes" and "slide changed" close.
_FUNCTION_WORDS = frozenset(
    "a an the is are was were be been being it its this that these those there of to in on at by for "
    "from with into onto and or as then now".split()
)


def content_words(text: str) -> frozenset[str]:
    """The comparable words of a description."""
    return frozenset(_stem(w) for w in (w.casefold() for w in _WORD.findall(text)) if w not in _FUNCTION_WORDS)


@functools.lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    # Cached: the pure-Python stemmer takes ~40 us a word, and answers repeat their words. A stemmer
    # per call: one keeps state while it stems, and timelines may be built on several threads.
    return snowballstemmer.stemmer("english").stemWord(word)


def similar(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two content-word sets describe the same thing (see the module docstring)."""
    if not (a and b):
        return a == b
    return a <= b or b <= a or len(a & b) / len(a | b) >= MIN_SIMILARITY


def _numbers(words: frozenset[str]) -> frozenset[str]:
    return frozenset(w for w in words if any(ch.isdigit() for ch in w))


@dataclass(frozen=True)
class Sighting:
    """One timed item of one chunk's answer, its times already clamped into the chunk."""

    plan: ChunkPlan
    key: str  # the answer list it came from: "events", "steps" or "highlights"
    start_s: float
    end_s: float
    text: str  # its timeline line (meeting highlights: with kind and speaker)
    description: str  # the item's own words, what is compared
    owned: bool  # its midpoint lies in its chunk's core (`ChunkPlan.core_start_s`..`core_end_s`)
    who: str | None = None  # meeting highlights: the speaker, None or "unknown" when not known
    words: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", content_words(self.description))

    @property
    def tolerance_s(self) -> float:
        return 2 / self.plan.fps

    @property
    def cut(self) -> bool:
        """Touches an edge its chunk shares with a neighbour (within one candidate interval), so the
        chunk may have seen only part of the event."""
        p, step = self.plan, 1 / self.plan.fps
        return (p.start_s < p.core_start_s and self.start_s <= p.start_s + step) or (
            p.end_s > p.core_end_s and self.end_s >= p.end_s - step
        )


def same_event(a: Sighting, b: Sighting) -> bool:
    """Whether two reports from overlapping chunks are one event (see the module docstring)."""
    if a.plan.index == b.plan.index or a.key != b.key:
        return False
    shared_start, shared_end = max(a.plan.start_s, b.plan.start_s), min(a.plan.end_s, b.plan.end_s)
    if shared_start >= shared_end:
        return False
    tol = max(a.tolerance_s, b.tolerance_s)
    for s in (a, b):
        if s.start_s > shared_end + tol or s.end_s < shared_start - tol:
            return False
    if max(a.start_s, b.start_s) - min(a.end_s, b.end_s) > tol:
        return False
    if a.who and b.who and "unknown" not in (a.who, b.who) and a.who.casefold() != b.who.casefold():
        return False
    na, nb = _numbers(a.words), _numbers(b.words)
    if na and nb and not (na <= nb or nb <= na):
        return False
    return similar(a.words, b.words)


def group_duplicates(sightings: list[Sighting]) -> list[list[Sighting]]:
    """`sightings` grouped so that each group is one event: a report joins the first earlier group
    with a report it is the same event as, and a group holds at most one report per chunk (so two
    events of one chunk never become one through a neighbour's report). Groups come in order of
    their first report's start."""
    ordered = sorted(sightings, key=lambda s: (s.start_s, s.end_s, s.plan.index))
    reach = max((s.tolerance_s for s in ordered), default=0.0)
    groups: list[list[Sighting]] = []
    open_groups: list[list[Sighting]] = []  # those a later report can still be close enough to
    for s in ordered:
        open_groups = [g for g in open_groups if max(m.end_s for m in g) + reach >= s.start_s]
        for group in open_groups:
            if all(m.plan.index != s.plan.index for m in group) and any(same_event(m, s) for m in group):
                group.append(s)
                break
        else:
            groups.append([s])
            open_groups.append(groups[-1])
    return groups


def best_report(group: list[Sighting]) -> Sighting:
    """The report of one event the timeline keeps: not cut by its chunk's edge, then the longest
    description; ties go to the chunk owning its midpoint, then the earliest chunk."""
    return max(group, key=lambda s: (not s.cut, len(s.words), len(s.description), s.owned, -s.plan.index))


def event_span(group: list[Sighting]) -> tuple[float, float]:
    """The event's times: those of a report that saw it whole, else the union of the partial ones."""
    best = best_report(group)
    if not best.cut:
        return best.start_s, best.end_s
    return min(s.start_s for s in group), max(s.end_s for s in group)
