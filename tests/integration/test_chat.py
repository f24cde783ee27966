"""The OpenAI-compatible chat endpoint through the real stack, driven by the official `openai` SDK.

A question about a video URL (served from 127.0.0.1) analyses the whole video once, as a job, and answers
with citations inside the video and inside the chunks used; the next question reuses the stored analysis
(no new job, no decode); streamed answers, `json_schema` answers, `models.list()`, and errors the SDK
raises as its own exception classes (OpenAI-shaped bodies), with the service healthy after them.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from serve_app.schemas import VideoAnalysis
from tests.integration.replicas import chunker_stats, decodes_since, wait_until_idle

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

QUESTION = "When does the picture change, and what is on screen then?"
MARK = re.compile(r"\[(\d{2}):(\d{2})(?:-(\d{2}):(\d{2}))?\]")
OPTIONS = {"mode": "ui", "chunk_s": 10, "overlap_s": 0}  # bounded answers (the tiny model never ends free text)


@pytest.fixture(scope="module")
def client(server: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=api_key, max_retries=0, timeout=600)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


@pytest.fixture(scope="module")
def video_url(media_server: tuple[str, Path], clip_25s_webm: Path) -> str:
    base, root = media_server
    shutil.copy(clip_25s_webm, root / "chat-clip.webm")
    return f"{base}/chat-clip.webm"


def ask(url: str, text: str = QUESTION) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": text}]}
    ]


def jobs_made(http: httpx.Client) -> int:
    """Jobs made so far: every analysis a question starts is a job."""
    return len(http.get("/v1/jobs", params={"limit": 500}).json()["jobs"])


@pytest.fixture(scope="module")
def first(client: openai.OpenAI, model: str, video_url: str) -> tuple[openai.types.chat.ChatCompletion, float]:
    started = time.perf_counter()
    completion = client.chat.completions.create(model=model, messages=ask(video_url), max_tokens=96, extra_body=OPTIONS)
    return completion, time.perf_counter() - started


def result_of(http: httpx.Client, job_id: str) -> VideoAnalysis:
    response = http.get(f"/v1/jobs/{job_id}/result")
    assert response.status_code == 200, response.text
    return VideoAnalysis.model_validate(response.json())


def assert_cited_inside(completion: openai.types.chat.ChatCompletion, analysis: VideoAnalysis) -> None:
    extra = completion.model_extra or {}
    citations = extra["citations"]
    assert citations, extra  # every answer about a video points at where it is from
    chunks = {c.index: c for c in analysis.chunks if c.ok}
    for cited in citations:
        chunk = chunks[cited["chunk"]]
        assert 0 <= cited["start_s"] <= cited["end_s"] <= analysis.video.duration_s
        assert chunk.start_s <= cited["start_s"] <= cited["end_s"] <= chunk.end_s
    for match in MARK.finditer(completion.choices[0].message.content or ""):
        at = int(match[1]) * 60 + int(match[2])
        assert any(c.start_s <= at <= c.end_s for c in chunks.values()), match[0]


def test_models_list_names_the_served_model(client: openai.OpenAI, http: httpx.Client, model: str) -> None:
    assert [m.id for m in client.models.list()] == [model] == [http.get("/readyz").json()["model"]]


def test_a_question_about_a_new_video_runs_over_the_whole_video_and_cites_times(
    first: tuple[openai.types.chat.ChatCompletion, float], http: httpx.Client
) -> None:
    completion, seconds = first
    extra = completion.model_extra or {}
    assert extra["reelserve"]["analysis"] == "new" and extra["reelserve"]["job_id"], extra
    analysis = result_of(http, extra["reelserve"]["job_id"])
    assert analysis.video_id == extra["reelserve"]["video_id"]
    assert [c.index for c in analysis.chunks] == [0, 1, 2]  # 25 s in 10 s chunks: all of it, not 32 frames
    assert analysis.request.mode == "ui" and analysis.request.chunk_s == 10
    assert_cited_inside(completion, analysis)
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    logger.warning(f"first question (analysis + answer): {seconds:.1f}s")


def test_asking_again_reuses_the_analysis_without_decoding(
    client: openai.OpenAI, model: str, video_url: str, first: tuple[openai.types.chat.ChatCompletion, float],
    http: httpx.Client,
) -> None:  # fmt: skip
    job_id = (first[0].model_extra or {})["reelserve"]["job_id"]
    analysis = result_of(http, job_id)
    jobs_before, decodes_before = jobs_made(http), wait_until_idle()
    for url in (video_url, f"reelserve://jobs/{job_id}", f"reelserve://videos/{analysis.video_id}"):
        started = time.perf_counter()
        again = client.chat.completions.create(
            model=model, messages=ask(url, "What is on screen at the end?"), max_tokens=64, extra_body={"mode": "ui"}
        )
        seconds = time.perf_counter() - started
        reel = (again.model_extra or {})["reelserve"]
        assert reel["analysis"] == "reused" and reel["video_id"] == analysis.video_id, reel
        assert_cited_inside(again, analysis)
        logger.warning(f"follow-up via {url.split(':')[0]}: {seconds:.1f}s (first: {first[1]:.1f}s)")
        assert seconds < first[1]
    assert jobs_made(http) == jobs_before  # no new analysis, so no vision call
    assert decodes_since(decodes_before, chunker_stats()) == 0  # and nothing decoded


def test_a_streamed_answer_arrives_in_deltas_then_citations_and_usage(
    client: openai.OpenAI, model: str, video_url: str, first: tuple[openai.types.chat.ChatCompletion, float],
    http: httpx.Client,
) -> None:  # fmt: skip
    analysis = result_of(http, (first[0].model_extra or {})["reelserve"]["job_id"])
    stream = client.chat.completions.create(
        model=model,
        messages=ask(video_url),
        max_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"mode": "ui"},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1
    final = openai.types.chat.ChatCompletion.model_validate(
        {
            "id": finals[0].id, "object": "chat.completion", "created": finals[0].created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            **(finals[0].model_extra or {}),
        }
    )  # fmt: skip
    assert_cited_inside(final, analysis)


def test_a_json_schema_answer_follows_the_schema(
    client: openai.OpenAI, model: str, video_url: str, first: tuple[openai.types.chat.ChatCompletion, float]
) -> None:
    schema = {
        "type": "object",
        "properties": {"changes": {"type": "integer", "minimum": 0, "maximum": 50}, "seen": {"type": "boolean"}},
        "required": ["changes", "seen"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model=model,
        messages=ask(video_url, "How many times does the picture change?"),
        max_tokens=64,
        response_format={"type": "json_schema", "json_schema": {"name": "changes", "schema": schema}},
        extra_body={"mode": "ui"},
    )
    assert completion.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), schema)
    assert (completion.model_extra or {})["citations"]


def test_a_conversation_without_a_video_is_plain_chat(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_completion_tokens=8
    )
    assert completion.usage is not None and completion.usage.completion_tokens <= 8
    assert (completion.model_extra or {})["citations"] == []


def test_errors_are_the_sdks_own_exceptions_and_the_service_stays_healthy(
    client: openai.OpenAI, model: str, server: str, http: httpx.Client
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, messages=ask("http://ten.test/private.mp4"))
    assert refused.value.code == "url-forbidden" and refused.value.status_code == 400
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model=model, messages=ask("reelserve://jobs/x"), extra_body={"tools_x": 1})
    assert unknown.value.code == "invalid-options" and unknown.value.param == "tools_x"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [{"type": "text", "text": "a"}]}] * 2 + ask("a") + ask("b"),
        )
    with pytest.raises(openai.NotFoundError) as no_model:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert no_model.value.code == "model-not-found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=model, messages=ask("reelserve://videos/" + "0" * 64))
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="wrong", max_retries=0).models.list()
    assert http.get("/readyz").status_code == 200
