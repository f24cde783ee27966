"""Aggregator: chunk results → timeline, summary (one text-only VLM call) and stats."""

from __future__ import annotations

import logging
import time

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.analysis import OutputError, build_timeline
from serve_app.schemas import AnalysisStats, AnalyzeOptions, ChunkPlan, ChunkResult, Summary, VideoAnalysis, VideoInfo

logger = logging.getLogger(__name__)


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
        results = sorted(results, key=lambda r: r.index)
        timeline = build_timeline(plans, results)
        summary: Summary | None = None
        started = time.perf_counter()
        if options.aggregate and timeline:
            try:
                summary = await self.vlm.summarize.remote(timeline, options.mode)
            except OutputError as exc:  # the answer was unusable; the chunks still stand
                logger.warning("video %s: no summary: %s", video_id, exc)
        stats = AnalysisStats.from_results(results, summary_s=time.perf_counter() - started, **timings)
        return VideoAnalysis(
            video_id=video_id,
            video=info,
            request=options,
            model=await self.vlm.model_id.remote(),
            chunks=results,
            timeline=timeline,
            summary=summary,
            stats=stats,
        )
