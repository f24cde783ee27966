"""VLM: one vLLM Qwen3-VL engine per replica (GPU in production, CPU build here).

Continuous batching happens inside vLLM, so a replica takes many requests at
once (`max_ongoing_requests`). Serve's health check calls `check_health`; a
dead engine makes Serve replace the replica.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ray import serve

from serve_app.chat.answer import ChatPrompt
from serve_app.config import ModelSettings
from serve_app.deployments.chunker import DecodeFailure
from serve_app.engine import ChatDelta, create_engine
from serve_app.memory import IdleTrim
from serve_app.observability.logs import route_to_serve
from serve_app.schemas import ChunkResult, ChunkTask, Summary, TimelineEntry, TranscriptSegment
from serve_app.video import SampledChunk

logger = logging.getLogger(__name__)


@serve.deployment(name="VLM", health_check_period_s=10, health_check_timeout_s=30)
class VLM:
    async def __init__(self, model: ModelSettings, token_budget: int) -> None:
        route_to_serve()
        self.engine = create_engine(model, token_budget)
        self.running = 0  # engine calls in progress
        self.trim = IdleTrim(lambda: self.running == 0)  # the processor's tensors' heap, once idle
        await self.engine.start()

    @contextlib.contextmanager
    def _work(self) -> Iterator[None]:
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self.trim.touch()

    async def analyze_chunk(
        self, chunk: SampledChunk | DecodeFailure, task: ChunkTask, speech: list[TranscriptSegment] | None = None
    ) -> ChunkResult:
        if isinstance(chunk, DecodeFailure):
            return ChunkResult.failed(chunk.plan, task.mode, f"decode failed: {chunk.error}")
        with self._work():
            result = await self.engine.analyze_chunk(chunk, task, speech or [])
        # One line a chunk; Serve adds the id of the request (or job) it belongs to.
        logger.info(
            "video %s chunk %d: %d frames, %d visual / %d prompt / %d completion tokens, %.2fs%s",
            task.video_id,
            result.index,
            len(result.frame_times_s),
            result.visual_tokens,
            result.prompt_tokens,
            result.completion_tokens,
            result.infer_s,
            f", error: {result.error}" if result.error else "",
        )
        return result

    async def summarize(
        self, entries: list[TimelineEntry], mode: str, speech: list[TranscriptSegment] | None = None
    ) -> Summary:
        with self._work():
            return await self.engine.summarize(entries, mode, speech or [])

    async def chat(
        self, prompt: ChatPrompt, schema: dict[str, Any] | None, sampling: dict[str, Any]
    ) -> AsyncIterator[ChatDelta]:
        """Streamed (`handle.options(stream=True)`): the answer as it grows, then its token counts."""
        with self._work():
            async for delta in self.engine.chat(prompt, schema, sampling):
                yield delta

    def check_schema(self, schema: dict[str, Any]) -> None:
        self.engine.check_schema(schema)

    def model_id(self) -> str:
        return self.engine.model_id

    async def check_health(self) -> None:
        await self.engine.check_health()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
