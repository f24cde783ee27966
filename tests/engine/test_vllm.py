"""The vLLM engine (serve_app/engine/vllm.py) on the real tiny Qwen3-VL model, and its conformance to the
`Engine` interface.

The engine runs in its own interpreter (tests/engine/vllm_session.py), not in the pytest process: one
session starts it, analyses a chunk, summarizes, checks schemas and health, shuts it down and prints a
JSON report that the tests below read.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import jsonschema
import pytest

from serve_app.analysis import answer_schema, check_custom_schema, parse_summary, summary_schema
from serve_app.engine import Engine
from serve_app.engine.vllm import VLMEngine
from serve_app.schemas import ChunkPlan, ChunkResult, Summary
from serve_app.video import visual_tokens
from tests.engine.subprocess_session import run_session
from tests.engine.vllm_session import ENFORCEABLE_SCHEMA, TOKEN_BUDGET, UNENFORCEABLE_SCHEMA

ENGINE_METHODS = {"start", "analyze_chunk", "summarize", "chat", "check_schema", "check_health", "shutdown"}
SESSION_TIMEOUT_S = 300  # the session took 62-97 s on 2 cores shared with the integration suite


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_session("tests.engine.vllm_session", tmp_path_factory.mktemp("vllm-session"), SESSION_TIMEOUT_S)


def test_engine_starts_is_healthy_and_shuts_down(report: dict[str, Any]) -> None:
    assert report["engine_class"] == "serve_app.engine.vllm.VLMEngine"  # create_engine picks the vLLM one
    assert isinstance(report["model_id"], str) and report["model_id"]
    assert report["healthy"] is True
    assert report["shutdown"] is True
    assert report["health_after_shutdown"] == {"status": 503, "type": "engine-unavailable"}


def test_chunk_answer_is_ok_and_matches_the_mode_schema(report: dict[str, Any]) -> None:
    result = ChunkResult.model_validate(report["result"])
    assert report["result_ok"] and result.ok, result.error
    assert result.output is not None and result.text is not None
    jsonschema.validate(result.output, answer_schema("screen_share"))
    assert json.loads(result.text) == result.output  # forced JSON: the raw answer is the parsed one
    assert result.mode == "screen_share" and result.index == 0
    assert result.completion_tokens > 0 and result.infer_s > 0


def test_budgeted_visual_tokens_are_what_vllm_built(report: dict[str, Any]) -> None:
    [plan] = [ChunkPlan.model_validate(p) for p in report["plans"]]
    result = ChunkResult.model_validate(report["result"])
    chunk = report["chunk"]
    assert result.decode is not None
    kept = result.decode.frames_kept
    assert kept >= 2 and kept % 2 == 0
    assert chunk["frames_shape"] == [kept, plan.height, plan.width, 3]
    expected = visual_tokens(kept, plan.height, plan.width)
    # The planner's count, the decoder's count and the <|video_pad|> tokens in vLLM's prompt agree.
    assert result.visual_tokens == expected == result.decode.visual_tokens == chunk["stats"]["visual_tokens"]
    assert plan.visual_tokens == visual_tokens(plan.max_frames, plan.height, plan.width) <= TOKEN_BUDGET
    assert result.prompt_tokens > result.visual_tokens  # chat template, instruction, timestamps around them


def test_frame_times_are_the_decoded_ones(report: dict[str, Any]) -> None:
    result = ChunkResult.model_validate(report["result"])
    times = report["chunk"]["frame_times_s"]
    assert result.frame_times_s == times
    assert result.decode is not None and len(times) == result.decode.frames_kept
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= result.end_s


def test_summary_parses(report: dict[str, Any]) -> None:
    summary = Summary.model_validate(report["summary"])
    assert summary.text is not None
    answer = parse_summary(summary.text)
    jsonschema.validate(json.loads(summary.text), summary_schema())
    assert (answer.title, answer.summary, answer.key_points) == (summary.title, summary.summary, summary.key_points)
    assert summary.prompt_tokens > 0 and summary.completion_tokens > 0


def test_check_schema_refuses_what_xgrammar_cannot_enforce(report: dict[str, Any]) -> None:
    # Both pass the cheap local checks: only the engine knows its backend cannot enforce one of them.
    check_custom_schema(UNENFORCEABLE_SCHEMA)
    check_custom_schema(ENFORCEABLE_SCHEMA)
    assert report["xgrammar_unsupported"] == {"unenforceable": True, "enforceable": False}
    assert report["unenforceable"]["status"] == 422
    assert report["unenforceable"]["type"] == "invalid-options"
    assert report["enforceable"] == "accepted"


def test_vlm_engine_conforms_to_the_engine_interface() -> None:
    # Runs without vLLM: the implementation module imports it lazily.
    members = {name for name, value in vars(Engine).items() if inspect.isfunction(value) and not name.startswith("_")}
    assert members == ENGINE_METHODS
    assert set(inspect.get_annotations(Engine)) == {"model_id"}
    for name in sorted(members):
        protocol_fn, impl_fn = getattr(Engine, name), getattr(VLMEngine, name)
        assert inspect.signature(impl_fn) == inspect.signature(protocol_fn), name
        assert inspect.iscoroutinefunction(impl_fn) == inspect.iscoroutinefunction(protocol_fn), name
    assert "self.model_id =" in inspect.getsource(VLMEngine.__init__)
