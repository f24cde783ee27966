"""One event reported by two overlapping chunks appears once in the timeline; different events never merge."""

from __future__ import annotations

from typing import Any

from serve_app.analysis import build_timeline
from serve_app.schemas import ChunkPlan, ChunkResult
from tests.conftest import chunk_plan

# 20 s chunks with the default 1 s overlap: chunks 0 and 1 both see 20..21 s (cores meet at 20.5 s).
PLANS = [chunk_plan(0, 0, 21, 0, 20.5), chunk_plan(1, 20, 41, 20.5, 40.5), chunk_plan(2, 40, 50, 40.5, 50)]
# The same cores without overlap: no moment is seen by two chunks.
APART = [chunk_plan(0, 0, 20), chunk_plan(1, 20, 40)]


def result(plan: ChunkPlan, output: dict[str, Any], mode: str = "screen_share") -> ChunkResult:
    return ChunkResult(
        index=plan.index, start_s=plan.start_s, end_s=plan.end_s, mode=mode, frame_times_s=[], output=output
    )


def timed(*items: tuple[float, float, str], key: str = "events", **extra: Any) -> dict[str, Any]:
    return {"activity": HEADLINE, key: [{"start_s": a, "end_s": b, "description": d, **extra} for a, b, d in items]}


HEADLINE = "presenting"  # what a chunk none of whose reports the timeline kept contributes over its core


def rows(timeline: list) -> list[tuple[float, float, int, str]]:
    """The timeline's events, without the headlines of chunks whose reports went to a neighbour."""
    return [(e.start_s, e.end_s, e.chunk_index, e.text) for e in timeline if e.text != HEADLINE]


def test_a_boundary_event_reported_by_both_chunks_is_kept_once_with_the_fuller_words_and_the_whole_span() -> None:
    # Each report's midpoint is in its own chunk's core (20.3 s and 21.25 s), so ownership alone keeps both.
    timeline = build_timeline(
        PLANS,
        [
            result(PLANS[0], timed((19.6, 21.0, "Slide 2 appears"))),
            result(PLANS[1], timed((20.0, 22.5, "Slide 2 appears with a revenue chart"), (30, 31, "demo starts"))),
        ],
    )
    # Both reports touch their chunk's shared edge (each saw part of it): the union of their times. Chunk 0,
    # whose one report went to chunk 1's entry, still says what it shows over its core.
    assert [(e.start_s, e.end_s, e.chunk_index, e.text) for e in timeline] == [
        (0, 20.5, 0, HEADLINE),
        (19.6, 22.5, 1, "Slide 2 appears with a revenue chart"),
        (30, 31, 1, "demo starts"),
    ]


def test_reworded_reports_merge() -> None:
    timeline = build_timeline(
        PLANS,
        [
            result(PLANS[0], timed((20.1, 20.4, "User clicks the Save button"))),
            result(PLANS[1], timed((20.6, 21.0, "The user pressed the save button"))),
        ],
    )
    assert rows(timeline) == [(20.1, 21.0, 1, "The user pressed the save button")]


def test_the_report_not_cut_by_its_chunk_edge_wins_over_a_longer_cut_one() -> None:
    whole = (18.0, 19.5, "The settings dialog opens")  # chunk 0 saw it open and settle, well before its end
    partial = (20.4, 21.0, "Settings dialog opened, showing the network and proxy tabs")  # from chunk 1's first frame
    timeline = build_timeline(PLANS, [result(PLANS[0], timed(whole)), result(PLANS[1], timed(partial))])
    assert rows(timeline) == [(18.0, 19.5, 0, "The settings dialog opens")]


def test_identical_reports_go_to_the_chunk_owning_their_midpoint() -> None:
    same = (20.6, 20.9, "dialog closes")  # midpoint 20.75: chunk 1's core
    timeline = build_timeline(PLANS, [result(PLANS[0], timed(same)), result(PLANS[1], timed(same))])
    assert rows(timeline) == [(20.6, 20.9, 1, "dialog closes")]


def test_different_events_in_the_overlap_are_all_kept() -> None:
    timeline = build_timeline(
        PLANS,
        [
            result(PLANS[0], timed((20.1, 20.4, "Slide 2 appears"), (20.2, 20.4, "Terminal window opens"))),
            result(PLANS[1], timed((20.6, 21.0, "Slide 3 appears"), (20.6, 20.9, "Browser window opens"))),
        ],
    )
    assert sorted(e.text for e in timeline) == [
        "Browser window opens",
        "Slide 2 appears",
        "Slide 3 appears",
        "Terminal window opens",
    ]


def test_the_same_words_far_apart_in_time_are_two_events() -> None:
    timeline = build_timeline(
        PLANS,
        [
            result(PLANS[0], timed((5, 6, "Slide 2 appears"))),
            result(PLANS[1], timed((24, 25, "Slide 2 appears"), (38, 39, "Slide 2 appears again"))),
        ],
    )
    assert [(e.start_s, e.text) for e in timeline] == [
        (5, "Slide 2 appears"),
        (24, "Slide 2 appears"),
        (38, "Slide 2 appears again"),
    ]


def test_chunks_that_do_not_overlap_never_merge() -> None:
    timeline = build_timeline(
        APART,
        [
            result(APART[0], timed((18.5, 19.9, "Slide 2 appears"))),
            result(APART[1], timed((20.2, 21.5, "Slide 2 appears with a chart"))),
        ],
    )
    assert [e.chunk_index for e in timeline] == [0, 1]


def test_two_similar_reports_of_one_chunk_stay_two() -> None:
    timeline = build_timeline(
        PLANS, [result(PLANS[1], timed((25, 26, "User clicks Save"), (25.5, 26.5, "User clicks Save on the dialog")))]
    )
    assert len(timeline) == 2


def test_app_demo_steps_and_ui_events_merge_across_the_overlap() -> None:
    for mode, key in (("app_demo", "steps"), ("ui", "events")):
        timeline = build_timeline(
            PLANS,
            [
                result(PLANS[0], timed((20.1, 20.4, "Types the email address"), key=key), mode),
                result(PLANS[1], timed((20.5, 21.3, "Types the email address into the login form"), key=key), mode),
            ],
        )
        assert rows(timeline) == [(20.1, 21.3, 1, "Types the email address into the login form")], mode


def highlight(start: float, end: float, text: str, kind: str, who: str) -> dict[str, Any]:
    return timed((start, end, text), key="highlights", kind=kind, who=who)


def test_meeting_highlights_merge_keeping_the_chosen_reports_kind_and_speaker() -> None:
    # Both chunks' prompts carry the transcript line spanning the boundary, so both report it.
    timeline = build_timeline(
        PLANS,
        [
            result(PLANS[0], highlight(20.1, 20.4, "We ship on Friday", "statement", "unknown"), "meeting"),
            result(PLANS[1], highlight(20.3, 21.5, "We will ship on Friday", "decision", "Alice"), "meeting"),
        ],
    )
    assert rows(timeline) == [(20.1, 21.5, 1, "Decision (Alice): We will ship on Friday")]


def test_the_same_words_from_two_known_speakers_stay_two_highlights() -> None:
    timeline = build_timeline(
        PLANS,
        [
            result(PLANS[0], highlight(20.1, 20.4, "We ship on Friday", "statement", "Bob"), "meeting"),
            result(PLANS[1], highlight(20.6, 21.0, "We ship on Friday", "statement", "Alice"), "meeting"),
        ],
    )
    assert [e.text for e in timeline] == ["Said (Bob): We ship on Friday", "Said (Alice): We ship on Friday"]


def test_a_visual_event_and_a_spoken_highlight_with_the_same_words_stay_apart() -> None:
    timeline = build_timeline(
        PLANS,
        [
            result(PLANS[0], timed((20.1, 20.4, "Quarterly results slide")), "meeting"),
            result(PLANS[1], highlight(20.6, 21.0, "Quarterly results slide", "statement", "unknown"), "meeting"),
        ],
    )
    assert [e.text for e in timeline] == ["Quarterly results slide", "Said: Quarterly results slide"]
