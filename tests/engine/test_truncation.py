"""Answers that fit, and answers that do not: the cut-off path of serve_app/engine/vllm.py on the real
engine, with the tiny Qwen3-VL variant that never closes anything early (`answers="never_closing"`).

The engine runs in its own interpreter (`python -m tests.engine.test_truncation WORK_DIR`, started by the
`report` fixture), never in the pytest process; it prints one `REPORT {json}` line the tests read. One
session: build the variant, start the engine, and

- analyse a chunk in screen_share, free-text describe and a small bounded custom schema with a request
  max_tokens of 32 (below their budgets): cut off, retried once with 64, cut off again: the chunk's error
  says so and counts 96 completion tokens (never a silent truncation, free text included);
- analyse the next chunk under the custom schema with no max_tokens: the first attempt gets the schema's
  `answer_token_budget`, and the model's longest possible answer fits it;
- `serve_app.flow.finish` over those two custom chunks with `model.summary_max_tokens` 48: the summary
  call raises OutputError after one retry, finish turns it into `summary_error`, the video completes.

The pure pieces (first and retry budgets, the retry logic over a stubbed `_generate`) are tested here
without vLLM.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from serve_app.analysis.modes import answer_token_budget, summary_token_budget
from serve_app.config import ModelSettings
from serve_app.engine.vllm import Generation, VLMEngine, first_max_tokens, retry_max_tokens
from serve_app.schemas import ChunkResult, VideoAnalysis
from tests.engine.subprocess_session import REPORT_PREFIX, run_session

TOKEN_BUDGET = 256
SESSION_TIMEOUT_S = 900  # ~1-2 min on an idle 2-core box; far more while other suites share the cores
CHUNK_MAX_TOKENS = 32  # the request's max_tokens in the cut-off cases (screen_share's budget is ~2k)
SUMMARY_MAX_TOKENS = 48  # model.summary_max_tokens in the session (the summary schema's budget is ~1.4k)
#: Small and bounded everywhere: its longest answer is ~150 characters, cheap to generate in full.
FIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 24},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
        "at_s": {"type": "number", "minimum": 0, "maximum": 600},
        "count": {"type": "integer", "minimum": 0, "maximum": 99},
        "kind": {"enum": ["slide", "terminal"]},
        "ok": {"type": "boolean"},
    },
    "required": ["title", "tags", "at_s", "count", "kind", "ok"],
    "additionalProperties": False,
}


def cut_off(first: int, retry: int) -> str:
    """The error text of an answer cut off on both attempts (each one stopped at its max_tokens)."""
    return (
        f"answer cut off at {first} tokens, and again at {retry} after one retry with max_tokens {retry} "
        f"({first + retry} completion tokens counted)"
    )


# -- the session (runs in its own interpreter) ----------------------------------------------------------


async def session(work: Path) -> dict[str, Any]:
    from serve_app.analysis import OutputError
    from serve_app.config import FlowSettings, VideoSettings
    from serve_app.devtools.synthetic import write_video
    from serve_app.devtools.tiny_model import build_tiny_model
    from serve_app.engine import create_engine
    from serve_app.flow import finish
    from serve_app.schemas import AnalyzeOptions, Summary, TimelineEntry, TranscriptSegment
    from serve_app.video import chunking_options, decode_chunk, plan_chunks, probe

    started = time.perf_counter()
    model_dir = build_tiny_model(work / "tiny-never-closing", answers="never_closing")
    report: dict[str, Any] = {"build_s": round(time.perf_counter() - started, 1)}
    clip = work / "clip.mp4"
    write_video(clip, duration_s=8.0, fps=8.0, width=320, height=192)
    video = VideoSettings(token_budget=TOKEN_BUDGET, min_frame_pixels=32 * 32, decode_threads=1)
    info = probe(clip, video)
    model = ModelSettings(model=str(model_dir), summary_max_tokens=SUMMARY_MAX_TOKENS)
    chunking = {"sampling": "uniform", "fps": 1.0, "chunk_s": 4, "overlap_s": 0}
    fit = AnalyzeOptions(mode="custom", prompt="Name what is on screen.", schema=FIT_SCHEMA, **chunking)
    plans = plan_chunks(info, chunking_options(fit, video), video)  # two chunks of 4 s
    chunks = [decode_chunk(clip, plan, threads=1) for plan in plans]
    calls = {  # name: (request, chunk)
        "screen_share": (AnalyzeOptions(mode="screen_share", max_tokens=CHUNK_MAX_TOKENS, **chunking), 0),
        "describe": (AnalyzeOptions(mode="describe", max_tokens=CHUNK_MAX_TOKENS, **chunking), 0),
        "custom": (fit.model_copy(update={"max_tokens": CHUNK_MAX_TOKENS}), 0),
        "fit": (fit, 1),  # no max_tokens: the schema's budget
    }
    engine = create_engine(model, TOKEN_BUDGET)
    started = time.perf_counter()
    await engine.start()
    report["start_s"] = round(time.perf_counter() - started, 1)
    try:
        results: dict[str, ChunkResult] = {}
        for name, (options, index) in calls.items():
            task = options.to_chunk_task(info.video_id, default_max_tokens=model.max_tokens)
            started = time.perf_counter()
            results[name] = await engine.analyze_chunk(chunks[index], task)
            report[f"{name}_s"] = round(time.perf_counter() - started, 1)
        report["chunks"] = {name: r.model_dump() for name, r in results.items()}

        # The video of the custom request: chunk 0 cut off, chunk 1 whole. Its summary call raises;
        # finish (the flow's last step) turns that into summary_error.
        raised: list[BaseException] = []

        async def summarize(entries: list[TimelineEntry], mode: str, said: list[TranscriptSegment]) -> Summary:
            try:
                return await engine.summarize(entries, mode, said)
            except Exception as exc:
                raised.append(exc)
                raise

        started = time.perf_counter()
        analysis = await finish(
            video_id=info.video_id,
            info=info,
            options=fit,
            plans=plans,
            results=[results["custom"], results["fit"]],
            model=engine.model_id,
            summarize=summarize,
            policy=FlowSettings(),
            timings={},
            started_at=time.time(),
        )
        report["finish_s"] = round(time.perf_counter() - started, 1)
        report["summary_raised"] = [
            {"type": type(e).__name__, "output_error": isinstance(e, OutputError), "message": str(e)} for e in raised
        ]
        report["analysis"] = analysis.model_dump(mode="json")
    finally:
        engine.shutdown()
    return report


def main() -> None:
    report = asyncio.run(session(Path(sys.argv[1])))
    sys.stdout.write(REPORT_PREFIX + json.dumps(report) + "\n")
    sys.stdout.flush()


# -- the tests -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    started = time.perf_counter()
    data = run_session("tests.engine.test_truncation", tmp_path_factory.mktemp("truncation"), SESSION_TIMEOUT_S)
    data["session_s"] = round(time.perf_counter() - started, 1)
    return data


@pytest.mark.parametrize("name", ["screen_share", "describe", "custom"])
def test_a_cut_off_chunk_is_retried_once_then_fails_with_a_clear_error(report: dict[str, Any], name: str) -> None:
    result = ChunkResult.model_validate(report["chunks"][name])
    retry = 2 * CHUNK_MAX_TOKENS
    assert result.attempts == [CHUNK_MAX_TOKENS, retry]  # exactly one retry, at twice the budget
    assert result.error == cut_off(CHUNK_MAX_TOKENS, retry)
    assert result.completion_tokens == CHUNK_MAX_TOKENS + retry  # both attempts counted
    assert result.output is None and result.text  # the retry's raw (incomplete) answer is kept
    if name != "describe":
        assert result.text.startswith("{") and not result.text.endswith("}")


def test_the_longest_valid_answer_fits_its_schema_budget(report: dict[str, Any]) -> None:
    result = ChunkResult.model_validate(report["chunks"]["fit"])
    budget = answer_token_budget("custom", FIT_SCHEMA)
    assert budget is not None and budget < ModelSettings().max_tokens  # so the first attempt gets the budget
    assert result.ok, result.error
    assert result.attempts == [budget]  # one call, no retry
    assert result.output is not None and result.text is not None
    # The variant never closes early: every string is at its maxLength, every list at its maxItems...
    assert len(result.output["title"]) == 24
    assert len(result.output["tags"]) == 3 and all(len(tag) == 8 for tag in result.output["tags"])
    # ...and that longest answer still fits the budget (in tokens and, here one a character, in text).
    assert result.completion_tokens <= budget and len(result.text) < budget


def test_a_cut_off_summary_raises_output_error_after_one_retry(report: dict[str, Any]) -> None:
    assert SUMMARY_MAX_TOKENS < summary_token_budget()
    retry = 2 * SUMMARY_MAX_TOKENS
    assert report["summary_raised"] == [
        {"type": "OutputError", "output_error": True, "message": "summary " + cut_off(SUMMARY_MAX_TOKENS, retry)}
    ]


def test_finish_completes_the_video_with_summary_error(report: dict[str, Any]) -> None:
    analysis = VideoAnalysis.model_validate(report["analysis"])
    retry = 2 * SUMMARY_MAX_TOKENS
    assert analysis.summary is None
    assert analysis.summary_error == "OutputError: summary " + cut_off(SUMMARY_MAX_TOKENS, retry)
    # The video completes: both chunks, the cut-off one with its error, the whole one in the timeline.
    assert [c.index for c in analysis.chunks] == [0, 1]
    assert analysis.chunks[0].error == cut_off(CHUNK_MAX_TOKENS, 2 * CHUNK_MAX_TOKENS) and analysis.chunks[1].ok
    assert analysis.timeline and {e.chunk_index for e in analysis.timeline} == {1}
    fit_tokens = report["chunks"]["fit"]["completion_tokens"]
    assert analysis.stats.chunks_failed == 1
    assert analysis.stats.completion_tokens == 3 * CHUNK_MAX_TOKENS + fit_tokens  # the retry counted


# -- without vLLM ----------------------------------------------------------------------------------------


def test_first_budget_is_the_schema_bound_capped_by_the_request() -> None:
    assert first_max_tokens(2560, 2035) == 2035  # the longest valid answer, no more
    assert first_max_tokens(32, 2035) == 32  # a request's smaller max_tokens wins
    assert first_max_tokens(2560, None) == 2560  # free text: the cap


def test_retry_budget_is_twice_the_first_capped_by_the_context() -> None:
    assert retry_max_tokens(32, prompt_tokens=400, max_model_len=16_384) == 64
    assert retry_max_tokens(2048, prompt_tokens=13_000, max_model_len=16_384) == 3384
    assert retry_max_tokens(2048, prompt_tokens=14_336, max_model_len=16_384) == 2048  # no room: no retry


def generation(text: str, completion_tokens: int, finish_reason: str, prompt_tokens: int = 100) -> Generation:
    return Generation(
        text=text,
        prompt_tokens=prompt_tokens,
        visual_tokens=0,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason,
        seconds=0.5,
        attempts=[],
    )


def stub_engine(outputs: list[Generation], max_model_len: int = 16_384) -> tuple[VLMEngine, list[int]]:
    """A VLMEngine whose `_generate` returns `outputs` in turn and records each max_tokens (no vLLM)."""
    engine = VLMEngine(ModelSettings(model="/nonexistent/model", max_model_len=max_model_len), 256)
    calls: list[int] = []

    async def fake(instruction: str, schema: Any, max_tokens: int, video: Any = None) -> Generation:
        calls.append(max_tokens)
        gen = outputs[len(calls) - 1]
        gen.attempts = [max_tokens]
        return gen

    engine._generate = fake  # type: ignore[method-assign]
    return engine, calls


def test_a_retry_that_fits_is_an_answer_with_both_attempts_counted() -> None:
    engine, calls = stub_engine([generation('{"a": "xx', 10, "length"), generation('{"a": "xxx"}', 12, "stop")])
    gen = asyncio.run(engine._generate_fitted("hi", {"type": "object"}, 10))
    assert calls == [10, 20] and gen.attempts == [10, 20]
    assert gen.cut_off is None and gen.text == '{"a": "xxx"}'
    assert gen.completion_tokens == 22 and gen.seconds == 1.0


def test_json_complete_at_the_limit_is_not_retried() -> None:
    engine, calls = stub_engine([generation('{"a": "xx"}', 10, "length")])
    gen = asyncio.run(engine._generate_fitted("hi", {"type": "object"}, 10))
    assert calls == [10] and gen.cut_off is None


def test_no_room_in_the_context_means_a_clear_error_without_a_retry() -> None:
    engine, calls = stub_engine([generation("xxxx", 24, "length", prompt_tokens=1000)], max_model_len=1024)
    gen = asyncio.run(engine._generate_fitted("hi", None, 64))
    assert calls == [64]
    assert gen.cut_off == (
        "answer cut off at 24 tokens, with no room for a retry (the prompt's 1000 tokens leave 24 of "
        "max_model_len 1024)"
    )


if __name__ == "__main__":
    main()
