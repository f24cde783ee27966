"""A transcript's share of each chunk, prompt lines, WebVTT / SRT."""

from __future__ import annotations

import io

import pytest
import webvtt

from serve_app.schemas import Transcript, TranscriptSegment
from serve_app.speech import prompt_lines, segments_in, to_srt, to_webvtt
from serve_app.speech.transcript import fit_lines


def _transcript(*spans: tuple[float, float, str]) -> Transcript:
    return Transcript(
        language="en",
        language_probability=1.0,
        model="whisper-base",
        segments=[TranscriptSegment(start_s=a, end_s=b, text=t) for a, b, t in spans],
        audio_s=60.0,
        speech_s=20.0,
        asr_s=1.0,
    )


SAID = _transcript((1.0, 4.0, "One."), (7.5, 9.5, "Across the boundary."), (9.9, 10.0, "Edge."), (12.0, 15.0, "Two."))


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0.0, 8.0, ["One.", "Across the boundary."]),
        (8.0, 16.0, ["Across the boundary.", "Edge.", "Two."]),  # whole, in both chunks it overlaps
        (10.0, 12.0, []),  # touching ends do not overlap
        (20.0, 30.0, []),
    ],
)
def test_each_chunk_gets_whole_segments_that_overlap_it(start: float, end: float, expected: list[str]) -> None:
    assert [s.text for s in segments_in(SAID, start, end)] == expected


def test_no_transcript_means_no_segments() -> None:
    assert segments_in(None, 0, 10) == []


def test_lines_are_fitted_whole_and_the_rest_is_counted() -> None:
    def count(text: str) -> int:
        return len(text.split())

    text, used = fit_lines(SAID.segments, count, max_tokens=6)
    assert text.splitlines() == ["[1.0s-4.0s] One.", "[7.5s-9.5s] Across the boundary.", "(2 more line(s) not shown)"]
    assert used == 6
    everything, _ = fit_lines(SAID.segments, count, max_tokens=1000)
    assert everything == prompt_lines(SAID.segments)


def test_webvtt_parses_with_an_independent_reader() -> None:
    tricky = _transcript((0.0, 1.5, "Line one --> not a cue"), (3661.25, 3662.0, "An hour\n\nlater."))
    captions = webvtt.from_buffer(io.StringIO(to_webvtt(tricky)))
    assert [(c.start, c.end, c.text) for c in captions] == [
        ("00:00:00.000", "00:00:01.500", "Line one -> not a cue"),
        ("01:01:01.250", "01:01:02.000", "An hour later."),
    ]


def test_srt_numbers_cues_with_comma_milliseconds() -> None:
    assert to_srt(_transcript((0.0, 1.5, "Hi."), (2.0, 3.25, "Bye."))) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHi.\n\n2\n00:00:02,000 --> 00:00:03,250\nBye.\n"
    )
