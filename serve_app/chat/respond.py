"""A prepared question as the OpenAI SDK reads it: one `chat.completion`, or an SSE stream of
`chat.completion.chunk`s ending in `data: [DONE]`.

While the video is still being analysed a stream sends SSE comments (`: analysing ...`, every keep-alive
interval; SDKs skip them) so that proxies and clients see a live connection. An error after the stream
has started is sent as an OpenAI error event (`data: {"error": ...}`), which the SDK raises as APIError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from serve_app.chat import wire
from serve_app.chat.service import Answered, ChatService, Question, Waiting
from serve_app.errors import ReelserveError

__all__ = ["chat_completion", "chat_stream"]

logger = logging.getLogger(__name__)


def _extension(question: Question, answered: Answered) -> dict[str, Any]:
    """reelserve's fields of a response: the citations, and which video and analysis the answer is from."""
    return {
        "citations": [c.model_dump() for c in answered.citations],
        "reelserve": {
            "video_id": question.video_id,
            "job_id": question.job_id,
            "analysis": None if not question.about_video else ("reused" if question.reused else "new"),
        },
    }


async def chat_completion(service: ChatService, question: Question) -> dict[str, Any]:
    content, answered = "", None
    async for item in service.run(question):
        if isinstance(item, str):
            content += item
        elif isinstance(item, Answered):
            answered = item
    assert answered is not None
    return wire.completion(
        id=question.id,
        created=question.created,
        model=question.model,
        content=answered.content,
        finish_reason=answered.finish_reason,
        usage=wire.usage(answered.prompt_tokens, answered.completion_tokens),
        extra=_extension(question, answered),
    )


def _sse(body: dict[str, Any] | str) -> bytes:
    data = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def chat_stream(service: ChatService, question: Question, keepalive_s: float) -> AsyncIterator[bytes]:
    base = {"id": question.id, "created": question.created, "model": question.model}
    include_usage = bool(question.request.stream_options and question.request.stream_options.include_usage)
    started, last_sign = False, time.monotonic()
    try:
        async for item in service.run(question):
            if isinstance(item, Waiting):
                if time.monotonic() - last_sign >= keepalive_s:
                    done, total = item.job.progress.chunks_done, item.job.progress.chunks_total
                    yield f": analysing the video (job {item.job.id}, {done}/{total} chunks)\n\n".encode()
                    last_sign = time.monotonic()
                continue
            if not started:  # the role first, as OpenAI's streams do
                yield _sse(wire.chunk(**base, delta={"role": "assistant", "content": ""}))
                started = True
            if isinstance(item, str):
                yield _sse(wire.chunk(**base, delta={"content": item}))
                continue
            usage = wire.usage(item.prompt_tokens, item.completion_tokens)
            yield _sse(wire.chunk(**base, delta={}, finish_reason=item.finish_reason, extra=_extension(question, item)))
            if include_usage:
                yield _sse(wire.chunk(**base, delta=None, usage=usage))
    except asyncio.CancelledError:
        raise  # the client went away: the generation is aborted with the task
    except Exception as exc:
        cause = getattr(exc, "cause", None)
        err = cause if isinstance(cause, ReelserveError) else exc
        if isinstance(err, ReelserveError):
            body = wire.error(err.status, err.type, err.detail)
        else:
            logger.exception("chat %s: the answer failed", question.id)
            body = wire.error(500, "internal", f"the answer failed; quote {question.id} when reporting it")
        yield _sse(body)
    yield _sse("[DONE]")
