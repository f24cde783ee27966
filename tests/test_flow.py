"""The one analysis flow's policies (serve_app.flow): retry, window, failed chunks, best-effort summary.

The chunk call is a plain coroutine here: these tests pin the policy itself; the integration suite runs
the same functions over the real graph.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from ray.serve.exceptions import BackPressureError

from serve_app.analysis import OutputError
from serve_app.config import FlowSettings
from serve_app.errors import EngineUnavailable, InvalidVideo, TooLongForSync
from serve_app.fair_share import FairShare
from serve_app.flow import (
    NO_SPEECH,
    Speech,
    backoff_delays,
    check_sync_limit,
    finish,
    infer_chunks,
    is_transient,
    transcribe_video,
    with_retry,
)
from serve_app.schemas import AnalyzeOptions, ChunkPlan, ChunkResult, Summary, Transcript, TranscriptSegment, VideoInfo
from tests.conftest import chunk_plan

FAST = FlowSettings(chunks_in_flight=3, chunk_timeout_s=5, deadline_s=2, backoff_s=0.01, backoff_max_s=0.04)


def plan(i: int) -> ChunkPlan:
    return chunk_plan(i, 10.0 * i, 10.0 * i + 10)


def ok_result(p: ChunkPlan, text: str = "a thing happens") -> ChunkResult:
    return ChunkResult(
        index=p.index, start_s=p.start_s, end_s=p.end_s, mode="describe", frame_times_s=[p.start_s], text=text
    )


def run(coro):
    return asyncio.run(coro)


def test_backoff_doubles_to_the_cap_and_jitters_down() -> None:
    policy = FlowSettings(backoff_s=1, backoff_max_s=8, jitter=0.5)
    delays = backoff_delays(policy, random.Random(1))
    got = [next(delays) for _ in range(6)]
    for delay, nominal in zip(got, [1, 2, 4, 8, 8, 8], strict=True):
        assert nominal * 0.5 <= delay <= nominal
    assert len(set(got[3:])) == 3, "capped delays still differ (jitter)"
    exact = backoff_delays(FlowSettings(backoff_s=1, backoff_max_s=8, jitter=0), random.Random(1))
    assert [next(exact) for _ in range(5)] == [1, 2, 4, 8, 8]


def test_transient_errors_are_retried_bad_input_is_not() -> None:
    assert is_transient(BackPressureError(num_queued_requests=1, max_queued_requests=1))
    assert is_transient(EngineUnavailable("restarting")) and is_transient(TimeoutError())
    assert not is_transient(InvalidVideo("corrupt")) and not is_transient(ValueError("bad"))

    calls = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise EngineUnavailable("engine restarting")
        return "ok"

    assert run(with_retry(flaky, FAST, "chunk")) == "ok" and len(calls) == 3

    bad = []

    async def corrupt() -> str:
        bad.append(1)
        raise InvalidVideo("corrupt packet")

    with pytest.raises(InvalidVideo):
        run(with_retry(corrupt, FAST, "chunk"))
    assert bad == [1], "bad input is never retried"


def test_retries_stop_at_the_deadline() -> None:
    policy = FAST.model_copy(update={"deadline_s": 0.2})
    calls = []

    async def dead() -> str:
        calls.append(1)
        raise EngineUnavailable("gone")

    started = time.monotonic()
    with pytest.raises(EngineUnavailable):
        run(with_retry(dead, policy, "chunk"))
    assert time.monotonic() - started < 1.0 and len(calls) >= 3


def test_per_call_timeout_counts_as_transient() -> None:
    policy = FAST.model_copy(update={"chunk_timeout_s": 0.05, "deadline_s": 0.3})
    attempts = []

    async def slow_then_fast() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(10)
        return "done"

    assert run(with_retry(slow_then_fast, policy, "chunk")) == "done" and len(attempts) == 2


def test_infer_chunks_keeps_the_window_and_reports_failures_in_order() -> None:
    plans = [plan(i) for i in range(10)]
    in_flight = peak = 0
    seen: list[int] = []

    async def call(p: ChunkPlan) -> ChunkResult:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01 * (p.index % 3))
        in_flight -= 1
        if p.index == 4:
            raise InvalidVideo("corrupt packet at 41.0 s")
        return ok_result(p)

    async def on_result(r: ChunkResult) -> None:
        seen.append(r.index)

    results = run(infer_chunks(plans, call, mode="describe", policy=FAST, video_id="v", on_result=on_result))
    assert peak == FAST.chunks_in_flight
    assert [r.index for r in results] == list(range(10)) and sorted(seen) == list(range(10))
    assert [r.ok for r in results] == [i != 4 for i in range(10)]
    assert results[4].error == "InvalidVideo: corrupt packet at 41.0 s"
    assert (results[4].start_s, results[4].end_s) == (40.0, 50.0)


def test_one_cancelled_chunk_call_stops_every_other() -> None:
    """Serve cancels a gone client's child calls before the request's own task: one chunk call then ends in
    CancelledError while the caller is not cancelled. Nothing may go on running for nobody after it."""
    plans = [plan(i) for i in range(20)]
    started: list[int] = []
    finished: list[int] = []

    async def call(p: ChunkPlan) -> ChunkResult:
        started.append(p.index)
        if p.index == 1:
            await asyncio.sleep(0.01)
            raise asyncio.CancelledError  # what a child call cancelled by its replica raises here
        await asyncio.sleep(0.05)
        finished.append(p.index)
        return ok_result(p)

    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            await infer_chunks(plans, call, mode="describe", policy=FAST, video_id="v")
        await asyncio.sleep(0.3)  # time for all 20 to run, were any left going

    run(main())
    # The cancelled call's slot may go to one more before the cancel lands; the rest never start.
    assert sorted(started) in ([0, 1, 2], [0, 1, 2, 3]), f"chunks started after one was cancelled: {started}"
    assert finished == [], "the siblings in flight were cancelled, not left to finish"


def test_videos_sharing_slots_stay_within_them_and_a_short_one_is_not_starved() -> None:
    share = FairShare(4)
    in_flight = peak = 0
    started: list[str] = []

    def caller(name: str):
        async def call(p: ChunkPlan) -> ChunkResult:
            nonlocal in_flight, peak
            started.append(name)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return ok_result(p)

        return call

    def analyse(name: str, chunks: int):
        policy = FAST.model_copy(update={"chunks_in_flight": 8})
        plans = [plan(i) for i in range(chunks)]
        return infer_chunks(plans, caller(name), mode="describe", policy=policy, video_id=name, share=share)

    async def main() -> int:
        longs = [asyncio.create_task(analyse(name, 20)) for name in ("long-1", "long-2")]
        await asyncio.sleep(0.015)
        arrived = len(started)  # 16 long chunks want the 4 slots: 12 of them wait, queued before the short one
        assert (await analyse("short", 1))[0].ok
        await asyncio.gather(*longs)
        return arrived

    arrived = run(main())
    assert peak == 4  # two windows of 8, but only the 4 shared slots at once
    # The short video's chunk took the next free slot: only chunks already granted one started before it.
    assert started.index("short") - arrived <= 4, (arrived, started)


def test_the_sync_limit_refuses_before_any_work_and_names_the_job_route() -> None:
    policy = FlowSettings(sync_max_chunks=3)
    check_sync_limit([plan(i) for i in range(3)], policy)
    with pytest.raises(TooLongForSync, match=r"4 chunks.*at most 3.*/v1/jobs"):
        check_sync_limit([plan(i) for i in range(4)], policy)
    assert TooLongForSync.status == 422 and TooLongForSync.alternate == "/v1/jobs"


INFO = VideoInfo(
    container="mov,mp4",
    codec="h264",
    duration_s=20,
    fps=10,
    width=64,
    height=64,
    has_audio=False,
    stream_count=1,
    size_bytes=1,
    sha256="ab" * 32,
)


def finish_with(summarize, options: AnalyzeOptions | None = None, speech: Speech = NO_SPEECH):
    plans = [plan(0), plan(1)]
    return run(
        finish(
            video_id=INFO.video_id,
            info=INFO,
            options=options or AnalyzeOptions(),
            plans=plans,
            results=[ok_result(p, f"scene {p.index}") for p in plans],
            model="m",
            summarize=summarize,
            policy=FAST,
            timings={"fetch_s": 0.5, "probe_s": 0.25},
            started_at=time.time() - 3,
            speech=speech,
        )
    )


def test_finish_assembles_with_summary_and_every_stage_timing() -> None:
    async def summarize(timeline, mode, said):
        assert [e.text for e in timeline] == ["scene 0", "scene 1"] and mode == "describe"
        await asyncio.sleep(0.05)
        return Summary(title="t", summary="s", key_points=[])

    analysis = finish_with(summarize)
    assert analysis.summary is not None and analysis.summary_error is None
    s = analysis.stats
    assert (s.fetch_s, s.probe_s) == (0.5, 0.25)
    assert s.summary_s >= 0.05 and s.wall_s >= 3 + s.summary_s - 0.01, "wall_s runs to after the summary"
    assert analysis.video_id == INFO.sha256[:16]


def test_a_failed_or_cut_off_summary_leaves_the_result_standing() -> None:
    async def cut_off(timeline, mode, said):
        raise OutputError("summary is not valid JSON (answer cut off at max_tokens)")

    analysis = finish_with(cut_off)
    assert analysis.summary is None and [c.ok for c in analysis.chunks] == [True, True]
    assert analysis.summary_error == "OutputError: summary is not valid JSON (answer cut off at max_tokens)"

    async def never_called(timeline, mode):
        raise AssertionError("no summary was asked for")

    assert finish_with(never_called, AnalyzeOptions(aggregate=False)).summary_error is None


SAID = Transcript(
    language="en",
    language_probability=0.9,
    model="whisper-base",
    segments=[TranscriptSegment(start_s=1.0, end_s=2.5, text="Hello.")],
    audio_s=10.0,
    speech_s=1.5,
    asr_s=0.75,
)


def test_finish_gives_the_summary_the_transcript_and_keeps_it() -> None:
    heard = []

    async def summarize(timeline, mode, said):
        heard.extend(said)
        return Summary(title="t", summary="s", key_points=[])

    analysis = finish_with(summarize, speech=Speech(transcript=SAID))
    assert heard == SAID.segments and analysis.transcript == SAID and analysis.transcript_error is None
    assert analysis.stats.asr_s == 0.75


def test_a_failed_transcription_is_reported_not_raised() -> None:
    async def summarize(timeline, mode, said):
        assert said == []
        return Summary(title="t", summary="s", key_points=[])

    analysis = finish_with(summarize, speech=Speech(error="RayActorError: the ASR replica died"))
    assert analysis.transcript is None and analysis.transcript_error == "RayActorError: the ASR replica died"
    assert analysis.summary is not None and analysis.stats.asr_s == 0.0


def test_no_asr_call_without_audio_or_with_audio_off() -> None:
    silent = INFO.model_copy(update={"has_audio": False})
    loud = INFO.model_copy(update={"has_audio": True})
    # No handle at all: any call would raise AttributeError on None.
    assert run(transcribe_video(None, "m", loud, AnalyzeOptions(), FAST)) is NO_SPEECH
    assert run(transcribe_video(object(), "m", silent, AnalyzeOptions(), FAST)) is NO_SPEECH
    assert run(transcribe_video(object(), "m", loud, AnalyzeOptions(audio="off"), FAST)) is NO_SPEECH
