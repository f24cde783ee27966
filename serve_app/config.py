"""One settings model for every knob.

Precedence (highest first): environment variables (`REELSERVE_*`, nested
with `__`, e.g. `REELSERVE_MODEL__MODEL=/models/qwen3-vl-2b`), then the `args`
of `serve_config.yaml` (or CLI flags, passed the same way), then the defaults
below. Settings are read once, by `app.build_app`, the CLI and each job's
entry point, and each component gets its section.

Which serve_config.yaml (`ServeConfig.load`): the one named by `--config` or
`REELSERVE_CONFIG` (missing: an error), else the copy packaged in serve_app, so
an installed reelserve (the Docker image) runs the config it ships. The file
holds only the laptop profile's overrides; every default is here, with its reason.
"""

from __future__ import annotations

import copy
import importlib.resources
import ipaddress
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from serve_app.schemas import SamplingStrategy, overlap_problem

DEFAULT_HOME = Path.home() / ".cache" / "reelserve"
GPU_DEFAULT_MODEL = "Qwen/Qwen3-VL-8B-Instruct"
CONFIG_ENV = "REELSERVE_CONFIG"  # path of the serve config to load instead of the packaged one
PACKAGED_CONFIG = "serve_config.yaml"  # package data of serve_app (in a checkout: a symlink to the repo's file)

logger = logging.getLogger(__name__)


class VideoSettings(BaseModel):
    """Limits and defaults for probing, chunking and sampling."""

    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0, description="Largest accepted upload or download (bytes).")
    max_duration_s: float = Field(default=4 * 3600, gt=0, description="Longest accepted video (seconds).")
    chunk_s: float = Field(
        default=20.0, ge=2, description="Default chunk length. ~20 s keeps one UI state or slide per chunk."
    )
    overlap_s: float = Field(
        default=1.0, ge=0, description="Default overlap so events on a boundary are seen whole by one chunk."
    )
    fps: float = Field(
        default=1.0,
        gt=0,
        le=8,
        description="Rate of uniform sampling (requests may ask sampling=uniform); 1 fps is what peers use.",
    )
    token_budget: int = Field(
        default=12_288,
        ge=64,
        description="Visual tokens per chunk; 12k is Qwen3-VL's own per-video default.",
    )
    max_frame_pixels: int = Field(
        default=1280 * 736,
        ge=32 * 32,
        description="Largest frame sent to the model; 720p keeps screen text legible.",
    )
    min_frame_pixels: int = Field(
        default=1152 * 640,
        ge=32 * 32,
        description=(
            "Below this the sampling rate is lowered instead of shrinking frames further; 1152x640 keeps "
            "screen text legible (smaller sources keep their own size)."
        ),
    )
    decode_threads: int = Field(
        default=1,
        ge=0,
        description=(
            "Decoder threads per chunk (0 = FFmpeg's choice). 1: chunks already decode in parallel, and "
            "bench/decode.py measured one thread faster than FFmpeg's frame threads per chunk."
        ),
    )
    sampling: SamplingStrategy = Field(
        default="adaptive",
        description=(
            "'adaptive' keeps frames where the picture changes: on generated screen shares bench/sampling.py "
            "measured 3.6x fewer visual tokens than uniform 1 fps (1.7x on its held-out split), every change "
            "kept; most of what is left is each chunk's fixed frames. 'uniform' samples at `fps`."
        ),
    )
    adaptive_fps: float = Field(
        default=2.0,
        gt=0,
        le=8,
        description=(
            "Adaptive: rate candidates are drawn at; 2 fps (one every 0.5 s) still sees a dialog open for 0.8 s."
        ),
    )
    floor_s: float = Field(
        default=20.0,
        gt=0,
        description=(
            "Adaptive: longest stretch without a kept frame pair, even on a static screen. Every chunk already "
            "opens with a pair (20 s chunks: one every 19 s), and since each keep travels as a whole temporal "
            "pair (exact markers), a floor shorter than the chunk only re-sends an unchanged screen at the "
            "price of a pair; it matters for longer chunks (`chunk_s` 60: a pair at least every 20 s)."
        ),
    )
    change_threshold: float = Field(
        default=12.0,
        gt=0,
        description=(
            "Adaptive: mean grey-level difference (0-255) above which a tile (1/32 of the longer side) changed; "
            "12 ignores codec noise and quality catch-up, text changes score 20+."
        ),
    )
    packet_guided: bool = Field(
        default=True,
        description="Adaptive sampling decodes only what the compressed stream says can have changed "
        "(serve_app.video.packets, .guided): a static stretch costs at most its keyframe, the picture standing "
        "for each of its frames at that frame's own time. bench/packets.py measured 2.9x less decode CPU on an "
        "idle 1080p screen share with the same kept frames; camera footage and live regions fall back to the "
        "full decoder after one demux pass. False: decode every reference frame, as ffmpeg -skip_frame noref.",
    )
    static_chunk_s: float = Field(
        default=120.0,
        ge=0,
        description="Adaptive sampling with packet_guided: a chunk grows over the stretches in which the "
        "compressed stream shows no possible change (serve_app.video.packets.active_spans), one grid step at "
        "a time up to this many seconds, so an idle screen costs one chunk's opening pair and one answer per "
        "`static_chunk_s`, not per `chunk_s`; a chunk still ends at a grid point before the next change. "
        "120 s keeps a chunk's candidates (240 at 2 fps) and decode within a few seconds; 0 turns it off.",
    )
    packet_spike_ratio: float = Field(
        default=1.5,
        gt=1,
        description="Guided decoding: an inter packet up to this many times the chunk's smallest one is static. "
        "Idle 640x360 and 1280x720 screens measured a median 1.0-1.4x their floor (x264, x265, libvpx VP8/VP9); "
        "the smallest change (a cursor step plus a frame-code flip) 1.8-5x (tests/video/test_packets.py).",
    )
    packet_bitmap_spike_ratio: float = Field(
        default=1.05,
        gt=1,
        description="The same for MPEG-4 Part 2 and MPEG-1/2, whose idle frame codes a skip flag per macroblock: "
        "idle frames measured within 1.02x of the floor, a cursor step plus a code flip 1.23x at 720p.",
    )
    packet_quiet_fraction: float = Field(
        default=0.03,
        gt=0,
        lt=1,
        description="Guided decoding: a chunk whose smallest inter packet is above this fraction of its median "
        "keyframe has live content everywhere (camera, noise, a webcam tile): nothing is static and it is "
        "decoded in full. Idle screens measured 0.02-2%, camera footage 10-60%.",
    )


class ModelSettings(BaseModel):
    """Which model to load and how vLLM runs it."""

    model: str = Field(
        default="auto",
        description=(
            "Hugging Face id or local Qwen3-VL folder. 'auto' = Qwen/Qwen3-VL-8B-Instruct on a GPU, "
            "otherwise the tiny random model in `tiny_model_dir` (built on first use)."
        ),
    )
    tiny_model_dir: Path = Field(
        default=DEFAULT_HOME / "models" / "tiny-qwen3-vl",
        description="Where the tiny random development model lives.",
    )
    served_model_name: str | None = Field(default=None, description="Model name reported in results.")
    max_model_len: int = Field(
        default=16_384,
        ge=1024,
        description="Context length (visual + text tokens): a chunk's 12k visual tokens + prompt + answer fit in 16k.",
    )
    max_tokens: int = Field(
        default=2560,
        ge=16,
        description=(
            "Most completion tokens of a chunk's first attempt (a request's max_tokens replaces it). The "
            "attempt gets the lesser of this and its mode's answer_token_budget (the longest valid answer, "
            "<= 2423 for the built-in modes); free text gets this. A cut-off answer is retried once with "
            "twice that, capped by max_model_len. 2560 fits every built-in mode's longest answer and still "
            "fits: token_budget + max_tokens + prompt_reserve_tokens <= max_model_len."
        ),
    )
    summary_max_tokens: int = Field(
        default=1536,
        ge=16,
        description=(
            "Most completion tokens of the summary call's first attempt: it gets the lesser of this and the "
            "summary schema's longest valid answer (1425); retried once with twice that when cut off."
        ),
    )
    prompt_reserve_tokens: int = Field(
        default=1024,
        ge=0,
        description="Tokens kept for the text around the visual tokens: chat template, instruction, one "
        "`<t seconds>` marker and vision start/end per frame pair (~9 tokens a pair) and a user prompt.",
    )
    speech_max_tokens: int = Field(
        default=384,
        ge=0,
        description="Most prompt tokens of a chunk's transcript lines (part of prompt_reserve_tokens): a 20 s "
        "chunk of fast speech is ~80 tokens; lines beyond the bound are left out of the prompt (never cut).",
    )
    dtype: str = Field(default="auto", description="Weights dtype; 'auto' = float32 on CPU, bfloat16 on GPU.")
    kv_cache_memory_bytes: int | None = Field(
        default=256 * 1024**2,
        description=(
            "KV cache size on CPU (bytes); 256 MiB is plenty for the tiny model. None lets vLLM size it from "
            "gpu_memory_utilization (GPU)."
        ),
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Share of GPU memory vLLM may take (weights + KV cache) when kv_cache_memory_bytes is None.",
    )
    max_num_seqs: int = Field(default=16, ge=1, description="Sequences batched together by vLLM.")
    mm_processor_cache_gb: float = Field(
        default=0,
        ge=0,
        description="vLLM's multimodal processor cache. 0 (off): chunks never repeat, so vLLM's default 4 GiB "
        "cache only grows (the engine process went 716 -> 2,844 MiB over 95 chunks of one job).",
    )
    enforce_eager: bool = Field(default=True, description="Skip graph compilation (fast start on CPU).")
    trust_remote_code: bool = Field(
        default=False,
        description="Run Python code shipped with a checkpoint; Qwen3-VL is built into vLLM and transformers, so off.",
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="0 = greedy (reproducible).")
    seed: int = Field(default=0, description="Sampling seed: runs with temperature > 0 are reproducible too.")

    @model_validator(mode="after")
    def _speech_within_reserve(self) -> ModelSettings:
        if self.speech_max_tokens >= self.prompt_reserve_tokens:
            raise ValueError("speech_max_tokens must be less than prompt_reserve_tokens (the lines are part of it)")
        return self


class AutoscalingSettings(BaseModel):
    """Ray Serve autoscaling of one deployment (per-deployment values: `_vlm_defaults`, `_chunker_defaults`)."""

    min_replicas: int = Field(
        default=1, ge=0, description="Replicas kept when idle; 1: the first request does not wait for a cold start."
    )
    max_replicas: int = Field(default=1, ge=1, description="Most replicas the autoscaler starts.")
    target_ongoing_requests: float = Field(
        default=2, gt=0, description="Ongoing requests per replica the autoscaler aims for; above it adds replicas."
    )
    upscale_delay_s: float = Field(
        default=10, ge=0, description="How long load must stay above the target before a replica is added."
    )
    downscale_delay_s: float = Field(
        default=120, ge=0, description="How long load must stay below the target before a replica is removed."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class DeploymentSettings(BaseModel):
    """Resources, concurrency and autoscaling of one Serve deployment."""

    num_cpus: float = Field(
        default=0.25, ge=0, description="Ray (logical) CPUs per replica; fractional so small boxes fit the graph."
    )
    num_gpus: float = Field(default=0, ge=0, description="Ray GPUs per replica (the VLM on a GPU: 1).")
    memory_bytes: int | None = Field(default=None, ge=0, description="Ray memory reservation.")
    max_ongoing_requests: int = Field(default=8, ge=1, description="Requests one replica works on at once.")
    max_queued_requests: int = Field(
        default=64,
        description="Requests waiting for a replica beyond which the caller gets 503 (backpressure); -1 = "
        "unbounded: only for the Ingress, which bounds its expensive work itself (serve_app.http.admission).",
    )
    retry_after_s: float = Field(
        default=5, ge=0, description="Retry-After (seconds) on the 503 a full queue answers with."
    )
    autoscaling: AutoscalingSettings = Field(
        default_factory=AutoscalingSettings, description="Replica count bounds and how fast it follows load."
    )
    env_vars: dict[str, str] = Field(default_factory=dict, description="Environment variables of each replica.")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each replica needs, e.g. {'cpu_node': 0.01} to pin it to nodes that "
        "declare the resource (`ray start --resources`).",
    )

    def to_options(self, logging_config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Keyword arguments for `Deployment.options()` (`logging_config`: `Settings.logging_config()`)."""
        actor: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_bytes:
            actor["memory"] = self.memory_bytes
        if self.env_vars:
            actor["runtime_env"] = {"env_vars": dict(self.env_vars)}
        if self.resources:
            actor["resources"] = dict(self.resources)
        return {
            "ray_actor_options": actor,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "backpressure_config": {"status_code": 503, "retry_after_s": self.retry_after_s},
            "autoscaling_config": self.autoscaling.model_dump(),
        } | ({"logging_config": logging_config} if logging_config else {})


def _vlm_defaults() -> DeploymentSettings:
    return DeploymentSettings(
        # On CPU the engine's compute threads are not Ray-accounted; 0.5 keeps a 2-core box schedulable.
        # A GPU deployment overrides num_gpus=1 (and num_cpus for the processor/tokenizer threads).
        num_cpus=0.5,
        num_gpus=0,
        max_ongoing_requests=16,  # vLLM batches continuously; give it a batch to work with
        max_queued_requests=128,  # beyond this the caller gets 503 and retries (flow.backoff_s)
        autoscaling=AutoscalingSettings(
            min_replicas=1,
            max_replicas=1,  # one engine per 2-core box; raise with GPUs
            target_ongoing_requests=8,  # half a batch per engine before another one is started
            upscale_delay_s=10,
            downscale_delay_s=300,  # engines are slow to start (16-56 s on CPU): keep them around
        ),
        env_vars={
            # In-process engine core (notes/vllm-cpu.md): 2 processes instead of 3, ~0.6 GB less, starts in
            # 16-22 s instead of 26-56 s, ~2-3x the requests/s on CPU.
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            "OMP_NUM_THREADS": "1",  # recommended for Qwen3-VL's multimodal preprocessing (notes/qwen3-vl.md)
            # glibc keeps what each of its per-thread heaps (up to 8 x cores) ever held: bench/soak.py measured
            # the replica + its EngineCore child 1.60x / 1.20x their idle PSS after a 101-chunk job with the
            # default, 1.08x / 1.09x with 2 arenas, at the same chunks/s.
            "MALLOC_ARENA_MAX": "2",
        },
    )


def _chunker_defaults() -> DeploymentSettings:
    return DeploymentSettings(
        num_cpus=0.5,  # decode is CPU-bound; fractional so a 2-CPU box never deadlocks
        max_ongoing_requests=2,  # decoding one chunk is short: two at a time per replica
        max_queued_requests=256,  # chunks of every video in flight wait here; beyond it the caller gets 503
        autoscaling=AutoscalingSettings(
            min_replicas=1,
            max_replicas=2,
            target_ongoing_requests=1,
            upscale_delay_s=5,  # a decoder starts in seconds: add one as soon as chunks queue up
            downscale_delay_s=120,
        ),
        # Decodes run in asyncio's thread pool (up to 6 threads on 2 cores), each with its own glibc heap that
        # keeps what it held: 2 arenas, as for the VLM (bench/soak.py, bench/README.md).
        env_vars={"MALLOC_ARENA_MAX": "2"},
    )


def _asr_defaults() -> DeploymentSettings:
    return DeploymentSettings(
        num_cpus=0.5,  # Whisper runs `asr.threads` CTranslate2 threads; fractional so a 2-CPU box schedules
        max_ongoing_requests=1,  # one track at a time per replica: CTranslate2 already uses its threads
        max_queued_requests=64,  # one request per video; beyond it the caller gets 503 and retries
        autoscaling=AutoscalingSettings(
            min_replicas=1,
            max_replicas=2,
            target_ongoing_requests=1,
            upscale_delay_s=10,
            downscale_delay_s=300,  # a model loads in ~1-2 s but holds ~0.5 GB; no need to churn
        ),
        env_vars={"HF_HUB_OFFLINE": "1"},  # no hub is ever asked (the weights come from packages)
    )


def _ingress_defaults() -> DeploymentSettings:
    # The async HTTP entry (uploads, URL fetches, event streams) mostly waits: little CPU, many requests.
    # Serve's limits here must never bind: its refusal is a text/plain 503 that also turns away health
    # checks and job polls. The bound on expensive work is `serve.max_analyses` / `serve.max_intakes`
    # (serve_app.http.admission), answered as problem+json; 4096 open requests are ~4,000 idle coroutines.
    return DeploymentSettings(num_cpus=0.25, max_ongoing_requests=4096, max_queued_requests=-1)


def _aggregator_defaults() -> DeploymentSettings:
    # Merges chunk results and waits on the VLM's summary call: a tenth of a CPU.
    return DeploymentSettings(num_cpus=0.1, max_ongoing_requests=16)


_DEPLOYMENT_DEFAULTS = {
    "ingress": _ingress_defaults,
    "chunker": _chunker_defaults,
    "vlm": _vlm_defaults,
    "aggregator": _aggregator_defaults,
    "asr": _asr_defaults,
}


class ServeSettings(BaseModel):
    """The HTTP service and the deployments of the Serve graph."""

    host: str = Field(default="127.0.0.1", description="Bind address of the embedded local stack.")
    port: int = Field(default=8000, ge=0, le=65535, description="HTTP port of the embedded local stack.")
    store_dir: Path = Field(
        default=DEFAULT_HOME / "store",
        description="The default store's folder (jobs.store_uri unset): fine on one machine; a cluster needs a "
        "shared store_uri.",
    )
    media_cache_dir: Path = Field(
        default=Path(tempfile.gettempdir()) / "reelserve-media-cache",
        description="Node-local copies of object-store media (the chunks of a video decode from one download).",
    )
    media_cache_bytes: int = Field(
        default=20 * 1024**3,
        gt=0,
        description="Most bytes of the node-local media cache; least recently used files are evicted first. "
        "Ten times the largest upload by default.",
    )
    object_store_bytes: int | None = Field(
        default=2 * 1024**3,
        ge=75 * 1024**2,
        description="Ray object store of the embedded local cluster (`reelserve serve`/`analyze`/`demo`, tests). "
        "What must fit: decoded frames of the chunks in flight, a full-budget chunk (12,288 tokens of 720p "
        "frames) being ~74 MB: `flow.chunks_in_flight` (8) per video is ~0.6 GB, two running jobs ~1.2 GB, plus "
        "a sync request's window and upload bodies passing from the proxy to the Ingress. Beyond it Ray spills "
        "to disk (slower, never lost). Plasma never gives touched pages back, so this caps /dev/shm for the life "
        "of the cluster; None: Ray's default, 30% of RAM. The k8s manifests set theirs per pod "
        "(rayStartParams object-store-memory).",
    )
    metrics_export_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of Ray's Prometheus metrics export (reelserve_*, vLLM's and Ray's own metrics) on the "
        "embedded local cluster; None: a free port Ray picks (logged when the stack starts). On Kubernetes "
        "KubeRay sets it on every pod (8080, port name `metrics`; k8s/monitoring).",
    )
    max_analyses: int = Field(
        default=16,
        ge=1,
        description="Synchronous /v1/analyze requests one ingress replica runs at once; more get 503 "
        "`overloaded` with Retry-After before their upload is read (serve_app.http.admission). 16: one slot of "
        "`flow.sync_chunks_in_flight` each, so every admitted request always has a chunk in flight.",
    )
    max_intakes: int = Field(
        default=32,
        ge=1,
        description="Uploads and URL fetches one ingress replica takes in at once, for /v1/analyze and /v1/jobs "
        "together; more get 503 `overloaded` before their body is read. Bounds the store writes and bandwidth "
        "in flight when many clients submit at once (each intake streams up to `video.max_upload_bytes`).",
    )
    url_timeout_s: float = Field(default=60, gt=0, description="Total time allowed to fetch a video URL.")
    ready_timeout_s: float = Field(default=5, gt=0, description="How long /readyz waits for the engine.")
    ingress: DeploymentSettings = Field(
        default_factory=_ingress_defaults, description="The HTTP API (FastAPI ingress) deployment."
    )
    chunker: DeploymentSettings = Field(
        default_factory=_chunker_defaults, description="Decodes and samples chunks (CPU-bound)."
    )
    vlm: DeploymentSettings = Field(default_factory=_vlm_defaults, description="The vLLM engine deployment.")
    aggregator: DeploymentSettings = Field(
        default_factory=_aggregator_defaults, description="Merges chunk results and asks the VLM for the summary."
    )
    asr: DeploymentSettings = Field(
        default_factory=_asr_defaults, description="Transcribes audio tracks (CPU, runs beside decoding)."
    )

    @model_validator(mode="before")
    @classmethod
    def _deployments_over_their_defaults(cls, data: Any) -> Any:
        """A partial deployment section (`serve.vlm: {num_gpus: 1}`, `REELSERVE_SERVE__VLM__NUM_GPUS`) is
        merged over that deployment's own defaults, not the generic ones: otherwise overriding one knob
        silently dropped the rest (the VLM's env vars, queue sizes, autoscaling)."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, defaults in _DEPLOYMENT_DEFAULTS.items():
            given = data.get(name)
            if isinstance(given, dict):
                merged[name] = deep_merge(defaults().model_dump(), given)
        return merged


class AsrSettings(BaseModel):
    """Speech recognition of the audio track: faster-whisper, offline (serve_app.speech)."""

    enabled: bool = Field(
        default=True,
        description="Run the ASR deployment; off: every result is pixels only, whatever a request's `audio`.",
    )
    model: str = Field(
        default="base",
        description="'base' (bundled Whisper base, multilingual), 'tiny.en' (bundled, English, ~2x faster), "
        "or the path of a local CTranslate2 Whisper folder (e.g. large-v3-turbo on GPU nodes).",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(default="cpu", description="Where CTranslate2 runs Whisper.")
    compute_type: str = Field(
        default="int8", description="CTranslate2 compute type: int8 on CPU (measured 0.08x real time for base)."
    )
    threads: int = Field(default=2, ge=1, description="CTranslate2 threads per transcription.")
    beam_size: int = Field(default=5, ge=1, le=10, description="Beam width (faster-whisper's default).")
    word_timestamps: bool = Field(
        default=True,
        description="Align words and take each segment's times from its first and last word. Without it, "
        "segments of speech the VAD joined tile the track end to end (a start measured 4 s early on a "
        "generated meeting; with it, within 0.2 s).",
    )


class JobSettings(BaseModel):
    """Async jobs (`/v1/jobs`): the durable store, concurrency, retries and retention."""

    store_uri: str | None = Field(
        default=None,
        description="Where media, job records and results live (a folder or s3://, gs://, ... URI shared by "
        "all replicas). None: `<serve.store_dir>/jobs-store` on this machine.",
    )
    max_running: int = Field(default=2, ge=1, description="Jobs processed at once; the rest wait durably, queued.")
    max_queued: int = Field(default=100, ge=0, description="Queued jobs beyond which submission gets 503.")
    fail_ratio: float = Field(
        default=0.5, gt=0, le=1, description="The job fails when more than this fraction of its chunks failed."
    )
    retention_s: float = Field(default=7 * 86400, gt=0, description="Finished jobs are deleted after this long.")
    keep_media: bool = Field(
        default=True,
        description="Keep a succeeded job's video on the store with its result, until the retention deletes "
        "both, so the web page can play it (`GET /v1/jobs/<id>/media`). False: delete it when the job ends, as "
        "failed and cancelled jobs always do (the page then shows no player).",
    )
    events_poll_s: float = Field(
        default=0.5,
        gt=0,
        description="How often the event stream looks for news: one read of the small job record a tick (the "
        "record says how many chunks are stored; new ones are read by key, never by listing).",
    )
    events_keepalive_s: float = Field(
        default=15,
        gt=0,
        description="An SSE comment is sent when nothing else was for this long: chunks on CPU can be minutes "
        "apart, and proxies cut idle responses (nginx `proxy_read_timeout` and AWS ALB idle timeout: 60 s).",
    )
    events_stream_s: float = Field(
        default=600,
        gt=0,
        description="Longest one event stream stays open: it then ends cleanly with a `retry:` hint, and the "
        "client reconnects with Last-Event-ID (nothing lost or repeated). Serve cuts every response, streams "
        "included, `http_options.request_timeout_s` after it started (900 s in serve_config.yaml and the k8s "
        "overlays), so this stays below it; a request's lower `x-request-timeout-seconds` shortens it too.",
    )
    events_retry_ms: int = Field(
        default=1000,
        ge=0,
        description="The `retry:` hint of an event stream: how long a client waits before it reconnects. 1 s: "
        "a window's end is routine, not an outage.",
    )
    claim_timeout_s: float = Field(
        default=900,
        gt=0,
        description="An Idempotency-Key claim or capacity reservation whose job never appeared (its ingress "
        "died while taking the request in) is released after this long; above the longest intake (upload, "
        "`serve.url_timeout_s` fetch, probe).",
    )
    scheduler_poll_s: float = Field(
        default=1.0, gt=0, description="How often the runner looks for queued jobs when nobody woke it."
    )
    sweep_interval_s: float = Field(
        default=600, gt=0, description="How often the runner deletes jobs past their retention."
    )


class FlowSettings(BaseModel):
    """The one analysis flow (serve_app.flow) for sync analyze, jobs and the archive job: how many chunks of a
    video are in flight, and the one retry policy of a chunk call.

    Retried: a dead or restarting replica, backpressure, an engine timeout. Never: bad input.
    """

    chunks_in_flight: int = Field(
        default=8,
        ge=1,
        description="Chunks of one video sent at once; 8 keeps vLLM's batch full (the VLM replica takes 16) "
        "while one long video cannot flood the Chunker queue.",
    )
    sync_chunks_in_flight: int = Field(
        default=16,
        ge=1,
        description="Chunks in flight of all /v1/analyze requests of one ingress replica together, shared "
        "max-min fairly between them (serve_app.fair_share): one request alone still gets chunks_in_flight, "
        "and a newcomer waits for one slot, not behind every long video's window. 16: one VLM replica's "
        "batch (serve.vlm.max_ongoing_requests), so a newcomer's chunk joins the running batch.",
    )
    sync_max_chunks: int = Field(
        default=90,
        ge=1,
        description="Most chunks a /v1/analyze request may have (more: 422 too-long-for-sync, pointing to "
        "/v1/jobs). A synchronous request holds its connection for the whole run and a dropped one loses "
        "every chunk; 90 (28.5 min at the default 20 s chunks) finishes well inside Serve's 900 s "
        "request_timeout_s at GPU speed (tens of seconds a chunk, chunks_in_flight at once).",
    )

    chunk_timeout_s: float = Field(
        default=180,
        gt=0,
        description="Longest one attempt at a chunk's decode + inference may take before it is retried. A chunk "
        "takes seconds (CPU tiny model ~1-3 s, GPU 8B tens of seconds with queueing); the bound exists for calls "
        "that never come back: after `ray.kill` of the VLM replica mid-job, in-flight awaits were seen to hang "
        "(a fresh-clone CI run: no request reached the replacement replica for 9 minutes with 600 s). Below "
        "`deadline_s`, so a timed-out chunk still gets a retry.",
    )
    deadline_s: float = Field(
        default=240,
        gt=0,
        description="How long a failing chunk keeps being retried; covers a replaced engine starting up (16-56 s "
        "measured on CPU) with room to spare.",
    )
    backoff_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles each attempt.")
    backoff_max_s: float = Field(default=15.0, gt=0, description="Longest delay between two attempts.")
    jitter: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Each delay is drawn from [delay * (1 - jitter), delay]: chunks that failed together "
        "(one replica died) do not all come back at the same instant.",
    )


class DataSettings(BaseModel):
    """The bulk archive job (Ray Data): per-stage resources and concurrency."""

    probe_num_cpus: float = Field(default=0.25, gt=0, description="Ray CPUs per probe/plan task (mostly I/O).")
    probe_tasks: int | None = Field(
        default=None, ge=1, description="Probe tasks at once (None: as many as the cluster fits)."
    )
    decode_tasks: int | None = Field(
        default=None,
        ge=1,
        description="Decode tasks at once (None: as many as the cluster fits). On one machine, its core "
        "count: more only starts more worker processes to fight over the same cores.",
    )
    decode_num_cpus: float = Field(
        default=0.5, gt=0, description="Ray CPUs per chunk decode task; fractional so decode never starves Serve."
    )
    decode_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources per decode task (pins decoding to some nodes)."
    )
    infer_actors: int = Field(default=1, ge=1, description="Actors that send chunks to the VLM deployment.")
    infer_batch_size: int = Field(
        default=8, ge=1, description="Chunks an actor keeps in flight at once; vLLM batches them together."
    )
    infer_num_cpus: float = Field(default=0.1, gt=0, description="Ray CPUs per infer actor (it only waits).")
    wait_for_actors_s: float = Field(
        default=600, gt=0, description="Fail instead of waiting forever when actors cannot be scheduled."
    )
    job_app_name: str = Field(
        default="reelserve-archive",
        description="Serve app the job deploys (VLM only) when no reelserve app is running; removed at the end.",
    )


class SearchSettings(BaseModel):
    """Search across processed videos (`GET /v1/search`, `reelserve search`; serve_app.search)."""

    archive_uris: list[str] = Field(
        default_factory=list,
        description="Archive job outputs (OUT folders or URIs) that `GET /v1/search` covers besides the job "
        "store's results. None by default: the API knows no archive until told; `reelserve search --index OUT` "
        "searches one without a server.",
    )
    cache_dir: Path = Field(
        default=DEFAULT_HOME / "search-cache",
        description="Where the index is kept when the results are in an object store (SQLite needs a local "
        "file; a local store keeps it next to the results): per user, surviving reboots, rebuilt when lost.",
    )


class ChatSettings(BaseModel):
    """Questions about videos (`POST /v1/chat/completions`, serve_app.chat): a video is analysed once (a
    job, every chunk), then each question is one text-only call over its findings."""

    max_tokens: int = Field(
        default=512,
        ge=16,
        le=8192,
        description="Completion tokens of an answer when the request sets none: a few paragraphs with their "
        "citations; the request's max_tokens / max_completion_tokens replaces it.",
    )
    max_citations: int = Field(default=8, ge=1, le=64, description="Most chunks one answer may cite.")
    max_answer_chars: int = Field(
        default=4000, ge=100, le=100_000, description="Longest text answer (the answer schema's maxLength)."
    )
    wait_s: float = Field(
        default=600,
        gt=0,
        description="How long a question waits for its video's analysis (a job) before answering 503 with "
        "Retry-After; the job carries on, and the question asked again finds it. Below the Serve proxy's "
        "request_timeout_s (serve_config.yaml: 900 s), which would cut the request without an answer.",
    )
    poll_s: float = Field(default=1.0, gt=0, le=60, description="How often a waiting question reads its job.")
    max_request_bytes: int = Field(
        default=256 * 1024,
        ge=16 * 1024,
        description="Largest request body: a conversation of 64 messages of a few hundred words, with room.",
    )


class SecuritySettings(BaseModel):
    """Who may call the API, what the server may fetch, and how big requests may be.

    API keys come from `REELSERVE_API_KEYS` (comma-separated) and/or `api_keys_file`; never
    write keys into serve_config.yaml.
    """

    auth: Literal["required", "disabled"] = Field(
        default="required",
        description=(
            "'required': every API route needs `Authorization: Bearer <key>` (health checks and docs are "
            "public), and the ingress refuses to start without keys. 'disabled' only for local development; "
            "the embedded `reelserve demo`/`analyze` stack (127.0.0.1) runs with it."
        ),
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated API keys. Set it with the REELSERVE_API_KEYS environment variable.",
    )
    api_keys_file: Path | None = Field(
        default=None,
        description=(
            "File with one API key per line ('#' comments and blank lines ignored), e.g. a mounted "
            "Kubernetes Secret; read by the ingress replica when it starts. Adds to `api_keys`."
        ),
    )
    media_token_ttl_s: float = Field(
        default=900,
        gt=0,
        le=86400,
        description="Lifetime of the cookie a page gets to play a job's video and show its thumbnails (<video> "
        "and <img> cannot send an Authorization header; the key never goes in a URL). Short, because a cookie "
        "is easier to leak than a header; the page renews it while the result view is open.",
    )
    url_allow_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names or host:port pairs (e.g. an internal media server) whose URLs may resolve to "
            "loopback/private addresses. Everything else must resolve to public addresses only."
        ),
    )
    url_resolver_overrides: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "host -> IP address used instead of DNS when fetching URLs, like /etc/hosts. For tests and "
            "air-gapped setups; the address is still checked unless the host is in `url_allow_hosts`."
        ),
    )
    url_max_redirects: int = Field(
        default=5, ge=0, le=20, description="Redirects followed per URL; each target is checked again."
    )
    max_options_bytes: int = Field(
        default=64 * 1024,
        ge=16 * 1024,
        description=(
            "Largest JSON request body and largest multipart option field; a custom schema (16 KiB) and a "
            "prompt (4000 chars) fit well below it."
        ),
    )
    loopback_only_egress: bool = Field(
        default=False,
        description=(
            "Safety net for tests and sandboxes: a process-wide guard in the ingress replica refuses every "
            "connection or DNS lookup that could leave the machine (serve_app.devtools.netguard). Not for production."
        ),
    )

    @field_validator("url_allow_hosts")
    @classmethod
    def _lower_hosts(cls, hosts: list[str]) -> list[str]:
        return [h.strip().lower().rstrip(".") for h in hosts if h.strip()]

    @field_validator("url_resolver_overrides")
    @classmethod
    def _ip_overrides(cls, overrides: dict[str, str]) -> dict[str, str]:
        out = {}
        for host, ip in overrides.items():
            try:
                out[host.strip().lower().rstrip(".")] = str(ipaddress.ip_address(ip.strip()))
            except ValueError:
                raise ValueError(f"url_resolver_overrides[{host!r}] = {ip!r} is not an IP address") from None
        return out


class _ApiKeysEnv(PydanticBaseSettingsSource):
    """`REELSERVE_API_KEYS` (the documented name) -> `security.api_keys`."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # unused: __call__ is enough
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        keys = os.environ.get("REELSERVE_API_KEYS")
        return {"security": {"api_keys": keys}} if keys else {}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELSERVE_", env_nested_delimiter="__", env_parse_none_str="null", extra="forbid"
    )

    video: VideoSettings = Field(default_factory=VideoSettings, description=VideoSettings.__doc__)
    model: ModelSettings = Field(default_factory=ModelSettings, description=ModelSettings.__doc__)
    serve: ServeSettings = Field(default_factory=ServeSettings, description=ServeSettings.__doc__)
    data: DataSettings = Field(default_factory=DataSettings, description=DataSettings.__doc__)
    security: SecuritySettings = Field(default_factory=SecuritySettings, description="Auth, URL fetching, limits.")
    jobs: JobSettings = Field(default_factory=JobSettings, description=JobSettings.__doc__)
    flow: FlowSettings = Field(default_factory=FlowSettings, description="Chunks in flight and the retry policy.")
    asr: AsrSettings = Field(default_factory=AsrSettings, description=AsrSettings.__doc__)
    search: SearchSettings = Field(default_factory=SearchSettings, description=SearchSettings.__doc__)
    chat: ChatSettings = Field(default_factory=ChatSettings, description=ChatSettings.__doc__)
    app_name: str = Field(default="reelserve", description="Serve application name.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of every deployment's replicas (Ray Serve `logging_config`)."
    )
    log_encoding: Literal["TEXT", "JSON"] = Field(
        default="TEXT",
        description="Replica log format: 'TEXT' for people, 'JSON' (one object a line) for a log collector.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the config file so a deployment (GPU, k8s) is an
        # override, not an edit of serve_config.yaml.
        return env_settings, _ApiKeysEnv(settings_cls), init_settings, file_secret_settings

    def logging_config(self) -> dict[str, Any]:
        """Ray Serve `LoggingConfig` of every deployment (`DeploymentSettings.to_options`)."""
        return {"log_level": self.log_level, "encoding": self.log_encoding}

    @model_validator(mode="after")
    def _budget_fits_context(self) -> Settings:
        need = self.video.token_budget + self.model.max_tokens + self.model.prompt_reserve_tokens
        if need > self.model.max_model_len:
            raise ValueError(
                f"video.token_budget ({self.video.token_budget}) + model.max_tokens ({self.model.max_tokens}) "
                f"+ model.prompt_reserve_tokens ({self.model.prompt_reserve_tokens}) exceed "
                f"model.max_model_len ({self.model.max_model_len})"
            )
        if (problem := overlap_problem(self.video.chunk_s, self.video.overlap_s)) is not None:
            raise ValueError(f"video: {problem}")
        return self


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, recursively for mappings; `None` in `extra` is a value, not a deletion."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def job_store_uri(settings: Settings) -> str:
    return settings.jobs.store_uri or str(settings.serve.store_dir / "jobs-store")


def load_settings(args: dict[str, Any] | None = None) -> Settings:
    """Settings from `serve_config.yaml` args (or CLI) merged under the environment."""
    return Settings(**(args or {}))


class ConfigFileError(FileNotFoundError):
    """The serve config to load does not exist (a wrong --config / REELSERVE_CONFIG, or a broken install)."""


def serve_config_path(path: Path | str | None = None) -> Path:
    """The serve config to load: `path` (CLI --config), else $REELSERVE_CONFIG, else the packaged one.

    A named file that is missing is an error, never a silent fall back to another file or to the defaults.
    """
    explicit, origin = (path, "--config") if path else (os.environ.get(CONFIG_ENV), CONFIG_ENV)
    if explicit:
        named = Path(explicit).expanduser()
        if not named.is_file():
            raise ConfigFileError(f"serve config {str(named)!r} (from {origin}) does not exist or is not a file")
        return named
    packaged = Path(str(importlib.resources.files("serve_app") / PACKAGED_CONFIG))
    if not packaged.is_file():
        raise ConfigFileError(
            f"the packaged {PACKAGED_CONFIG} is missing ({packaged}): a broken install; reinstall reelserve or "
            f"name a config with --config / {CONFIG_ENV}"
        )
    return packaged


@dataclass
class ServeConfig:
    """The parts of a serve_config.yaml the CLI, the local stack and the jobs need; `source` is the file read."""

    source: Path | None = None
    args: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 8000
    app_name: str = "reelserve"
    route_prefix: str = "/"

    @classmethod
    def load(cls, path: Path | str | None = None) -> ServeConfig:
        """Read the serve config `serve_config_path(path)` names (see there for the lookup order)."""
        source = serve_config_path(path)
        real = source.resolve()
        logger.info("serve config: %s%s", source, f" (-> {real})" if real != source.absolute() else "")
        doc = yaml.safe_load(source.read_text()) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"serve config {source}: expected a mapping at the top level")
        app = (doc.get("applications") or [{}])[0]
        http = doc.get("http_options") or {}
        return cls(
            source=source,
            args=app.get("args") or {},
            host=http.get("host", "127.0.0.1"),
            port=int(http.get("port", 8000)),
            app_name=app.get("name", "reelserve"),
            route_prefix=app.get("route_prefix", "/"),
        )

    def settings(self, overrides: dict[str, Any] | None = None) -> Settings:
        """The file's args with `overrides` over them, all under the environment."""
        return load_settings(deep_merge(self.args, overrides or {}))
