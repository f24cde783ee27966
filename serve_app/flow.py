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
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from serve_app.analysis import build_timeline
from serve_app.analysis.aggregate import assemble
from serve_app.config import FlowSettings, JobSettings
from serve_app.errors import EngineUnavailable, TooLongForSync
from serve_app.fair_share import FairShare
from serve_app.memory import collect_cycles
from serve_app.observability.metrics import record_chunk, record_video
from serve_app.schemas import (
    AnalyzeOptions,
    ChunkPlan,
    ChunkResult,
    ChunkTask,
    Job,
    Summary,
    TimelineEntry,
    Transcript,
    TranscriptSegment,
    VideoAnalysis,
    VideoInfo,
)
from serve_app.speech.transcript import segments_in
from serve_app.store.jobs import JobStore, ThumbnailTarget

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
    share: FairShare | None = None,
) -> list[ChunkResult]:
    """Every plan through `call` (decode + infer of one chunk), windowed and retried; results in plan order.

    A chunk that fails for good becomes `ChunkResult.failed` (never raised), so one chunk cannot sink a
    video. `on_result` sees each result as soon as it is in (jobs store it: the unit of resumption).
    `share`: the process's chunk slots this video takes its fair part of, on top of its own window (sync
    analyze). Cancelling the caller cancels the in-flight calls, so vLLM aborts their requests.
    """
    window = asyncio.Semaphore(policy.chunks_in_flight)
    me = object()  # this call's key in `share` (one video may be analysed twice at once)
    left = len(plans)

    async def one(plan: ChunkPlan) -> ChunkResult:
        slot = share.slot(me) if share is not None else contextlib.nullcontext()
        async with window, slot:
            try:
                result = await with_retry(lambda: call(plan), policy, f"video {video_id} chunk {plan.index}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                result = ChunkResult.failed(plan, mode, f"{type(exc).__name__}: {exc}"[:1000])
        record_chunk(result)
        if on_result is not None:
            await on_result(result)
        nonlocal left
        left -= 1
        collect_cycles(force=left == 0)  # the frames of the calls done (see GC_EVERY_S)
        return result

    calls = [asyncio.ensure_future(one(p)) for p in plans]
    try:
        return list(await asyncio.gather(*calls))
    finally:
        # `gather` cancels the other calls only when it is cancelled itself, not when one of them raises
        # CancelledError. That is how a cancelled Serve request often reaches here: its replica cancels the
        # request's child calls still pending assignment (a decode waiting for a Chunker, a VLM call waiting
        # for its frames) before the request's own task, so one chunk call ends first and the rest, left
        # running for nobody, decoded the whole video after the client had gone. Stop them all.
        running = [c for c in calls if not c.done()]
        for c in running:
            c.cancel()
        if running:
            await asyncio.wait(running)


def check_sync_limit(plans: list[ChunkPlan], policy: FlowSettings) -> None:
    """Refuse, before any decode, a synchronous analysis longer than `policy.sync_max_chunks`: it would hold
    a connection for its whole run, and a dropped one loses every chunk; a job is durable and resumable."""
    if len(plans) > policy.sync_max_chunks:
        raise TooLongForSync(
            f"the video needs {len(plans)} chunks; POST /v1/analyze takes at most {policy.sync_max_chunks} "
            "(flow.sync_max_chunks): submit the same request to POST /v1/jobs (an async job, with progress "
            "and events), or ask for longer chunks (chunk_s)"
        )


async def plan_video(
    chunker: DeploymentHandle, media: str, options: AnalyzeOptions
) -> tuple[VideoInfo, list[ChunkPlan], float]:
    """Probe + plan on a Chunker replica; returns the probe time too (every path reports it)."""
    started = time.perf_counter()
    info, plans = await chunker.plan.remote(media, options)
    return info, plans, time.perf_counter() - started


async def queue_job(
    store: JobStore,
    chunker: DeploymentHandle,
    runner: DeploymentHandle,
    settings: JobSettings,
    *,
    upload: str,
    media: str,
    options: AnalyzeOptions,
    source: str,
    fetch_s: float,
    bind: Callable[[str], None] | None = None,
) -> Job:
    """A staged upload (`media`, the store URI of `upload`) as a queued job: planned on a Chunker, a
    capacity slot reserved (Overloaded when none is free), `bind(job_id)` (e.g. an Idempotency-Key) before
    the job is created, and the runner woken. Nothing is left behind when a step fails (the slot is
    released; the upload stays the caller's to delete)."""
    info, plans, probe_s = await plan_video(chunker, media, options)
    job_id = await asyncio.to_thread(store.reserve, settings)  # the capacity bound, across replicas
    try:
        if bind is not None:
            await asyncio.to_thread(bind, job_id)
        timings = {"fetch_s": fetch_s, "probe_s": probe_s}
        job = await asyncio.to_thread(store.create, upload, options, source, info, plans, timings, job_id)
    except BaseException:
        await asyncio.to_thread(store.release, job_id)
        raise
    runner.wake.remote()
    logger.info("job %s queued: video %s, %.1fs, %d chunks", job.id, info.video_id, info.duration_s, len(plans))
    return job


@dataclass(frozen=True)
class Speech:
    """The outcome of transcribing a video: a transcript, or none and (if it failed) why."""

    transcript: Transcript | None = None
    error: str | None = None

    def segments(self, plan: ChunkPlan) -> list[TranscriptSegment]:
        return segments_in(self.transcript, plan.start_s, plan.end_s)

    # The speech policy, online (`transcribe_video`) and bulk (data_jobs.probe_stage) alike:
    @staticmethod
    def wanted(options: AnalyzeOptions, info: VideoInfo) -> bool:
        """Whether to transcribe at all: not when audio is off or the file has no audio stream."""
        return options.audio != "off" and info.has_audio

    @classmethod
    def failed(cls, what: str, exc: BaseException) -> Speech:
        """Best effort like the summary: a failed transcription is the reason, the chunks go on with pixels."""
        logger.warning("%s: no transcript: %r", what, exc)
        return cls(error=f"{type(exc).__name__}: {exc}"[:1000])


NO_SPEECH = Speech()


async def transcribe_video(
    asr: DeploymentHandle | None, media: str, info: VideoInfo, options: AnalyzeOptions, policy: FlowSettings
) -> Speech:
    """The video's transcript on an ASR replica, under the retry policy; best effort like the summary:
    a failure is `Speech.error` and the chunks go on with pixels only. No call at all when audio is off,
    the graph has no ASR, or the file has no audio stream."""
    if asr is None or not Speech.wanted(options, info):
        return NO_SPEECH
    try:
        transcript = await with_retry(
            lambda: asr.transcribe.remote(media, options.language), policy, f"video {info.video_id} transcript"
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return Speech.failed(f"video {info.video_id}", exc)
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
    thumbs: ThumbnailTarget | None = None,
) -> Callable[[ChunkPlan], Awaitable[ChunkResult]]:
    """One chunk through the graph: the Chunker's response goes straight into the VLM call, so the frames
    travel replica to replica, never through the caller. The decode is sent first and the transcript
    awaited while it runs; the VLM call gets the segments the chunk overlaps. With `thumbs` (jobs), the
    Chunker also stores thumbnails of the kept frames."""

    async def call(plan: ChunkPlan) -> ChunkResult:
        frames = chunker.decode.remote(media, plan, thumbs)
        try:
            heard = await asyncio.shield(speech) if speech is not None else NO_SPEECH  # shared by every chunk
            return await cancel_on_exit(vlm.analyze_chunk.remote(frames, task, heard.segments(plan)))
        except asyncio.CancelledError:
            # The caller went away, failed or timed out: the decode too, or it runs on for nobody.
            frames.cancel()
            raise

    return call


async def cancel_on_exit(response: DeploymentResponse[T]) -> T:
    """`await response`, cancelling it when the awaiting task is cancelled (awaiting alone does not)."""
    try:
        return await response
    except asyncio.CancelledError:
        response.cancel()
        raise


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
    analysis = assemble(
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
    record_video("succeeded", analysis)
    return analysis
