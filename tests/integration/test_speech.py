"""Speech through the real stack: the ASR deployment (real Whisper), fused into chunk prompts, exported."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import httpx
import pytest
import webvtt

from serve_app.config import Settings, job_store_uri
from serve_app.devtools.meeting import word_error_rate
from serve_app.schemas import Job, VideoAnalysis
from serve_app.speech import segments_in
from serve_app.store.jobs import JobStore
from tests.integration.jobs_client import submit, wait_for

if TYPE_CHECKING:
    from conftest import Meeting

pytestmark = pytest.mark.integration


def _seconds(clock: str) -> float:  # "HH:MM:SS.mmm" (webvtt-py's start_in_seconds drops the fraction)
    hours, minutes, seconds = clock.split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 3)


def _analyze(http: httpx.Client, meeting: Meeting, **fields: object) -> httpx.Response:
    with meeting.path.open("rb") as fh:
        return http.post(
            "/v1/analyze",
            data={k: str(v) for k, v in fields.items()},
            files={"file": ("meeting.mp4", fh, "video/mp4")},
            timeout=600,
        )


def test_sync_analyze_fuses_the_transcript_into_every_chunk(http: httpx.Client, meeting: Meeting) -> None:
    response = _analyze(http, meeting, mode="meeting", chunk_s=10, overlap_s=1, aggregate="true")
    assert response.status_code == 200, response.text
    analysis = VideoAnalysis.model_validate(response.json())
    transcript = analysis.transcript
    assert transcript is not None and analysis.transcript_error is None
    heard = " ".join(s.text for s in transcript.segments)
    assert word_error_rate(" ".join(s.text for s in meeting.said), heard) <= 0.15, heard
    assert analysis.stats.asr_s > 0 and transcript.model == "whisper-base"
    for chunk in analysis.chunks:
        # Each chunk result has the segments its time range overlaps, whole, and its prompt paid for them.
        assert chunk.transcript == segments_in(transcript, chunk.start_s, chunk.end_s), chunk.index
        assert (chunk.transcript_tokens > 0) == bool(chunk.transcript)
        assert chunk.ok and "highlights" in chunk.output


def test_a_job_exports_its_transcript_as_webvtt_and_srt(
    http: httpx.Client, meeting: Meeting, settings: Settings
) -> None:
    response = submit(http, meeting.path, mode="ui", chunk_s=20, overlap_s=0, aggregate="false", language="en")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    done = wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"), timeout_s=600)
    assert done["status"] == "succeeded", done
    analysis = VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job_id}/result").json())
    assert analysis.transcript is not None and analysis.transcript.language == "en"
    files = JobStore(job_store_uri(settings)).files
    assert files.exists(f"jobs/{job_id}/result.json") and files.exists(f"jobs/{job_id}/media")  # jobs.keep_media
    vtt = http.get(f"/v1/jobs/{job_id}/transcript.vtt")
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    cues = webvtt.from_buffer(io.StringIO(vtt.text))
    assert [c.text for c in cues] == [s.text for s in analysis.transcript.segments]
    assert [_seconds(c.start) for c in cues] == [round(s.start_s, 3) for s in analysis.transcript.segments]
    srt = http.get(f"/v1/jobs/{job_id}/transcript.srt")
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:0") and " --> " in srt.text
    assert http.get(f"/v1/jobs/{job_id}/transcript.json").json() == analysis.transcript.model_dump(mode="json")


def test_audio_off_means_no_transcript_and_a_clear_404(http: httpx.Client, meeting: Meeting) -> None:
    response = submit(http, meeting.path, mode="ui", chunk_s=20, overlap_s=0, aggregate="false", audio="off")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert wait_for(http, job_id, lambda j: Job.model_validate(j).terminal, timeout_s=600)["status"] == "succeeded"
    analysis = VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job_id}/result").json())
    assert analysis.transcript is None and all(not c.transcript for c in analysis.chunks)
    missing = http.get(f"/v1/jobs/{job_id}/transcript.vtt")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["type"].endswith("/no-transcript") and "audio was off" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("language", "message"),
    [("xx", "not a Whisper language code"), ("EN", "String should match pattern")],
)
def test_a_bad_language_is_a_422_before_any_work(
    http: httpx.Client, meeting: Meeting, language: str, message: str
) -> None:
    response = _analyze(http, meeting, mode="ui", language=language)
    assert response.status_code == 422 and response.headers["content-type"].startswith("application/problem+json")
    assert message in response.text
    assert http.get("/healthz").status_code == 200
