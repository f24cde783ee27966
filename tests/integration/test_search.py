"""Search across processed videos through the real stack: a spoken meeting processed as a job, then found
by what was said and by what was on screen; nothing for a word it never had; bad queries are 422s."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest

from data_jobs.store import ArchiveStore
from serve_app.config import Settings
from serve_app.schemas import SearchResults, VideoAnalysis
from tests.integration.jobs_client import submit, wait_for

if TYPE_CHECKING:
    from conftest import Meeting

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
NOWHERE = "zyzzyvaquux"


@pytest.fixture(scope="module")
def processed(http: httpx.Client, meeting: Meeting) -> tuple[str, VideoAnalysis]:
    """The meeting as a finished job: (job id, its result). 'ui' with two 20 s chunks and no summary: the tiny
    model never ends free text, and one chunk per 20 s keeps it fast."""
    response = submit(http, meeting.path, mode="ui", chunk_s=20, overlap_s=0, aggregate="false", language="en")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    done = wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"), timeout_s=600)
    assert done["status"] == "succeeded", done
    return job_id, VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job_id}/result").json())


def search(http: httpx.Client, q: str, **params: object) -> SearchResults:
    response = http.get("/v1/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return SearchResults.model_validate(response.json())


def test_what_was_said_finds_the_video_at_its_moment(
    http: httpx.Client, meeting: Meeting, processed: tuple[str, VideoAnalysis]
) -> None:
    job_id, analysis = processed
    found = search(http, "quarterly budget")
    mine = [h for h in found.hits if h.job_id == job_id]
    heard = [s.text for s in analysis.transcript.segments] if analysis.transcript else analysis.transcript_error
    assert mine and found.results_indexed >= 1, (found, heard)
    said = next(h for h in mine if h.kind == "speech")
    assert said.video_id == analysis.video_id and said.source == "job"
    # Whisper (base) hears the sentence as "... the quarterly market." on this clip: any word of a query may
    # match, so the misheard word does not hide the video.
    assert "«quarterly»" in said.snippet.lower()
    # The hit's moment is the sentence's (as heard), inside the chunk that had it in its prompt.
    sentence = next(s for s in meeting.said if "quarterly budget" in s.text)
    chunk = next(c for c in analysis.chunks if c.start_s <= sentence.start_s < c.end_s)
    assert chunk.start_s <= said.start_s <= said.end_s <= chunk.end_s
    assert said.start_s < sentence.end_s and said.end_s > sentence.start_s
    assert said.link == f"/v1/jobs/{job_id}/result#t={said.start_s:g},{said.end_s:g}"


def test_what_was_on_screen_finds_the_video(
    http: httpx.Client, settings: Settings, processed: tuple[str, VideoAnalysis]
) -> None:
    job_id, analysis = processed
    # The tiny random model's visible text: a word it wrote (a whole token, a run of letters and digits as
    # FTS5's unicode61 tokenizer cuts them; ASCII, so no accent folding is involved) finds the job's result.
    # On this clip it writes ":" (no word at all), so the screen-text path is also shown with an archive
    # output of the same video whose visible text names the slides (what a real model would read there).
    lines = [line for c in analysis.chunks for line in (c.output or {}).get("visible_text", [])]
    tokens = [t for line in lines for t in re.findall(r"[^\W_]+", line) if t.isascii() and any(map(str.isalpha, t))]
    if tokens:
        word = max(tokens, key=len)
        hits = [h for h in search(http, word, limit=100).hits if h.job_id == job_id]
        assert any(h.kind == "screen_text" and h.video_id == analysis.video_id for h in hits), (word, hits)

    first = analysis.chunks[0]
    read = first.model_copy(update={"output": {**(first.output or {}), "visible_text": ["Budget Zanzibar 2025"]}})
    archived = analysis.model_copy(update={"chunks": [read, *analysis.chunks[1:]]})
    out = settings.search.archive_uris[0]
    ArchiveStore(out).write_success(f"{analysis.video_id}-search01", "/archive/in/meeting.mp4", archived)
    [hit] = search(http, "zanzibar").hits
    assert (hit.video_id, hit.kind, hit.source, hit.result_key) == (
        analysis.video_id, "screen_text", "archive", f"{analysis.video_id}-search01"
    )  # fmt: skip
    assert (hit.start_s, hit.end_s) == (first.start_s, first.end_s) and "«Zanzibar»" in hit.snippet
    assert hit.link.endswith(f"/analyses/{hit.result_key}.json#t={first.start_s:g},{first.end_s:g}")


def test_a_word_it_never_had_finds_nothing(http: httpx.Client, processed: tuple[str, VideoAnalysis]) -> None:
    _, analysis = processed
    assert NOWHERE not in analysis.model_dump_json().lower()
    found = search(http, NOWHERE)
    assert found.hits == [] and found.results_indexed >= 1


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"q": ""}, "invalid-query"),
        ({"q": "() - *"}, "invalid-query"),
        ({"q": "budget " * 60}, "invalid-query"),
        ({"q": "budget", "limit": 0}, "invalid-options"),
        ({"q": "budget", "limit": 1000}, "invalid-options"),
    ],
)
def test_bad_queries_are_422_problems(http: httpx.Client, params: dict, problem: str) -> None:
    response = http.get("/v1/search", params=params)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM, response.text
    assert response.json()["type"].endswith("/" + problem)


def test_operators_in_the_query_are_searched_as_text(http: httpx.Client) -> None:
    for q in ['budget" OR "x', "NEAR(budget, 2)", "text:budget", "budget NOT", "'; DROP TABLE results; --"]:
        assert http.get("/v1/search", params={"q": q}).status_code == 200, q


def test_search_needs_the_api_key(server: str) -> None:
    response = httpx.get(f"{server}/v1/search", params={"q": "budget"})
    assert response.status_code == 401 and response.headers["content-type"] == PROBLEM
