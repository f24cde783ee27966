"""Chunker: probes a video, plans its chunks and decodes one chunk per call (CPU).

Stateless: any replica can take any chunk, so chunks of one video decode in
parallel across replicas, on any node. Each call gets the media's store URI
(opened here, on this node: `serve_app.store.media`) and the plan, and returns
frames that go straight to the VLM deployment.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ray import serve

from serve_app.config import VideoSettings
from serve_app.errors import ReelserveError, StoreNotShared
from serve_app.schemas import AnalyzeOptions, ChunkPlan, VideoInfo
from serve_app.store.media import MediaCache, media_path
from serve_app.video import SampledChunk, chunking_options, decode_chunk, plan_chunks, probe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeFailure:
    """A chunk that could not be decoded; reported in the result, not raised."""

    plan: ChunkPlan
    error: str


@serve.deployment(name="Chunker")
class Chunker:
    def __init__(self, video: VideoSettings, cache: MediaCache) -> None:
        self.video = video
        self.cache = cache

    async def plan(self, media: str, options: AnalyzeOptions) -> tuple[VideoInfo, list[ChunkPlan]]:
        info = await asyncio.to_thread(lambda: probe(media_path(media, self.cache), self.video))
        return info, plan_chunks(info, chunking_options(options, self.video), self.video)

    async def decode(self, media: str, plan: ChunkPlan) -> SampledChunk | DecodeFailure:
        def run() -> SampledChunk:
            return decode_chunk(media_path(media, self.cache), plan, self.video.decode_threads)

        try:
            return await asyncio.to_thread(run)
        except StoreNotShared:
            raise  # the deployment is misconfigured: the request fails with that, not one chunk
        except ReelserveError as exc:
            logger.warning("chunk %d of %s failed to decode: %s", plan.index, media, exc.detail)
            return DecodeFailure(plan=plan, error=exc.detail)
