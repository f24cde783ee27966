"""Chapters of a video from its timeline, and their exports: WebVTT chapters and Markdown.

A chapter is a seek point: a timeline entry's text (shortened to a title) and its start. Entries that start
within `MIN_CHAPTER_S` of the previous chapter fold into it (overlapping chunk answers and back-to-back
events would otherwise give a list of near-identical seek points), and each chapter ends where the next
one starts, so WebVTT chapter cues never overlap, as the spec requires of chapter tracks.
"""

from __future__ import annotations

import re

from serve_app.schemas import Chapter, TimelineEntry

__all__ = ["MIN_CHAPTER_S", "chapters_from", "mmss", "to_markdown", "to_webvtt_chapters"]

#: Seconds a chapter lasts at least: a closer entry is part of the chapter before it.
MIN_CHAPTER_S = 2.0
#: A title is one line; the whole entry stays in the timeline.
MAX_TITLE_CHARS = 80
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _title(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_TITLE_CHARS:
        return text
    cut = text[: MAX_TITLE_CHARS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def chapters_from(timeline: list[TimelineEntry], duration_s: float) -> list[Chapter]:
    """The chapters of a video `duration_s` long, in time order."""
    starts: list[tuple[float, str]] = []
    for entry in sorted(timeline, key=lambda e: e.start_s):
        start = min(max(entry.start_s, 0.0), duration_s)
        title = _title(entry.text)
        if title and (not starts or start - starts[-1][0] >= MIN_CHAPTER_S):
            starts.append((start, title))
    ends = [s for s, _ in starts[1:]] + [duration_s] * bool(starts)
    return [Chapter(title=title, start_s=start, end_s=end) for (start, title), end in zip(starts, ends, strict=True)]


def _clock(seconds: float) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def to_webvtt_chapters(chapters: list[Chapter]) -> str:
    """A WebVTT chapters track (`<track kind="chapters">`): one cue per chapter, the title as its text."""
    cues = [
        f"{i}\n{_clock(c.start_s)} --> {_clock(max(c.end_s, c.start_s))}\n{c.title.replace('-->', '->')}\n"
        for i, c in enumerate(chapters, 1)
    ]
    return "\n".join(["WEBVTT\n", *cues])


def mmss(seconds: float) -> str:
    """`mm:ss` (`h:mm:ss` from an hour on), rounded down: the moment a chapter starts is not after it."""
    whole = int(max(0.0, seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def to_markdown(chapters: list[Chapter]) -> str:
    """A Markdown list, one `[mm:ss] title` item per chapter (titles escaped: model text is not markup)."""
    return "".join(f"- [{mmss(c.start_s)}] {_escape(c.title)}\n" for c in chapters)
