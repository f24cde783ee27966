"""reelserve's Prometheus metrics, on Ray's metrics export (each node's metrics agent: the port of
`ray start --metrics-export-port`, KubeRay's `metrics` container port 8080; locally
`serve.metrics_export_port`).

Defined with `ray.serve.metrics`, so Serve adds the `deployment`, `replica` and `application` labels when
a replica records; Ray's exporter puts its `ray_` namespace in front of every name: scrape
`ray_reelserve_chunks_total`. Counters are defined with their `_total` name (the exporter keeps it as is).

    reelserve_stage_duration_seconds   histogram  stage: fetch probe asr decode infer summary wall
    reelserve_chunks_total             counter    status: ok failed
    reelserve_videos_total             counter    status: succeeded failed
    reelserve_tokens_total             counter    kind: visual prompt completion (chunks + summaries; visual ⊂ prompt)
    reelserve_frames_total             counter    kind: decoded sampled kept
    reelserve_jobs_queued              gauge      unfinished jobs waiting for a slot (the JobRunner's view)
    reelserve_jobs_running             gauge      jobs the JobRunner is running
    reelserve_fetch_failures_total     counter    reason: dns timeout network http-status redirect forbidden too-large
    reelserve_http_problems_total      counter    status, type: every problem+json answer (4xx and 5xx)

vLLM's own engine metrics (`ray_vllm_*`: time to first token, KV-cache use, running and waiting requests)
come from vLLM's Ray stat logger in the VLM replicas (serve_app.engine.vllm).

Metrics are made on first use in each process (Ray metrics belong to the process that records them, and
Serve's labels to the replica it runs in). Outside a Ray worker recording is a no-op, so the flow's unit
tests record into nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ray.serve.metrics import Counter, Gauge, Histogram

from serve_app.schemas import ChunkResult, VideoAnalysis

__all__ = [
    "STAGES",
    "record_chunk",
    "record_fetch_failure",
    "record_problem",
    "record_stage",
    "record_video",
    "set_jobs",
]

#: Stage labels of `reelserve_stage_duration_seconds`.
STAGES = ("fetch", "probe", "asr", "decode", "infer", "summary", "wall")

# Seconds: a decode of a short chunk (tens of ms) up to the wall time of a multi-hour video.
_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]


@dataclass(frozen=True)
class _Metrics:
    stage_seconds: Histogram
    chunks: Counter
    videos: Counter
    tokens: Counter
    frames: Counter
    jobs_queued: Gauge
    jobs_running: Gauge
    fetch_failures: Counter
    problems: Counter


@functools.cache
def _metrics() -> _Metrics:
    return _Metrics(
        stage_seconds=Histogram(
            "reelserve_stage_duration_seconds",
            description="Wall time of one stage of one video (fetch, probe, asr, summary, wall) or chunk "
            "(decode, infer).",
            boundaries=_SECONDS,
            tag_keys=("stage",),
        ),
        chunks=Counter("reelserve_chunks_total", description="Chunks finished, by outcome.", tag_keys=("status",)),
        videos=Counter(
            "reelserve_videos_total", description="Videos analysed (sync or job), by outcome.", tag_keys=("status",)
        ),
        tokens=Counter(
            "reelserve_tokens_total",
            description="Model tokens of the chunk and summary calls: visual (part of prompt), prompt, completion.",
            tag_keys=("kind",),
        ),
        frames=Counter(
            "reelserve_frames_total",
            description="Frames of the chunks: decoded, sampled (candidates), kept (sent to the model).",
            tag_keys=("kind",),
        ),
        jobs_queued=Gauge("reelserve_jobs_queued", description="Unfinished jobs waiting for a runner slot."),
        jobs_running=Gauge("reelserve_jobs_running", description="Jobs being run."),
        fetch_failures=Counter(
            "reelserve_fetch_failures_total",
            description="Video URL fetches that failed, by reason.",
            tag_keys=("reason",),
        ),
        problems=Counter(
            "reelserve_http_problems_total",
            description="Problem (application/problem+json) answers, by HTTP status and problem type.",
            tag_keys=("status", "type"),
        ),
    )


def _inc(counter: Counter, value: float, tags: dict[str, str]) -> None:
    if value > 0:  # Ray refuses increments of 0
        counter.inc(value, tags=tags)


def record_stage(stage: str, seconds: float) -> None:
    _metrics().stage_seconds.observe(max(seconds, 0.0), tags={"stage": stage})


def record_chunk(result: ChunkResult) -> None:
    """One finished chunk (ok or failed): its outcome, tokens, frames and decode / infer times."""
    m = _metrics()
    m.chunks.inc(tags={"status": "ok" if result.ok else "failed"})
    for kind, tokens in (
        ("visual", result.visual_tokens),
        ("prompt", result.prompt_tokens),
        ("completion", result.completion_tokens),
    ):
        _inc(m.tokens, tokens, {"kind": kind})
    if result.decode is not None:
        for kind, frames in (
            ("decoded", result.decode.frames_decoded),
            ("sampled", result.decode.frames_sampled),
            ("kept", result.decode.frames_kept),
        ):
            _inc(m.frames, frames, {"kind": kind})
        record_stage("decode", result.decode.decode_s)
    if result.infer_s > 0:  # a chunk that never reached the model has no inference time
        record_stage("infer", result.infer_s)


def record_video(status: str, analysis: VideoAnalysis | None = None) -> None:
    """A video done with: `succeeded` with its analysis (the video-level stage times), or `failed`."""
    _metrics().videos.inc(tags={"status": status})
    if analysis is not None:
        stats = analysis.stats
        for stage, seconds in (
            ("fetch", stats.fetch_s),
            ("probe", stats.probe_s),
            ("asr", stats.asr_s),
            ("summary", stats.summary_s),
            ("wall", stats.wall_s),
        ):
            if seconds > 0:  # 0: the stage did not run (no audio, no summary, an upload already on the store)
                record_stage(stage, seconds)
        if analysis.summary is not None:
            m = _metrics()
            _inc(m.tokens, analysis.summary.prompt_tokens, {"kind": "prompt"})
            _inc(m.tokens, analysis.summary.completion_tokens, {"kind": "completion"})


def set_jobs(queued: int, running: int) -> None:
    m = _metrics()
    m.jobs_queued.set(queued)
    m.jobs_running.set(running)


def record_fetch_failure(reason: str) -> None:
    _metrics().fetch_failures.inc(tags={"reason": reason})


def record_problem(status: int, type_: str) -> None:
    _metrics().problems.inc(tags={"status": str(status), "type": type_})
