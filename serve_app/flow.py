"""The one analysis flow: plan → decode → infer → finish, for `/v1/analyze`, jobs and the archive job.

    plan     probe + chunk plan of a video                       (Chunker.plan; bulk: a Ray Data task)
    speech   the whole audio track → transcript, beside decoding (ASR; bulk: in the probe task)
    infer    every chunk: decode → VLM with its transcript lines, `chunks_in_flight` at a time, each call
             under one retry policy
    finish   timeline + summary (best effort) + assembly → VideoAnalysis   (the Aggregator)

The callers differ only in where the pieces run: the ingress and the job
runner hand each Chunker `DeploymentResponse` straight to the VLM (frames go
replica to replica), the archive job decodes in Ray Data tasks and sends the
frames; all of them go through `infer_chunks` and the Aggregator's `finish`.

Retry policy (`FlowSettings`): a chunk call that fails for a reason retrying
can fix — a dead or restarting replica, backpressure, an engine timeout — is
retried with exponential backoff and jitter until the per-chunk deadline; bad
input (a `ReelserveError` other than `EngineUnavailable`, a bad answer) is
never retried. A chunk that still fails is a failed `ChunkResult` with its time
range and reason; the video goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle

from serve_app.analysis import build_timeline
from serve_app.analysis.aggregate import assemble
from serve_app.config import FlowSettings
from serve_app.errors import EngineUnavailable
from serve_app.schemas import (
    AnalyzeOptions,
    ChunkPlan,
    ChunkResult,
    ChunkTask,
    Summary,
    TimelineEntry,
    Transcript,
    TranscriptSegment,
    VideoAnalysis,
    VideoInfo,
)
from serve_app.speech.transcript import segments_in

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Worth retrying: the replica or engine went away, is overloaded, or was slow.
TRANSIENT: tuple[type[BaseException], ...] = (
    RayActorError,
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
    EngineUnavailable,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TRANSIENT):
        return True
    # Errors raised inside a replica arrive wrapped; look at the cause.
    return isinstance(exc, RayTaskError) and isinstance(getattr(exc, "cause", None), TRANSIENT)


def backoff_delays(policy: FlowSettings, rng: random.Random) -> Iterator[float]:
    """Delays before attempt 2, 3, ...: doubling from `backoff_s` up to `backoff_max_s`, each jittered down."""
    for attempt in itertools.count():
        delay = min(policy.backoff_s * 2**attempt, policy.backoff_max_s)
        yield delay * (1 - policy.jitter * rng.random())


async def with_retry(call: Callable[[], Awaitable[T]], policy: FlowSettings, what: str) -> T:
    """`call()` under the per-call timeout, retried on transient failures until the deadline; else raises."""
    deadline = time.monotonic() + policy.deadline_s
    delays = backoff_delays(policy, random.Random())
    for attempt in itertools.count(1):
        try:
            async with asyncio.timeout(policy.chunk_timeout_s):
                return await call()
        except Exception as exc:
            delay = next(delays)
            if not is_transient(exc) or time.monotonic() + delay > deadline:
                logger.warning("%s failed after %d attempt(s): %r", what, attempt, exc)
                raise
            logger.info("%s attempt %d: %r; retrying in %.1fs", what, attempt, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def infer_chunks(
    plans: list[ChunkPlan],
    call: Callable[[ChunkPlan], Awaitable[ChunkResult]],
    *,
    mode: str,
    policy: FlowSettings,
    video_id: str,
    on_result: Callable[[ChunkResult], Awaitable[None]] | None = None,
) -> list[ChunkResult]:
    """Every plan through `call` (decode + infer of one chunk), windowed and retried; results in plan order.

    A chunk that fails for good becomes `ChunkResult.failed` (never raised), so one chunk cannot sink a
    video. `on_result` sees each result as soon as it is in (jobs store it: the unit of resumption).
    Cancelling the caller cancels the in-flight calls, so vLLM aborts their requests.
    """
    window = asyncio.Semaphore(policy.chunks_in_flight)

    async def one(plan: ChunkPlan) -> ChunkResult:
        async with window:
            try:
                result = await with_retry(lambda: call(plan), policy, f"video {video_id} chunk {plan.index}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                result = ChunkResult.failed(plan, mode, f"{type(exc).__name__}: {exc}"[:1000])
        if on_result is not None:
            await on_result(result)
        return result

    return list(await asyncio.gather(*(one(p) for p in plans)))


async def plan_video(
    chunker: DeploymentHandle, media: str, options: AnalyzeOptions
) -> tuple[VideoInfo, list[ChunkPlan], float]:
    """Probe + plan on a Chunker replica; returns the probe time too (every path reports it)."""
    started = time.perf_counter()
    info, plans = await chunker.plan.remote(media, options)
    return info, plans, time.perf_counter() - started


@dataclass(frozen=True)
class Speech:
    """The outcome of transcribing a video: a transcript, or none and (if it failed) why."""

    transcript: Transcript | None = None
    error: str | None = None

    def segments(self, plan: ChunkPlan) -> list[TranscriptSegment]:
        return segments_in(self.transcript, plan.start_s, plan.end_s)


NO_SPEECH = Speech()


async def transcribe_video(
    asr: DeploymentHandle | None, media: str, info: VideoInfo, options: AnalyzeOptions, policy: FlowSettings
) -> Speech:
    """The video's transcript on an ASR replica, under the retry policy; best effort like the summary:
    a failure is `Speech.error` and the chunks go on with pixels only. No call at all when audio is off,
    the graph has no ASR, or the file has no audio stream."""
    if asr is None or options.audio == "off" or not info.has_audio:
        return NO_SPEECH
    try:
        transcript = await with_retry(
            lambda: asr.transcribe.remote(media, options.language), policy, f"video {info.video_id} transcript"
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the policy: pixels only, with the reason
        logger.warning("video %s: no transcript: %r", info.video_id, exc)
        return Speech(error=f"{type(exc).__name__}: {exc}"[:1000])
    return Speech(transcript=transcript)


def start_transcript(
    asr: DeploymentHandle | None, media: str, info: VideoInfo, options: AnalyzeOptions, policy: FlowSettings
) -> asyncio.Task[Speech]:
    """`transcribe_video` as a task, started before the chunks so it runs while they decode."""
    return asyncio.create_task(transcribe_video(asr, media, info, options, policy))


def graph_chunk_call(
    chunker: DeploymentHandle,
    vlm: DeploymentHandle,
    media: str,
    task: ChunkTask,
    speech: asyncio.Task[Speech] | None = None,
) -> Callable[[ChunkPlan], Awaitable[ChunkResult]]:
    """One chunk through the graph: the Chunker's response goes straight into the VLM call, so the frames
    travel replica to replica, never through the caller. The decode is sent first and the transcript
    awaited while it runs; the VLM call gets the segments the chunk overlaps."""

    async def call(plan: ChunkPlan) -> ChunkResult:
        frames = chunker.decode.remote(media, plan)
        try:
            heard = await asyncio.shield(speech) if speech is not None else NO_SPEECH  # shared by every chunk
        except asyncio.CancelledError:
            frames.cancel()
            raise
        return await vlm.analyze_chunk.remote(frames, task, heard.segments(plan))

    return call


Summarizer = Callable[[list[TimelineEntry], str, list[TranscriptSegment]], Awaitable[Summary]]


async def finish(
    *,
    video_id: str,
    info: VideoInfo,
    options: AnalyzeOptions,
    plans: list[ChunkPlan],
    results: list[ChunkResult],
    model: str,
    summarize: Summarizer,
    policy: FlowSettings,
    timings: dict[str, float],
    started_at: float,
    speech: Speech = NO_SPEECH,
) -> VideoAnalysis:
    """Timeline, summary and assembly. The summary is best effort: a failed or truncated one leaves a
    result without summary and with `summary_error`, never an aborted video or run. The summary call
    gets the transcript too."""
    timeline = build_timeline(plans, results)
    summary: Summary | None = None
    summary_error: str | None = None
    started = time.perf_counter()
    if options.aggregate and timeline:
        try:
            said = speech.transcript.segments if speech.transcript else []
            summary = await with_retry(
                lambda: summarize(timeline, options.mode, said), policy, f"video {video_id} summary"
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the policy: the chunks stand without a summary, with the reason
            summary_error = f"{type(exc).__name__}: {exc}"[:1000]
            logger.warning("video %s: no summary: %s", video_id, summary_error)
    summary_s = time.perf_counter() - started
    return assemble(
        video_id=video_id,
        info=info,
        options=options,
        model=model,
        results=results,
        timeline=timeline,
        summary=summary,
        summary_error=summary_error,
        transcript=speech.transcript,
        transcript_error=speech.error,
        timings={
            **timings,
            "asr_s": speech.transcript.asr_s if speech.transcript else 0.0,
            "summary_s": summary_s,
            "wall_s": max(0.0, time.time() - started_at),
        },
    )
