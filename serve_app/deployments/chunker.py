"""Chunker: probes a video, plans its chunks and decodes one chunk per call (CPU).

Stateless: any replica can take any chunk, so chunks of one video decode in
parallel across replicas, on any node. Each call gets the media's store URI
(opened here, on this node: `serve_app.store.media`) and the plan, and returns
frames that go straight to the VLM deployment.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

from ray import serve

from serve_app.config import VideoSettings
from serve_app.errors import ReelserveError, StoreNotShared
from serve_app.memory import IdleTrim
from serve_app.observability.logs import route_to_serve
from serve_app.schemas import AnalyzeOptions, ChunkPlan, VideoInfo
from serve_app.store.jobs import JobStore, ThumbnailTarget
from serve_app.store.media import MediaCache, media_path
from serve_app.video import SampledChunk, chunking_options, decode_chunk, plan_file
from serve_app.video.packets import packet_params
from serve_app.video.thumbnails import kept_frames, thumbnail_jpeg

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeFailure:
    """A chunk that could not be decoded; reported in the result, not raised."""

    plan: ChunkPlan
    error: str


@serve.deployment(name="Chunker")
class Chunker:
    def __init__(self, video: VideoSettings, cache: MediaCache) -> None:
        route_to_serve()
        self.video = video
        self.packets = packet_params(video)
        self.cache = cache
        self.stores: dict[str, JobStore] = {}  # by URI: a store client is made once per replica
        # `stats`: decode threads started and running; shows whether work goes on for a request that is gone.
        self.decodes_started = self.decodes_running = 0
        self.counting = threading.Lock()
        self.trim = IdleTrim(lambda: self.decodes_running == 0)  # the frames' heap, once idle

    async def plan(self, media: str, options: AnalyzeOptions) -> tuple[VideoInfo, list[ChunkPlan]]:
        return await asyncio.to_thread(
            lambda: plan_file(media_path(media, self.cache), chunking_options(options, self.video), self.video)
        )

    def _store(self, uri: str) -> JobStore:
        if uri not in self.stores:
            self.stores[uri] = JobStore(uri)
        return self.stores[uri]

    async def decode(
        self, media: str, plan: ChunkPlan, thumbs: ThumbnailTarget | None = None
    ) -> SampledChunk | DecodeFailure:
        """The chunk's frames; with `thumbs` (a job's), a thumbnail of each kept frame is stored too, made here
        from the frames in memory (serve_app.video.thumbnails): no second decode, and no frames sent back."""

        def run() -> SampledChunk:
            with self.counting:
                self.decodes_started += 1
                self.decodes_running += 1
            try:
                chunk = decode_chunk(media_path(media, self.cache), plan, self.video.decode_threads, self.packets)
            finally:
                with self.counting:
                    self.decodes_running -= 1
            if thumbs is not None:
                store = self._store(thumbs.store_uri)
                for time_s, frame in kept_frames(chunk):
                    store.save_thumbnail(thumbs.job_id, time_s, thumbnail_jpeg(frame))
            return chunk

        try:
            return await asyncio.to_thread(run)
        except StoreNotShared:
            raise  # the deployment is misconfigured: the request fails with that, not one chunk
        except ReelserveError as exc:
            logger.warning("chunk %d of %s failed to decode: %s", plan.index, media, exc.detail)
            return DecodeFailure(plan=plan, error=exc.detail)
        finally:
            self.trim.touch()

    def stats(self) -> dict[str, int]:
        """This replica's decodes: started since it started, and running now (a cancelled call's thread
        finishes the one chunk it is on)."""
        return {"decodes_started": self.decodes_started, "decodes_running": self.decodes_running}
