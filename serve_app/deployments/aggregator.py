"""Aggregator: chunk results → timeline, summary (one text-only VLM call) and stats."""

from __future__ import annotations

import logging
import time

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.analysis import OutputError, assemble, build_timeline
from serve_app.schemas import AnalyzeOptions, ChunkPlan, ChunkResult, Summary, VideoAnalysis, VideoInfo

logger = logging.getLogger(__name__)


async def summarize(vlm: DeploymentHandle, video_id: str, timeline: list, options: AnalyzeOptions) -> Summary | None:
    """The summary call, when asked for; an unusable answer leaves the chunks standing."""
    if not (options.aggregate and timeline):
        return None
    try:
        return await vlm.summarize.remote(timeline, options.mode)
    except OutputError as exc:
        logger.warning("video %s: no summary: %s", video_id, exc)
        return None


@serve.deployment(name="Aggregator")
class Aggregator:
    def __init__(self, vlm: DeploymentHandle) -> None:
        self.vlm = vlm

    async def aggregate(
        self,
        video_id: str,
        info: VideoInfo,
        options: AnalyzeOptions,
        plans: list[ChunkPlan],
        results: list[ChunkResult],
        timings: dict[str, float],
    ) -> VideoAnalysis:
        timeline = build_timeline(plans, results)
        started = time.perf_counter()
        summary = await summarize(self.vlm, video_id, timeline, options)
        return assemble(
            video_id=video_id,
            info=info,
            options=options,
            model=await self.vlm.model_id.remote(),
            results=results,
            timeline=timeline,
            summary=summary,
            timings={**timings, "summary_s": time.perf_counter() - started},
        )
