"""Online = bulk: `/v1/analyze`, a job and the archive job run one flow and give the same analysis.

On the same file and options (temperature 0, the default), all three must produce the same chunk plan,
the same frames and prompts (token counts), the same chunk answers, timeline and summary, under the same
`video_id` (the content hash), and every path must report its stage timings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from data_jobs.archive import run
from serve_app.config import Settings
from serve_app.schemas import VideoAnalysis
from tests.integration.jobs_client import submit, wait_for

pytestmark = pytest.mark.integration

OPTIONS = {"mode": "screen_share", "aggregate": True}


@pytest.fixture(scope="module")
def clip(screen_share, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's 60 s generated screen share (several chunks), alone in a folder for the archive job."""
    folder = tmp_path_factory.mktemp("one-flow")
    return Path(shutil.copy(screen_share.path, folder / screen_share.path.name))


def comparable(analysis: VideoAnalysis) -> dict:
    """Everything that must agree across paths (not the timings, which differ run to run)."""
    chunks = [
        c.model_dump(include={"index", "start_s", "end_s", "mode", "frame_times_s", "output", "text", "error"})
        | {"tokens": (c.prompt_tokens, c.visual_tokens, c.completion_tokens)}
        | {"frames": (c.decode.frames_decoded, c.decode.frames_sampled, c.decode.frames_kept)}
        for c in analysis.chunks
    ]
    return {
        "video_id": analysis.video_id,
        "video": analysis.video.model_dump(),
        "request": analysis.request.model_dump(),
        "model": analysis.model,
        "chunks": chunks,
        "timeline": [e.model_dump() for e in analysis.timeline],
        "summary": analysis.summary.model_dump() if analysis.summary else None,
        "summary_error": analysis.summary_error,
    }


def test_analyze_job_and_archive_agree(http: httpx.Client, settings: Settings, clip: Path, tmp_path: Path) -> None:
    with clip.open("rb") as fh:
        response = http.post("/v1/analyze", data=OPTIONS, files={"file": (clip.name, fh, "video/mp4")})
    assert response.status_code == 200, response.text
    online = VideoAnalysis.model_validate(response.json())

    submitted = submit(http, clip, **OPTIONS)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    wait_for(http, job_id, lambda j: j["status"] in ("succeeded", "failed"))
    job = VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job_id}/result").json())

    out = tmp_path / "out"
    report = run(str(clip.parent), str(out), settings, OPTIONS)
    assert report["videos"]["ok"] == 1, report
    (analysis_file,) = (out / "analyses").glob("*.json")
    bulk = VideoAnalysis.model_validate_json(analysis_file.read_text())

    assert len(online.chunks) >= 3 and all(c.ok for c in online.chunks)
    assert online.video_id == online.video.sha256[:16]
    assert analysis_file.stem.startswith(online.video_id + "-"), "bulk files: content hash + options key"
    reference = comparable(online)
    assert comparable(job) == reference
    assert comparable(bulk) == reference

    for name, analysis in {"analyze": online, "job": job, "archive": bulk}.items():
        s = analysis.stats
        assert s.probe_s > 0, f"{name}: probe_s"
        assert s.wall_s >= s.summary_s > 0, f"{name}: wall_s must run to after the summary"
        assert s.decode_s > 0 and s.infer_s > 0, name
    assert online.stats.fetch_s > 0 and job.stats.fetch_s > 0, "the upload's time is reported"
