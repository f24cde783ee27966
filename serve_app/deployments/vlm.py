"""VLM: one vLLM Qwen3-VL engine per replica (GPU in production, CPU build here).

Continuous batching happens inside vLLM, so a replica takes many requests at
once (`max_ongoing_requests`). Serve's health check calls `check_health`; a
dead engine makes Serve replace the replica.
"""

from __future__ import annotations

import logging
from typing import Any

from ray import serve

from serve_app.config import ModelSettings
from serve_app.deployments.chunker import DecodeFailure
from serve_app.engine import create_engine
from serve_app.schemas import ChunkResult, ChunkTask, Summary, TimelineEntry, TranscriptSegment
from serve_app.video import SampledChunk

logger = logging.getLogger(__name__)


@serve.deployment(name="VLM", health_check_period_s=10, health_check_timeout_s=30)
class VLM:
    async def __init__(self, model: ModelSettings, token_budget: int) -> None:
        self.engine = create_engine(model, token_budget)
        await self.engine.start()

    async def analyze_chunk(
        self, chunk: SampledChunk | DecodeFailure, task: ChunkTask, speech: list[TranscriptSegment] | None = None
    ) -> ChunkResult:
        if isinstance(chunk, DecodeFailure):
            return ChunkResult.failed(chunk.plan, task.mode, f"decode failed: {chunk.error}")
        return await self.engine.analyze_chunk(chunk, task, speech or [])

    async def summarize(
        self, entries: list[TimelineEntry], mode: str, speech: list[TranscriptSegment] | None = None
    ) -> Summary:
        return await self.engine.summarize(entries, mode, speech or [])

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
