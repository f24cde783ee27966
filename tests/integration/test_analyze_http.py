"""POST real videos to the real Serve graph over HTTP and check the whole analysis."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serve_app.analysis import answer_schema, parse_answer
from serve_app.config import Settings
from serve_app.schemas import AnalyzeOptions, VideoAnalysis
from serve_app.video import chunking_options, plan_chunks, probe, visual_tokens
from tests.integration.serve_logs import chunk_lines, serve_log_records

if TYPE_CHECKING:
    from tests.conftest import ScreenClip

pytestmark = pytest.mark.integration

SHARED_VIDEOS = ["display-dual-monitors.webm", "vtest.avi", "Megamind.avi"]


def post_file(http: httpx.Client, path: Path, **fields: object) -> httpx.Response:
    form = {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}
    with path.open("rb") as fh:
        return http.post("/v1/analyze", data=form, files={"file": (path.name, fh, "application/octet-stream")})


def check_analysis(body: dict, path: Path, settings: Settings, mode: str) -> VideoAnalysis:
    """The response matches the plan for this file and is internally consistent."""
    analysis = VideoAnalysis.model_validate(body)
    info = probe(path, settings.video)
    assert analysis.video == info
    plans = plan_chunks(info, chunking_options(AnalyzeOptions(mode=mode), settings.video), settings.video)
    chunks = analysis.chunks
    assert [(c.index, c.start_s, c.end_s) for c in chunks] == [(p.index, p.start_s, p.end_s) for p in plans]
    assert chunks[0].start_s == 0 and chunks[-1].end_s == pytest.approx(info.duration_s)
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert nxt.start_s <= prev.end_s, "chunks must leave no gap"
    schema = answer_schema(mode)
    for chunk, plan in zip(chunks, plans, strict=True):
        assert chunk.ok, f"chunk {chunk.index} failed: {chunk.error}"
        assert chunk.mode == mode
        # Adaptive sampling keeps what changed, up to the plan's ceiling; always whole frame pairs.
        assert len(chunk.frame_times_s) == chunk.decode.frames_kept <= plan.max_frames
        assert chunk.decode.frames_kept % 2 == 0 and chunk.decode.sampling == plan.sampling
        assert chunk.decode.frames_kept <= chunk.decode.frames_sampled + 1 <= len(plan.sample_times()) + 1
        assert all(plan.start_s - 0.5 <= t <= plan.end_s + 0.5 for t in chunk.frame_times_s)
        assert chunk.frame_times_s == sorted(chunk.frame_times_s)
        # What was budgeted is what the model saw: no resize by vLLM's processor.
        assert chunk.visual_tokens == visual_tokens(len(chunk.frame_times_s), plan.height, plan.width)
        assert chunk.visual_tokens == chunk.decode.visual_tokens
        assert chunk.visual_tokens <= plan.token_budget
        assert chunk.prompt_tokens > chunk.visual_tokens > 0 and chunk.completion_tokens > 0
        if schema is not None:
            assert parse_answer(mode, chunk.text) == chunk.output
        else:
            assert chunk.output is None and chunk.text
    stats = analysis.stats
    assert stats.chunks == len(plans) and stats.chunks_failed == 0
    assert stats.frames_kept == sum(len(c.frame_times_s) for c in chunks)
    assert stats.frames_decoded >= stats.frames_sampled > 0
    assert stats.visual_tokens == sum(c.visual_tokens for c in chunks) > 0
    assert stats.prompt_tokens == sum(c.prompt_tokens for c in chunks)
    assert stats.wall_s >= stats.probe_s > 0 and stats.decode_s > 0 and stats.infer_s > 0
    assert analysis.timeline and all(e.start_s <= e.end_s for e in analysis.timeline)
    assert [e.start_s for e in analysis.timeline] == sorted(e.start_s for e in analysis.timeline)
    return analysis


@pytest.mark.parametrize("name", SHARED_VIDEOS)
def test_shared_media_end_to_end(http: httpx.Client, settings: Settings, media_dir: Path, name: str) -> None:
    path = media_dir / name
    response = post_file(http, path, mode="screen_share")
    assert response.status_code == 200, response.text
    analysis = check_analysis(response.json(), path, settings, "screen_share")
    assert analysis.summary is not None and analysis.summary.title
    assert analysis.model.startswith("reelserve-tiny-qwen3-vl")


@pytest.mark.parametrize("mode", ["describe", "meeting", "app_demo", "ui"])
def test_generated_video_in_every_mode(http: httpx.Client, settings: Settings, audio_26s_mp4: Path, mode: str) -> None:
    response = post_file(http, audio_26s_mp4, mode=mode, prompt="Pay attention to the counter.")
    assert response.status_code == 200, response.text
    analysis = check_analysis(response.json(), audio_26s_mp4, settings, mode)
    assert analysis.video.has_audio and analysis.request.prompt == "Pay attention to the counter."


def test_custom_mode_with_user_schema(http: httpx.Client, audio_26s_mp4: Path) -> None:
    schema = {
        "type": "object",
        "properties": {
            "colours": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3},
            "people": {"type": "integer", "minimum": 0, "maximum": 100},
        },
        "required": ["colours", "people"],
        "additionalProperties": False,
    }
    response = post_file(
        http,
        audio_26s_mp4,
        mode="custom",
        prompt="List the colours and count people.",
        schema=schema,
        aggregate="false",
        chunk_s=13,
        overlap_s=0,
    )
    assert response.status_code == 200, response.text
    analysis = VideoAnalysis.model_validate(response.json())
    assert analysis.summary is None and len(analysis.chunks) == 2
    for chunk in analysis.chunks:
        assert chunk.ok, chunk.error
        assert set(chunk.output) == {"colours", "people"} and 0 <= chunk.output["people"] <= 100


def test_video_url_served_from_localhost(
    http: httpx.Client, settings: Settings, media_server: tuple[str, Path], audio_26s_mp4: Path
) -> None:
    base, root = media_server
    shutil.copy(audio_26s_mp4, root / "clip.mp4")
    response = http.post("/v1/analyze", json={"video_url": f"{base}/clip.mp4", "mode": "screen_share"})
    assert response.status_code == 200, response.text
    analysis = check_analysis(response.json(), audio_26s_mp4, settings, "screen_share")
    assert analysis.stats.fetch_s > 0


def test_request_options_change_the_plan(http: httpx.Client, audio_26s_mp4: Path) -> None:
    response = post_file(http, audio_26s_mp4, fps=2, sampling="uniform", chunk_s=10, overlap_s=2, aggregate="false")
    assert response.status_code == 200, response.text
    analysis = VideoAnalysis.model_validate(response.json())
    assert analysis.request == AnalyzeOptions(fps=2, sampling="uniform", chunk_s=10, overlap_s=2, aggregate=False)
    assert len(analysis.chunks) == 3 and analysis.chunks[1].start_s == 8.0
    # 2 fps over a 10 s chunk: 20 frames, about half a second apart.
    times = analysis.chunks[0].frame_times_s
    assert len(times) == 20 and max(b - a for a, b in zip(times, times[1:], strict=False)) < 0.7


def test_adaptive_sampling_keeps_the_changes_of_a_screen_share(
    http: httpx.Client, settings: Settings, screen_share_40s: ScreenClip
) -> None:
    path, events = screen_share_40s.path, screen_share_40s.events
    response = post_file(http, path, mode="screen_share", aggregate="false")
    assert response.status_code == 200, response.text
    analysis = check_analysis(response.json(), path, settings, "screen_share")
    stats = analysis.stats
    # Decoded >= sampled (candidates at the base rate) > kept (what changed, the floor, pairs).
    assert stats.frames_decoded >= stats.frames_sampled > stats.frames_kept >= 2 * len(analysis.chunks)
    kept = [t for chunk in analysis.chunks for t in chunk.frame_times_s]
    assert all(any(e.shown_s <= t < e.end_s for t in kept) for e in events)


# -- what operators plug in: metrics and logs (serve_app/observability) ---------------------------------------


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the Prometheus text at `url`: (name, labels, value)."""
    text = httpx.get(url, timeout=10).text
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum over replicas (and other labels) of the samples called `name` that carry `labels`."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def test_an_analysis_shows_in_the_metrics_and_its_request_id_in_the_chunk_logs(
    http: httpx.Client, settings: Settings, media_server: tuple[str, Path], clip_3s_mp4: Path
) -> None:
    rid = f"obs-{uuid.uuid4().hex[:16]}"
    with clip_3s_mp4.open("rb") as fh:
        response = http.post(
            "/v1/analyze",
            data={"mode": "screen_share"},
            files={"file": (clip_3s_mp4.name, fh, "video/mp4")},
            headers={"X-Request-ID": rid},
        )
    assert response.status_code == 200, response.text
    assert response.headers.get_list("x-request-id") == [rid]  # Serve's id, echoed once
    analysis = VideoAnalysis.model_validate(response.json())
    # Problems name their request and are counted by type; a failed fetch is counted by reason.
    bad_rid = f"obs-{uuid.uuid4().hex[:16]}"
    empty = http.post("/v1/analyze", files={"file": ("empty.mp4", b"", "video/mp4")}, headers={"X-Request-ID": bad_rid})
    assert empty.status_code == 400 and empty.json()["instance"] == f"urn:reelserve:request:{bad_rid}"
    base, _ = media_server
    missing = http.post("/v1/analyze", json={"video_url": f"{base}/no-such-clip.mp4"})
    assert missing.status_code == 400 and missing.json()["type"].endswith("/url-fetch-failed")

    # Ray exports what the replicas recorded every few seconds: poll. Counters are the session's, so at
    # least this analysis's figures.
    url = f"http://127.0.0.1:{settings.serve.metrics_export_port}/metrics"
    ok = sum(c.ok for c in analysis.chunks)  # the tiny random model's answer may be cut off: a failed chunk
    inferred = sum(c.infer_s > 0 for c in analysis.chunks)
    wanted = {
        ("ray_reelserve_chunks_total", (("status", "ok"),)): ok,
        ("ray_reelserve_chunks_total", (("status", "failed"),)): len(analysis.chunks) - ok,
        ("ray_reelserve_videos_total", (("status", "succeeded"),)): 1,
        ("ray_reelserve_tokens_total", (("kind", "visual"),)): analysis.stats.visual_tokens,
        ("ray_reelserve_tokens_total", (("kind", "completion"),)): analysis.stats.completion_tokens,
        ("ray_reelserve_frames_total", (("kind", "decoded"),)): analysis.stats.frames_decoded,
        ("ray_reelserve_frames_total", (("kind", "kept"),)): analysis.stats.frames_kept,
        ("ray_reelserve_stage_duration_seconds_count", (("stage", "decode"),)): len(analysis.chunks),
        ("ray_reelserve_stage_duration_seconds_count", (("stage", "infer"),)): inferred,
        ("ray_reelserve_stage_duration_seconds_count", (("stage", "probe"),)): 1,
        ("ray_reelserve_stage_duration_seconds_count", (("stage", "wall"),)): 1,
        ("ray_reelserve_http_problems_total", (("status", "400"), ("type", "empty-upload"))): 1,
        ("ray_reelserve_fetch_failures_total", (("reason", "http-status"),)): 1,
        ("ray_vllm_time_to_first_token_seconds_count", ()): 1,
    }
    deadline = time.monotonic() + 120
    while True:
        samples = scrape(url)
        short = {key: need for key, need in wanted.items() if total(samples, key[0], **dict(key[1])) < need}
        if not short or time.monotonic() > deadline:
            break
        time.sleep(2)
    reelserve = sorted({n for n, _, _ in samples if n.startswith("ray_reelserve_")})
    assert not short, f"below this analysis's figures after 120 s: {short}; exported: {reelserve}"
    assert {"ray_reelserve_jobs_queued", "ray_reelserve_jobs_running"} <= set(reelserve)
    # No check of a histogram's _sum: Ray's agent rebuilds histograms from bucket midpoints (0.375 s exported
    # for 0.46 s observed), so only counts are exact.

    # Every Serve log line parses as JSON; the request's id is on the lines of its chunks, in the VLM
    # replica that ran them (carried through the handle calls), and on the ingress's.
    records = serve_log_records()
    mine = [r for r in records if r.get("request_id") == rid]
    assert chunk_lines(records, rid, analysis.video_id) == {c.index for c in analysis.chunks}, mine
    assert any("_Chunker_" in r["file"] for r in mine), "the Chunker's decode call carries the id too"
    assert any("_Ingress_" in r["file"] and analysis.video_id in r["message"] for r in mine)
