"""build_app(args): the Serve composition graph, as `serve_config.yaml` names it.

    Ingress ──► Chunker (CPU, autoscaling) ──► VLM (vLLM Qwen3-VL, autoscaling)
       ├──────► ASR (CPU, autoscaling: Whisper over the whole audio track, beside decoding)
       ├──────► Aggregator ───────────────────► VLM (summary call)
       └──────► JobRunner (async jobs: the same flow, serve_app.flow, durable)

Settings are read once, here, and each deployment gets its section; the
deployment options (resources, concurrency, autoscaling) come from
`settings.serve.<deployment>`.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from serve_app.config import Settings, job_store_uri, load_settings
from serve_app.deployments.aggregator import Aggregator
from serve_app.deployments.asr import ASR
from serve_app.deployments.chunker import Chunker
from serve_app.deployments.ingress import Ingress
from serve_app.deployments.runner import JobRunner
from serve_app.deployments.vlm import VLM
from serve_app.http.auth import check_auth_configured
from serve_app.store.media import MediaCache


def inference_graph(settings: Settings) -> tuple[Application, Application]:
    """VLM and the Aggregator that finishes videos with it: the part the archive job also deploys alone."""
    serve, log = settings.serve, settings.logging_config()
    vlm = VLM.options(**serve.vlm.to_options(log)).bind(settings.model, settings.video.token_budget)
    return vlm, Aggregator.options(**serve.aggregator.to_options(log)).bind(vlm, settings.flow)


def build_graph(settings: Settings) -> Application:
    check_auth_configured(settings.security)  # fail here, not after the engine loaded, if no key is set
    serve, log = settings.serve, settings.logging_config()
    vlm, aggregator = inference_graph(settings)
    cache = MediaCache(serve.media_cache_dir, serve.media_cache_bytes)
    chunker = Chunker.options(**serve.chunker.to_options(log)).bind(settings.video, cache)
    asr = ASR.options(**serve.asr.to_options(log)).bind(settings.asr, cache) if settings.asr.enabled else None
    runner = JobRunner.options(logging_config=log).bind(
        chunker, vlm, aggregator, asr, job_store_uri(settings), settings.jobs, settings.flow, settings.model.max_tokens
    )
    return Ingress.options(**serve.ingress.to_options(log)).bind(chunker, vlm, aggregator, asr, runner, settings)


def build_app(args: dict[str, Any]) -> Application:
    """Entry point for `serve run serve_config.yaml` (its `args` are settings)."""
    return build_graph(load_settings(args))
