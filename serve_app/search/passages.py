"""What of a `VideoAnalysis` is searchable: its passages, each a text with a kind and a time range.

    timeline      each timeline entry, at its time (the events the chunks reported, or their headlines)
    screen_text   per chunk, the text seen on screen: its `visible_text` lines and the labels of its
                  `ui_elements`, at the chunk's time range
    chunk         per chunk, every other string of its answer (scene, activity, context, ...; any string of
                  a custom answer) or its free text (describe, custom without a schema), at its time range;
                  timed items (`events`, `steps`, `highlights`) are left to the timeline, which has them
                  at their own times
    speech        each transcript segment, at its time

Enumerations and flags of the built-in answers (an element's `type` and `position`, a highlight's `kind`)
are not words anyone searches for and would match every video: they are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from serve_app.schemas import ChunkResult, SearchKind, VideoAnalysis

__all__ = ["Passage", "chunk_texts", "passages"]

_SCREEN_LISTS = ("visible_text",)  # lists of strings read off the screen
_LABELLED = ("ui_elements",)  # lists of objects whose `text` is read off the screen
_TIMED = ("events", "steps", "highlights")  # the timeline's (serve_app.analysis.aggregate)
_NOT_WORDS = frozenset({"type", "position", "kind", "speaking", "start_s", "end_s"})
_SEPARATOR = " | "  # between the lines of one passage (snippets show where one ends)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Passage:
    kind: SearchKind
    start_s: float
    end_s: float
    text: str


def _clean(text: str) -> str:
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return _SPACES.sub(" ", printable).strip()


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value, depth first, skipping the keys in `_NOT_WORDS`."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() if key not in _NOT_WORDS for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def chunk_texts(chunk: ChunkResult) -> tuple[list[str], list[str]]:
    """(screen text, other text) of one chunk's answer."""
    if chunk.output is None:
        return [], [chunk.text] if chunk.ok and chunk.text else []
    screen: list[str] = []
    other: list[str] = []
    for key, value in chunk.output.items():
        if key in _SCREEN_LISTS:
            screen += _strings(value)
        elif key in _LABELLED and isinstance(value, list):
            screen += [item["text"] for item in value if isinstance(item, dict) and isinstance(item.get("text"), str)]
        elif key not in _TIMED and key not in _NOT_WORDS:
            other += _strings(value)
    return screen, other


def _joined(texts: list[str]) -> str:
    return _SEPARATOR.join(t for t in map(_clean, texts) if t)


def passages(analysis: VideoAnalysis) -> list[Passage]:
    """The searchable passages of one result (empty ones left out)."""
    found = [Passage("timeline", e.start_s, e.end_s, _clean(e.text)) for e in analysis.timeline]
    for chunk in analysis.chunks:
        screen, other = chunk_texts(chunk)
        found.append(Passage("screen_text", chunk.start_s, chunk.end_s, _joined(screen)))
        found.append(Passage("chunk", chunk.start_s, chunk.end_s, _joined(other)))
    if analysis.transcript is not None:
        found += [Passage("speech", s.start_s, s.end_s, _clean(s.text)) for s in analysis.transcript.segments]
    return [p for p in found if p.text]
