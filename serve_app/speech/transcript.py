"""A transcript's share of a chunk, its prompt lines, and WebVTT / SRT export."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from serve_app.schemas import Transcript, TranscriptSegment


def segments_in(transcript: Transcript | None, start_s: float, end_s: float) -> list[TranscriptSegment]:
    """Whole segments overlapping [start_s, end_s): a sentence across a chunk boundary goes, uncut, to
    both chunks (the prompt of each sees all of it)."""
    if transcript is None:
        return []
    return [s for s in transcript.segments if s.start_s < end_s and s.end_s > start_s]


def prompt_line(segment: TranscriptSegment) -> str:
    return f"[{segment.start_s:.1f}s-{segment.end_s:.1f}s] {segment.text}"


def prompt_lines(segments: Iterable[TranscriptSegment]) -> str:
    return "\n".join(prompt_line(s) for s in segments)


def _clock(seconds: float, decimal: str) -> str:
    millis = round(max(0.0, seconds) * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue and "-->" starts one; neither may appear inside cue text.
    return " ".join(text.split()).replace("-->", "->")


def to_webvtt(transcript: Transcript) -> str:
    cues = [
        f"{i}\n{_clock(s.start_s, '.')} --> {_clock(max(s.end_s, s.start_s), '.')}\n{_cue_text(s.text)}\n"
        for i, s in enumerate(transcript.segments, 1)
    ]
    return "\n".join(["WEBVTT\n", *cues])


def to_srt(transcript: Transcript) -> str:
    cues = [
        f"{i}\n{_clock(s.start_s, ',')} --> {_clock(max(s.end_s, s.start_s), ',')}\n{_cue_text(s.text)}\n"
        for i, s in enumerate(transcript.segments, 1)
    ]
    return "\n".join(cues)


def fit_lines(
    segments: Iterable[TranscriptSegment], count_tokens: Callable[[str], int], max_tokens: int
) -> tuple[str, int]:
    """The prompt lines of `segments`, in order, as many whole lines as fit `max_tokens`; and their tokens.

    Lines are never cut (a half sentence misleads more than a missing one); the ones that do not fit are
    left out and the prompt says how many.
    """
    kept: list[str] = []
    used = 0
    items = list(segments)
    for segment in items:
        line = prompt_line(segment)
        cost = count_tokens(line + "\n")
        if used + cost > max_tokens:
            break
        kept.append(line)
        used += cost
    if len(kept) < len(items):
        kept.append(f"({len(items) - len(kept)} more line(s) not shown)")
    return "\n".join(kept), used
