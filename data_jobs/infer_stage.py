"""Infer stage: chunk rows → results, through the Serve VLM deployment (shared with the online service).

An actor pool keeps `infer_batch_size` chunks in flight per actor; vLLM batches
them. Replica death and backpressure propagate (Ray Data retries the batch);
a bad answer is a per-chunk error in the result.
"""

from __future__ import annotations

import pickle

import pandas as pd
from ray import serve

from serve_app.schemas import AnalyzeOptions, ChunkPlan, ChunkResult, ChunkTask


class InferStage:
    """`map_batches` UDF (actor). Input columns: kind, video_id, options_json, plan_json, payload, error."""

    def __init__(self, app_name: str, max_tokens: int) -> None:
        self.vlm = serve.get_deployment_handle("VLM", app_name=app_name)
        self.max_tokens = max_tokens

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        pending = {}
        results: list[str | None] = [None] * len(batch)
        for i, item in enumerate(batch.to_dict("records")):
            if item["kind"] != "chunk":
                continue
            options = AnalyzeOptions.model_validate_json(item["options_json"])
            plan = ChunkPlan.model_validate_json(item["plan_json"])
            if item["payload"] is None:
                results[i] = ChunkResult.failed(plan, options.mode, item["error"] or "no frames").model_dump_json()
                continue
            task = ChunkTask(
                video_id=item["video_id"],
                mode=options.mode,
                prompt=options.prompt,
                json_schema=options.json_schema,
                max_tokens=options.max_tokens or self.max_tokens,
            )
            pending[i] = self.vlm.analyze_chunk.remote(pickle.loads(item["payload"]), task)
        for i, response in pending.items():  # all sent first, so they run together
            results[i] = response.result().model_dump_json()
        out = batch.copy()
        out["result_json"] = results
        out["payload"] = None  # frames are done with; keep blocks small downstream
        out["error"] = [None if kind == "chunk" else err for kind, err in zip(out["kind"], out["error"], strict=True)]
        return out
