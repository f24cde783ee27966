"""Aggregator: chunk results → timeline, summary (one text-only VLM call) and the `VideoAnalysis`.

The finish step of the one flow (`serve_app.flow.finish`) for every caller: the ingress, the job runner
and the archive job.
"""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.config import FlowSettings
from serve_app.flow import NO_SPEECH, Speech, finish
from serve_app.observability.logs import route_to_serve
from serve_app.schemas import (
    AnalyzeOptions,
    ChunkPlan,
    ChunkResult,
    Summary,
    TimelineEntry,
    TranscriptSegment,
    VideoAnalysis,
    VideoInfo,
)


@serve.deployment(name="Aggregator")
class Aggregator:
    def __init__(self, vlm: DeploymentHandle, policy: FlowSettings) -> None:
        route_to_serve()
        self.vlm = vlm
        self.policy = policy

    async def _summarize(self, timeline: list[TimelineEntry], mode: str, said: list[TranscriptSegment]) -> Summary:
        return await self.vlm.summarize.remote(timeline, mode, said)

    async def aggregate(
        self,
        info: VideoInfo,
        options: AnalyzeOptions,
        plans: list[ChunkPlan],
        results: list[ChunkResult],
        timings: dict[str, float],
        started_at: float,
        speech: Speech = NO_SPEECH,
    ) -> VideoAnalysis:
        """`started_at` (Unix time) is when the request or job began: `wall_s` runs to after the summary.
        `speech`: the video's transcript (or why it has none)."""
        return await finish(
            video_id=info.video_id,
            info=info,
            options=options,
            plans=plans,
            results=results,
            model=await self.vlm.model_id.remote(),
            summarize=self._summarize,
            policy=self.policy,
            timings=timings,
            started_at=started_at,
            speech=speech,
        )
