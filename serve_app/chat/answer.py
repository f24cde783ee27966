"""Answering a question from a video's analysis: the notes, the prompt, the answer's shape, its citations.

The vision model has already seen every chunk (the analysis); the question is one text-only call over the
per-chunk findings — timeline, screen text, answers, transcript — each note labelled with its chunk and
time range. The answer is generated in a fixed JSON shape (structured outputs), citations first:

    {"citations": [{"chunk": 3}, ...], "answer": <text, or the caller's JSON schema>}

Citations come first so that (a) the model names its evidence before it writes, (b) they are known when
the answer starts streaming, and (c) everything after `"answer":` is the answer itself, streamed as it
comes (`AnswerStream`). `chunk` is an enum of the chunks that have notes, so a cited chunk always exists.
`[mm:ss]` marks the model writes in a text answer are kept only when they fall inside the video and inside
a chunk that was used (`MarkFilter`); each cited chunk without a mark of its own gets one at the end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serve_app.analysis.aggregate import thin_lines
from serve_app.chat.wire import Citation
from serve_app.schemas import VideoAnalysis
from serve_app.search.passages import chunk_texts

__all__ = [
    "AnswerStream",
    "ChunkNote",
    "MarkFilter",
    "answer_schema",
    "clock",
    "ChatPrompt",
    "citations_of",
    "notes_of",
]

_ANSWER_KEY = '"answer":'
# [mm:ss], [h:mm:ss], optionally a range [mm:ss-mm:ss] (hyphen or en dash).
_MARK = re.compile(r"\[(\d{1,2}:)?(\d{1,2}):(\d{2})(?:\s*[-–]\s*(\d{1,2}:)?(\d{1,2}):(\d{2}))?\]")
_MARK_MAX = 24  # longest mark text: held back while it may still be one


def clock(seconds: float) -> str:
    """`mm:ss` (or `h:mm:ss` from one hour), as the answers' marks are written."""
    s = max(0, int(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


@dataclass(frozen=True)
class ChunkNote:
    """What one chunk of the analysis found, as the answer call reads it."""

    chunk: int
    start_s: float
    end_s: float
    lines: tuple[str, ...]

    def text(self, max_chars: int) -> str:
        head = f"[chunk {self.chunk} | {clock(self.start_s)}-{clock(self.end_s)}]"
        return head + "\n" + thin_lines(list(self.lines), max_chars)


def notes_of(analysis: VideoAnalysis) -> list[ChunkNote]:
    """The notes of every chunk that has something to say (failed chunks are left out: not used)."""
    timeline: dict[int, list[str]] = {}
    for entry in analysis.timeline:
        timeline.setdefault(entry.chunk_index, []).append(f"[{clock(entry.start_s)}] {entry.text}")
    said: dict[int, list[str]] = {}
    if analysis.transcript is not None:
        for segment in analysis.transcript.segments:
            owner = next((c for c in analysis.chunks if c.start_s <= segment.start_s < c.end_s), None)
            if owner is not None:
                said.setdefault(owner.index, []).append(f"[{clock(segment.start_s)}] said: {segment.text.strip()}")
    notes = []
    for chunk in sorted(analysis.chunks, key=lambda c: c.index):
        if not chunk.ok:
            continue
        screen, other = chunk_texts(chunk)
        lines = [
            *timeline.get(chunk.index, []),
            *(f"on screen: {t}" for t in screen if t.strip()),
            *(t.strip() for t in other if t.strip()),
            *said.get(chunk.index, []),
        ]
        if lines:
            notes.append(ChunkNote(chunk.index, chunk.start_s, chunk.end_s, tuple(lines)))
    return notes


_SYSTEM = (
    "You answer questions about one video from notes taken chunk by chunk while watching it. Each note "
    "starts with its chunk number and time range; times are [mm:ss] from the start of the video. Answer "
    "from the notes only; when they do not say, say that the video does not show it. List the chunks your "
    "answer rests on in `citations`, and write the time of each moment you mention as [mm:ss]."
)


@dataclass(frozen=True)
class ChatPrompt:
    """The answer call's messages: our instructions and the notes (when the question is about a video),
    then the caller's conversation as (role, text) — its video parts are what the notes stand for. The
    engine renders it with `messages(max_note_chars)`, thinning the notes until the prompt fits."""

    conversation: tuple[tuple[str, str], ...]
    notes: tuple[ChunkNote, ...] | None = None
    header: str = ""

    @classmethod
    def about(cls, conversation: Sequence[tuple[str, str]], analysis: VideoAnalysis) -> ChatPrompt:
        header = f"Notes on a video of {clock(analysis.video.duration_s)}"
        if analysis.summary is not None:
            header += f" ({analysis.summary.title}: {analysis.summary.summary})"
        return cls(tuple(conversation), tuple(notes_of(analysis)), header)

    def messages(self, max_note_chars: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        if self.notes is not None:
            per_note = max(80, max_note_chars // max(1, len(self.notes)))
            body = "\n\n".join(n.text(per_note) for n in self.notes) or "(the analysis found nothing to note)"
            out.append({"role": "system", "content": f"{_SYSTEM}\n\n{self.header}:\n\n{body}"})
        out += [
            {"role": "system" if role == "developer" else role, "content": text} for role, text in self.conversation
        ]
        return out


def answer_schema(
    chunks: Sequence[int], answer: dict[str, Any] | None, max_citations: int, max_answer_chars: int
) -> dict[str, Any]:
    """The answer's JSON shape: citations (at least one: every answer points at where it is from) of the
    chunks with notes, then the answer — text, or the caller's schema (`answer`)."""
    return {
        "type": "object",
        "properties": {
            "citations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"chunk": {"enum": sorted(set(chunks))}},
                    "required": ["chunk"],
                    "additionalProperties": False,
                },
                "minItems": 1,
                "maxItems": max_citations,
            },
            "answer": answer if answer is not None else {"type": "string", "maxLength": max_answer_chars},
        },
        "required": ["citations", "answer"],
        "additionalProperties": False,
    }


def _string_prefix(raw: str) -> tuple[str, bool]:
    """The decoded part of a JSON string body (after its opening quote) that is complete so far, and
    whether the string has ended."""
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == '"':
            return json.loads('"' + raw[:i] + '"'), True
        if ch == "\\":
            step = 6 if raw[i + 1 : i + 2] == "u" else 2
            if i + step > len(raw):
                break  # an escape still arriving
            i += step
            continue
        i += 1
    return json.loads('"' + raw[:i] + '"'), False


@dataclass
class AnswerStream:
    """Follows the generated JSON as it grows: the citations once they are complete, and the answer's text
    so far — a text answer decoded from its JSON string, a JSON answer as its raw JSON (the final `}` of
    the wrapper held back)."""

    text_answer: bool
    raw: str = ""
    chunks: list[int] | None = None
    answer: str = ""
    ended: bool = False
    _start: int = field(default=-1, repr=False)

    def feed(self, raw: str) -> str:
        """Take the whole generation so far; returns the answer text that is new since the last call."""
        self.raw = raw
        if self._start < 0:
            at = raw.find(_ANSWER_KEY)
            if at < 0:
                return ""
            self._start = at + len(_ANSWER_KEY)
            try:
                cited = json.loads(raw[: at - 1] + "}")["citations"]
                self.chunks = [int(c["chunk"]) for c in cited]
            except (ValueError, KeyError, TypeError):
                self.chunks = []
        body = raw[self._start :]
        if self.text_answer:
            if not body.startswith('"'):
                return ""
            text, self.ended = _string_prefix(body[1:])
        else:
            text = body.removesuffix("}") if body.endswith("}") else body
        new = text[len(self.answer) :]
        self.answer = text
        return new


def _seconds(hours: str | None, minutes: str, secs: str) -> float:
    return int(hours[:-1] if hours else 0) * 3600 + int(minutes) * 60 + int(secs)


class MarkFilter:
    """Passes a text answer through as it streams, keeping a `[mm:ss]` mark only when its time lies inside
    the video and inside a chunk with notes; those become citations. Text after a `[` is held back while
    it may still become a mark."""

    def __init__(self, notes: Sequence[ChunkNote], duration_s: float) -> None:
        self.notes = list(notes)
        self.duration_s = duration_s
        self.pending = ""
        self.citations: list[Citation] = []

    def _chunk_at(self, t: float) -> ChunkNote | None:
        if not 0 <= t <= self.duration_s:
            return None
        return next((n for n in self.notes if n.start_s <= t <= n.end_s), None)

    def _mark(self, match: re.Match[str]) -> str:
        start = _seconds(match.group(1), match.group(2), match.group(3))
        end = _seconds(match.group(4), match.group(5), match.group(6)) if match.group(5) else start
        note = self._chunk_at(start)
        if note is None or end < start or self._chunk_at(end) is None:
            return ""
        self.citations.append(Citation(start_s=start, end_s=end, chunk=note.chunk))
        return match.group(0)

    def feed(self, text: str, final: bool = False) -> str:
        """The text that can be released now (everything when `final`)."""
        self.pending += text
        out = []
        while self.pending:
            at = self.pending.find("[")
            if at < 0:
                out.append(self.pending)
                self.pending = ""
                break
            out.append(self.pending[:at])
            self.pending = self.pending[at:]
            close = self.pending.find("]")
            if close < 0:
                if not final and len(self.pending) < _MARK_MAX:
                    break  # may still become a mark
                out.append(self.pending[0])
                self.pending = self.pending[1:]
                continue
            candidate = self.pending[: close + 1]
            match = _MARK.fullmatch(candidate)
            out.append(self._mark(match) if match else candidate)
            self.pending = self.pending[close + 1 :]
        return "".join(out)

    def closing_marks(self, cited: Sequence[int]) -> str:
        """Marks for the cited chunks that no mark of the text points into (their start time)."""
        marked = {c.chunk for c in self.citations}
        by_chunk = {n.chunk: n for n in self.notes}
        extra = [by_chunk[c] for c in dict.fromkeys(cited) if c in by_chunk and c not in marked]
        return "".join(f" [{clock(n.start_s)}]" for n in extra)


def citations_of(cited: Sequence[int], notes: Sequence[ChunkNote], marks: Sequence[Citation]) -> list[Citation]:
    """The answer's citations: each cited chunk's time range, then the marks, without repeats."""
    by_chunk = {n.chunk: n for n in notes}
    found = [
        Citation(start_s=by_chunk[c].start_s, end_s=by_chunk[c].end_s, chunk=c)
        for c in dict.fromkeys(cited)
        if c in by_chunk
    ]
    return list(dict.fromkeys([*found, *marks]))
