"""Chunker: probes a video, plans its chunks and decodes one chunk per call (CPU).

Stateless: any replica can take any chunk, so chunks of one video decode in
parallel across replicas. Each call gets the media path and the plan, and
returns frames that go straight to the VLM deployment.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ray import serve

from serve_app.config import VideoSettings
from serve_app.errors import ReelserveError
from serve_app.schemas import AnalyzeOptions, ChunkPlan, VideoInfo
from serve_app.video import SampledChunk, chunking_options, decode_chunk, plan_chunks, probe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeFailure:
    """A chunk that could not be decoded; reported in the result, not raised."""

    plan: ChunkPlan
    error: str


@serve.deployment(name="Chunker")
class Chunker:
    def __init__(self, video: VideoSettings) -> None:
        self.video = video

    async def plan(self, path: str, options: AnalyzeOptions) -> tuple[VideoInfo, list[ChunkPlan]]:
        info = await asyncio.to_thread(probe, path, self.video)
        return info, plan_chunks(info, chunking_options(options, self.video), self.video)

    async def decode(self, path: str, plan: ChunkPlan) -> SampledChunk | DecodeFailure:
        try:
            return await asyncio.to_thread(decode_chunk, path, plan, self.video.decode_threads)
        except ReelserveError as exc:
            logger.warning("chunk %d of %s failed to decode: %s", plan.index, path, exc.detail)
            return DecodeFailure(plan=plan, error=exc.detail)
