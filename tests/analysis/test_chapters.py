"""Chapters from a timeline and their exports (pure); the WebVTT is read back with webvtt-py."""

from __future__ import annotations

import io

import webvtt

from serve_app.analysis.chapters import MIN_CHAPTER_S, chapters_from, mmss, to_markdown, to_webvtt_chapters
from serve_app.schemas import TimelineEntry


def entry(start: float, end: float, text: str, chunk: int = 0) -> TimelineEntry:
    return TimelineEntry(start_s=start, end_s=end, chunk_index=chunk, text=text)


TIMELINE = [
    entry(65.5, 70, "The settings dialog opens"),
    entry(0.0, 4, "Title slide: Quarterly review"),
    entry(66.0, 68, "A toggle is switched on"),  # within MIN_CHAPTER_S of the dialog: folded into it
    entry(3725.2, 3730, "Questions"),
]


def test_chapters_are_ordered_seek_points_that_tile_the_video() -> None:
    chapters = chapters_from(TIMELINE, duration_s=3800.0)
    assert [(c.start_s, c.title) for c in chapters] == [
        (0.0, "Title slide: Quarterly review"),
        (65.5, "The settings dialog opens"),
        (3725.2, "Questions"),
    ]
    assert [c.end_s for c in chapters] == [65.5, 3725.2, 3800.0]  # each ends where the next starts
    assert 66.0 - 65.5 < MIN_CHAPTER_S


def test_long_texts_become_one_line_titles_cut_at_a_word() -> None:
    long = "word " * 40 + "\n tail"
    (chapter,) = chapters_from([entry(1, 2, long)], duration_s=10)
    assert len(chapter.title) <= 80 and chapter.title.endswith("word…") and "\n" not in chapter.title
    assert chapters_from([], duration_s=10) == []


def test_webvtt_chapters_parse_with_an_independent_parser() -> None:
    chapters = chapters_from([*TIMELINE, entry(90, 91, "arrow --> in text")], duration_s=3800.0)
    text = to_webvtt_chapters(chapters)
    assert text.startswith("WEBVTT\n\n")
    cues = webvtt.from_buffer(io.StringIO(text)).captions
    assert [(c.start, c.end, c.text) for c in cues] == [
        ("00:00:00.000", "00:01:05.500", "Title slide: Quarterly review"),
        ("00:01:05.500", "00:01:30.000", "The settings dialog opens"),
        ("00:01:30.000", "01:02:05.200", "arrow -> in text"),
        ("01:02:05.200", "01:03:20.000", "Questions"),
    ]


def test_markdown_lists_mmss_and_escapes_model_text() -> None:
    chapters = chapters_from([*TIMELINE, entry(90, 91, "Open [docs](http://x) *now*")], duration_s=3800.0)
    assert to_markdown(chapters).splitlines() == [
        "- [00:00] Title slide: Quarterly review",
        "- [01:05] The settings dialog opens",
        r"- [01:30] Open \[docs\](http://x) \*now\*",
        "- [1:02:05] Questions",
    ]
    assert (mmss(59.99), mmss(60), mmss(3599.5), mmss(3600)) == ("00:59", "01:00", "59:59", "1:00:00")
