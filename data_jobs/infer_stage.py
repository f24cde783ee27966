"""Infer stage: chunk rows → results, through the Serve VLM deployment (shared with the online service).

The batch's chunks go through the one flow's `infer_chunks` (serve_app.flow): the same window, the same
retry policy (a dead or restarting replica, backpressure, a timeout) and the same failed-chunk results
as `/v1/analyze` and jobs; vLLM batches the chunks in flight together.
"""

from __future__ import annotations

import asyncio
import json
import pickle

import pandas as pd
from ray import serve

from serve_app.config import FlowSettings
from serve_app.flow import infer_chunks
from serve_app.schemas import AnalyzeOptions, ChunkPlan, ChunkResult, TranscriptSegment


class InferStage:
    """`map_batches` UDF (async actor). Input columns: kind, sha256, options_json, plan_json, speech_json,
    payload, error."""

    def __init__(self, app_name: str, flow: FlowSettings, max_tokens: int) -> None:
        self.vlm = serve.get_deployment_handle("VLM", app_name=app_name)
        self.flow = flow
        self.max_tokens = max_tokens

    async def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        results: list[str | None] = [None] * len(batch)
        pending = []
        for i, item in enumerate(batch.to_dict("records")):
            if item["kind"] != "chunk":
                continue
            options = AnalyzeOptions.model_validate_json(item["options_json"])
            plan = ChunkPlan.model_validate_json(item["plan_json"])
            if item["payload"] is None:  # decode failed: reported in its result, nothing to infer
                results[i] = ChunkResult.failed(plan, options.mode, item["error"] or "no frames").model_dump_json()
                continue
            pending.append((i, self._infer(item, options, plan)))
        # The batch's chunks run together (the batch size is the window), each under the flow's policy.
        for (i, _), result in zip(pending, await asyncio.gather(*(c for _, c in pending)), strict=True):
            results[i] = result.model_dump_json()
        out = batch.copy()
        out["result_json"] = results
        out["payload"] = None  # frames are done with; keep blocks small downstream
        out["error"] = [None if kind == "chunk" else err for kind, err in zip(out["kind"], out["error"], strict=True)]
        return out

    async def _infer(self, item: dict, options: AnalyzeOptions, plan: ChunkPlan) -> ChunkResult:
        video_id = item["sha256"][:16]
        sampled = pickle.loads(item["payload"])
        task = options.to_chunk_task(video_id, self.max_tokens)
        speech = [TranscriptSegment.model_validate(s) for s in json.loads(item["speech_json"] or "[]")]
        (result,) = await infer_chunks(
            [plan],
            lambda _: self.vlm.analyze_chunk.remote(sampled, task, speech),
            mode=options.mode,
            policy=self.flow,
            video_id=video_id,
        )
        return result
