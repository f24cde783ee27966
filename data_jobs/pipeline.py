"""build_pipeline: list → probe/plan → decode (CPU tasks) → infer (VLM deployment, the one flow). Assembly only."""

from __future__ import annotations

from typing import Any

import ray
from ray.data import ActorPoolStrategy, DataContext, Dataset, TaskPoolStrategy

from data_jobs.decode_stage import decode_row
from data_jobs.infer_stage import InferStage
from data_jobs.inputs import OVERRIDES, VideoInput
from data_jobs.probe_stage import probe_row
from serve_app.config import Settings
from serve_app.store.media import MediaCache
from serve_app.video.packets import packet_params


def build_pipeline(
    inputs: list[VideoInput], settings: Settings, options: dict[str, Any], output: str, vlm_app: str
) -> Dataset:
    data = settings.data
    cache = MediaCache(settings.serve.media_cache_dir, settings.serve.media_cache_bytes)
    # Never wait silently for actors that cannot be scheduled (the 2-CPU deadlock in the Ray notes).
    DataContext.get_current().wait_for_min_actors_s = data.wait_for_actors_s
    items = [{"uri": i.uri, **{key: getattr(i, key) for key in OVERRIDES}} for i in inputs]
    # One block per video, so probing and chunk expansion spread over the cluster.
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.flat_map(
        probe_row,
        fn_kwargs={"video": settings.video, "asr": settings.asr, "cache": cache, "options": options, "output": output},
        compute=TaskPoolStrategy(size=data.probe_tasks),
        num_cpus=data.probe_num_cpus,
    )
    ds = ds.map(
        decode_row,
        fn_kwargs={"threads": settings.video.decode_threads, "packets": packet_params(settings.video), "cache": cache},
        compute=TaskPoolStrategy(size=data.decode_tasks),
        num_cpus=data.decode_num_cpus,
        resources=data.decode_resources or None,
    )
    return ds.map_batches(
        InferStage,
        fn_constructor_args=(vlm_app, settings.flow, settings.model.max_tokens),
        batch_size=data.infer_batch_size,
        batch_format="pandas",
        compute=ActorPoolStrategy(size=data.infer_actors),
        num_cpus=data.infer_num_cpus,
    )
