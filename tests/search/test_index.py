"""The search index over stored results: real SQLite FTS5 files over a real job store and archive folder."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from data_jobs.store import ArchiveStore
from serve_app.errors import InvalidQuery
from serve_app.schemas import (
    AnalysisStats,
    AnalyzeOptions,
    ChunkResult,
    TimelineEntry,
    Transcript,
    TranscriptSegment,
    VideoAnalysis,
    VideoInfo,
)
from serve_app.search import archive_index, passages
from serve_app.search.index import INDEX_KEY, SCHEMA_VERSION, JobResults, SearchIndex, index_path
from serve_app.store.files import FileStore
from serve_app.store.jobs import JobStore


def ui_answer(visible: list[str], context: str = "A settings screen.") -> dict:
    return {
        "screen_title": "Settings",
        "layout": "sidebar with a form",
        "ui_elements": [{"type": "button", "text": "Save changes", "position": "bottom-right"}],
        "visible_text": visible,
        "context": context,
        "events": [{"start_s": 1.0, "end_s": 2.0, "description": "a dialog opens"}],
    }


def analysis(
    sha: str,
    *,
    visible: list[list[str]] | None = None,
    said: list[tuple[float, float, str]] = (),
    timeline: list[tuple[float, float, str]] = (),
) -> VideoAnalysis:
    """A 40 s video in two 20 s 'ui' chunks; `visible[i]` is chunk i's visible text."""
    visible = visible or [[], []]
    chunks = [
        ChunkResult(
            index=i, start_s=20.0 * i, end_s=20.0 * (i + 1), mode="ui", frame_times_s=[20.0 * i + 1],
            output=ui_answer(visible[i]),
        )
        for i in range(2)
    ]  # fmt: skip
    info = VideoInfo(
        container="mp4", codec="h264", duration_s=40.0, fps=5.0, width=640, height=360, has_audio=True,
        stream_count=2, size_bytes=1000, sha256=sha * 64,
    )  # fmt: skip
    transcript = Transcript(
        language="en", language_probability=1.0, model="whisper-base", audio_s=40.0, speech_s=30.0, asr_s=1.0,
        segments=[TranscriptSegment(start_s=a, end_s=b, text=t) for a, b, t in said],
    )  # fmt: skip
    return VideoAnalysis(
        video_id=info.video_id,
        video=info,
        request=AnalyzeOptions(mode="ui", aggregate=False),
        model="tiny",
        chunks=chunks,
        timeline=[TimelineEntry(start_s=a, end_s=b, chunk_index=int(a // 20), text=t) for a, b, t in timeline],
        summary=None,
        transcript=transcript,
        stats=AnalysisStats.from_results(chunks),
    )


def finished_job(store: JobStore, result: VideoAnalysis) -> str:
    job_id = f"job{len(store.list_ids()):04d}"
    store.save_result(job_id, result)
    return job_id


@pytest.fixture()
def store(tmp_path: Path) -> JobStore:
    return JobStore(str(tmp_path / "store"))


def job_index(store: JobStore) -> SearchIndex:
    return SearchIndex(index_path(store.files, Path("/nonexistent")), [JobResults(store)])


def test_the_index_lives_next_to_a_local_store_and_hits_say_where_and_when(store: JobStore) -> None:
    meeting = analysis(
        "a",
        said=[(1.0, 5.5, "Good morning everyone, let us review the quarterly budget."), (7.0, 9.0, "Two engineers.")],
    )
    job_id = finished_job(store, meeting)
    index = job_index(store)
    assert index.path == Path(store.files.path(INDEX_KEY))
    found = index.search("quarterly budget")
    assert found.results_indexed == 1 and found.match == '"quarterly" OR "budget"'
    [hit] = found.hits
    assert (hit.video_id, hit.kind, hit.start_s, hit.end_s) == (meeting.video_id, "speech", 1.0, 5.5)
    assert (hit.source, hit.job_id, hit.result_key) == ("job", job_id, None)
    assert hit.link == f"/v1/jobs/{job_id}/result#t=1,5.5"
    assert "«quarterly» «budget»" in hit.snippet and hit.score > 0
    assert index.path.is_file()


def test_a_term_only_in_the_transcript_or_only_on_screen_finds_its_video(store: JobStore) -> None:
    spoken = analysis("a", said=[(3.0, 6.0, "We decided to launch the mobile app in March.")])
    shown = analysis("b", visible=[[], ["Invoice overdue", "Billing dashboard"]])
    finished_job(store, spoken)
    finished_job(store, shown)
    index = job_index(store)
    [said] = index.search("launch").hits
    assert (said.video_id, said.kind) == (spoken.video_id, "speech")
    [seen] = index.search("billing dashboard").hits
    assert (seen.video_id, seen.kind, seen.start_s, seen.end_s) == (shown.video_id, "screen_text", 20.0, 40.0)
    assert "«Billing» «dashboard»" in seen.snippet
    # UI labels are screen text too; the rest of an answer is the chunk's; enumerations are not indexed.
    assert {h.kind for h in index.search("save changes").hits} == {"screen_text"}
    assert {h.kind for h in index.search("sidebar").hits} == {"chunk"}
    assert index.search("button").hits == [] and index.search("right").hits == []


def test_a_term_that_appears_nowhere_finds_nothing(store: JobStore) -> None:
    finished_job(store, analysis("a", said=[(1.0, 2.0, "quarterly budget")], visible=[["Budget"], []]))
    found = job_index(store).search("zeppelin")
    assert found.hits == [] and found.results_indexed == 1


def test_hits_are_ranked_by_bm25(store: JobStore) -> None:
    often = analysis("a", said=[(1.0, 4.0, "Budget budget budget: the budget.")])
    once = analysis("b", said=[(2.0, 9.0, "There is a budget line in the long report on the new office and more.")])
    twice = analysis("c", said=[(5.0, 8.0, "The budget and the budget report.")])
    for result in (once, often, twice):
        finished_job(store, result)
    index = job_index(store)
    hits = index.search("budget").hits
    assert [h.video_id for h in hits] == [often.video_id, twice.video_id, once.video_id]
    assert hits[0].score > hits[1].score > hits[2].score
    assert [h.video_id for h in index.search("budget", limit=2).hits] == [often.video_id, twice.video_id]
    # Any word may match (a misheard word does not hide the others); more of the words rank first.
    heard = analysis("d", said=[(1.0, 4.0, "Let us review the quarterly market.")])
    both = analysis("e", said=[(1.0, 4.0, "Let us review the quarterly budget.")])
    finished_job(store, heard)
    finished_job(store, both)
    ranked = [h.video_id for h in index.search("quarterly budget").hits]
    assert ranked[0] == both.video_id and set(ranked) == {r.video_id for r in (often, once, twice, heard, both)}
    assert [h.video_id for h in index.search("quarterly zeppelin").hits] == [heard.video_id, both.video_id]
    # Stems, case and prefixes; a phrase needs its words next to each other, in order.
    assert len(index.search("BUDGETS").hits) == 4
    assert len(index.search("budg*").hits) == 4
    assert [h.video_id for h in index.search('"budget report"').hits] == [twice.video_id]
    assert index.search('"report budget"').hits == []


def test_the_index_follows_the_results_new_rewritten_and_deleted(store: JobStore) -> None:
    index = job_index(store)
    assert index.search("dashboard").hits == [] and index.refresh() == 0
    first = finished_job(store, analysis("a", visible=[["Sales dashboard"], []]))
    assert [h.job_id for h in index.search("dashboard").hits] == [first]  # a new result appeared: indexed
    assert index.refresh() == 0  # nothing changed: nothing done
    mtime = os.stat(index.path).st_mtime_ns
    index.search("dashboard")
    assert os.stat(index.path).st_mtime_ns == mtime, "a search with nothing new writes nothing"

    second = finished_job(store, analysis("b", said=[(1.0, 2.0, "Open the dashboard.")]))
    assert {h.job_id for h in index.search("dashboard").hits} == {first, second}
    store.save_result(first, analysis("a", visible=[["Marketing page that is longer"], []]))  # rewritten
    assert {h.job_id for h in index.search("dashboard").hits} == {second}
    assert [h.job_id for h in index.search("marketing").hits] == [first]
    store.delete(second)  # e.g. retention
    found = index.search("dashboard")
    assert found.hits == [] and found.results_indexed == 1


def test_a_damaged_or_outdated_index_file_is_rebuilt_from_the_results(store: JobStore) -> None:
    finished_job(store, analysis("a", said=[(1.0, 2.0, "quarterly budget")]))
    index = job_index(store)
    assert len(index.search("budget").hits) == 1
    index.path.write_bytes(b"this is not a database" * 100)
    assert len(job_index(store).search("budget").hits) == 1
    db = sqlite3.connect(index.path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    assert len(job_index(store).search("budget").hits) == 1
    index.path.unlink()
    assert len(job_index(store).search("budget").hits) == 1


@pytest.mark.parametrize(
    "query", ['budget" OR "x', "NEAR(budget report)", "text:budget", "budget NOT", "(budget", "'; DROP TABLE results"]
)
def test_hostile_queries_search_for_their_words(store: JobStore, query: str) -> None:
    finished_job(store, analysis("a", said=[(1.0, 2.0, "quarterly budget report x near not text drop table")]))
    found = job_index(store).search(query)
    assert found.results_indexed == 1  # the tables are intact; the words were searched as words


@pytest.mark.parametrize("query", ["", "  ", "()", "x" * 300])
def test_queries_with_nothing_to_search_are_refused_before_any_work(tmp_path: Path, query: str) -> None:
    index = SearchIndex(tmp_path / "never" / "index.sqlite", [])
    with pytest.raises(InvalidQuery):
        index.search(query)
    assert not index.path.exists()


def test_concurrent_searches_index_each_result_once(store: JobStore) -> None:
    for i in range(40):
        finished_job(store, analysis(f"{i:x}"[-1], said=[(1.0, 2.0, f"budget number {i}")]))
    index = job_index(store)
    other = job_index(store)  # another process's view of the same file
    found: list[int] = []
    threads = [
        threading.Thread(target=lambda ix=ix: found.append(len(ix.search("budget", limit=100).hits)))
        for ix in (index, other, index, other)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == [40] * 4


def test_an_archive_output_is_indexed_in_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    archive = ArchiveStore(str(out))
    result = analysis("d", said=[(2.0, 4.0, "Please send the final report to finance by Friday.")])
    archive.write_success("dddd-1234", "/in/meeting.mp4", result)
    index = archive_index(str(out), tmp_path / "cache")
    assert index.path == out / "search" / "index.sqlite"
    [hit] = index.search("finance").hits
    assert (hit.source, hit.result_key, hit.job_id, hit.video_id) == ("archive", "dddd-1234", None, result.video_id)
    assert hit.link == f"{FileStore(str(out)).uri_of('analyses/dddd-1234.json')}#t=2,4"
    archive.write_failure("dddd-1234", "/in/meeting.mp4", None, "ui", "redo failed")  # deletes the analysis
    assert index.search("finance").hits == []


def test_an_object_store_index_is_a_local_cache_file(tmp_path: Path) -> None:
    class Remote:  # what index_path reads of a FileStore
        local = False
        uri = "s3://bucket/reelserve"

    path = index_path(Remote(), tmp_path / "cache")  # type: ignore[arg-type]
    assert path.parent == tmp_path / "cache" and path.suffix == ".sqlite"
    assert index_path(Remote(), tmp_path / "cache") == path  # type: ignore[arg-type]


def test_passages_leave_timed_items_to_the_timeline() -> None:
    result = analysis("a", visible=[["Q3 Budget"], []], timeline=[(1.0, 2.0, "a dialog opens")])
    kinds = {(p.kind, p.text) for p in passages(result)}
    assert ("timeline", "a dialog opens") in kinds
    assert ("screen_text", "Save changes | Q3 Budget") in kinds  # UI labels and visible text, as answered
    assert ("chunk", "Settings | sidebar with a form | A settings screen.") in kinds
    assert not any("dialog" in text for kind, text in kinds if kind != "timeline")
