"""Timeline merging across overlapping chunks (pure)."""

from __future__ import annotations

from serve_app.analysis import build_timeline, timeline_text
from serve_app.schemas import ChunkResult, TimelineEntry
from tests.conftest import chunk_plan

plan = chunk_plan

PLANS = [plan(0, 0, 21, 0, 20.5), plan(1, 20, 41, 20.5, 40.5), plan(2, 40, 50, 40.5, 50)]


def result(index: int, output: dict | None = None, text: str | None = None, error: str | None = None) -> ChunkResult:
    p = PLANS[index]
    return ChunkResult(
        index=index,
        start_s=p.start_s,
        end_s=p.end_s,
        mode="screen_share",
        frame_times_s=[],
        output=output,
        text=text,
        error=error,
    )


def events(*items: tuple[float, float, str]) -> dict:
    return {"activity": "presenting", "events": [{"start_s": a, "end_s": b, "description": d} for a, b, d in items]}


def test_an_event_in_an_overlap_is_kept_once_by_the_chunk_owning_its_midpoint() -> None:
    boundary = (20.2, 20.6, "slide 2 appears")  # midpoint 20.4: chunk 0's core
    timeline = build_timeline(PLANS, [result(0, events(boundary)), result(1, events(boundary, (30, 31, "demo")))])
    assert [(e.chunk_index, e.text) for e in timeline] == [(0, "slide 2 appears"), (1, "demo")]


def test_entries_are_ordered_and_repeats_across_chunks_merge() -> None:
    timeline = build_timeline(
        PLANS,
        [
            result(2, events((45, 47, "Q&A"))),
            result(0, events((19, 20.4, "Q&A"))),
            result(1, events((20.6, 22, "Q&A"))),
        ],
    )
    assert [(e.start_s, e.end_s, e.text) for e in timeline][0] == (19, 22, "Q&A")
    assert [e.start_s for e in timeline] == sorted(e.start_s for e in timeline)


def test_invented_times_are_clamped_into_the_chunk() -> None:
    timeline = build_timeline(PLANS, [result(1, events((-5, 9999, "whole chunk")))])
    assert (timeline[0].start_s, timeline[0].end_s) == (20, 41)


def test_chunks_without_events_contribute_their_headline_over_their_core() -> None:
    timeline = build_timeline(
        PLANS, [result(0, text="a person walks\nby"), result(1, {"activity": "", "scene": "desk"})]
    )
    assert [(e.start_s, e.end_s, e.text) for e in timeline] == [(0, 20.5, "a person walks by"), (20.5, 40.5, "desk")]


def test_failed_chunks_are_left_out() -> None:
    assert build_timeline(PLANS, [result(0, error="decode failed")]) == []


def test_timeline_text_thins_evenly_to_fit() -> None:
    entries = [TimelineEntry(start_s=i, end_s=i + 1, chunk_index=0, text=f"event {i}") for i in range(100)]
    full = timeline_text(entries, 10_000)
    assert full.count("\n") == 99
    short = timeline_text(entries, 500)
    assert len(short) <= 500 and "[0.0-1.0s] event 0" in short and "event 99" not in full[:10]
