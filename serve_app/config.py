"""One settings model for every knob.

Precedence (highest first): environment variables (`REELSERVE_*`, nested
with `__`, e.g. `REELSERVE_MODEL__MODEL=/models/qwen3-vl-2b`), then the `args`
of `serve_config.yaml` (or CLI flags, passed the same way), then the defaults
below. Settings are read once, by `app.build_app`, the CLI and each job's
entry point, and each component gets its section.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from serve_app.schemas import SamplingStrategy

DEFAULT_HOME = Path.home() / ".cache" / "reelserve"
GPU_DEFAULT_MODEL = "Qwen/Qwen3-VL-8B-Instruct"


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
    fps: float = Field(default=1.0, gt=0, le=8, description="Default sampling rate; 1 fps is what peers use.")
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
            "'adaptive' keeps frames where the picture changes (screen shares: far fewer tokens, no missed "
            "slide); 'uniform' samples at a fixed fps. bench/sampling.py compares them."
        ),
    )
    adaptive_fps: float = Field(
        default=2.0,
        gt=0,
        le=8,
        description="Adaptive: rate candidates are drawn at; 2 fps sees changes shown for 0.5 s or more.",
    )
    floor_s: float = Field(
        default=15.0,
        gt=0,
        description=(
            "Adaptive: longest stretch without a kept frame, even on a static screen. bench/sampling.py: 15 s "
            "costs ~8% fewer tokens than 10 s at the same recall; a static 20 s chunk gets one frame pair either way."
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
    max_model_len: int = Field(default=16_384, ge=1024, description="Context length (visual + text tokens).")
    max_tokens: int = Field(default=512, ge=16, description="Default completion tokens per chunk.")
    summary_max_tokens: int = Field(default=512, ge=16, description="Completion tokens of the summary call.")
    dtype: str = Field(default="auto", description="Weights dtype; 'auto' = float32 on CPU, bfloat16 on GPU.")
    kv_cache_memory_bytes: int | None = Field(
        default=256 * 1024**2,
        description="KV cache size on CPU (bytes); None lets vLLM use gpu_memory_utilization on GPU.",
    )
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    max_num_seqs: int = Field(default=16, ge=1, description="Sequences batched together by vLLM.")
    enforce_eager: bool = Field(default=True, description="Skip graph compilation (fast start on CPU).")
    trust_remote_code: bool = False
    temperature: float = Field(default=0.0, ge=0, le=2, description="0 = greedy (reproducible).")
    seed: int = 0


class AutoscalingSettings(BaseModel):
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=2, gt=0)
    upscale_delay_s: float = Field(default=10, ge=0)
    downscale_delay_s: float = Field(default=120, ge=0)

    @model_validator(mode="after")
    def _min_le_max(self) -> AutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class DeploymentSettings(BaseModel):
    """Resources, concurrency and autoscaling of one Serve deployment."""

    num_cpus: float = Field(default=0.25, ge=0)
    num_gpus: float = Field(default=0, ge=0)
    memory_bytes: int | None = Field(default=None, ge=0, description="Ray memory reservation.")
    max_ongoing_requests: int = Field(default=8, ge=1)
    max_queued_requests: int = Field(default=64, description="-1 = unbounded (not recommended).")
    retry_after_s: float = Field(
        default=5, ge=0, description="Retry-After (seconds) on the 503 a full queue answers with."
    )
    autoscaling: AutoscalingSettings = Field(default_factory=AutoscalingSettings)
    env_vars: dict[str, str] = Field(default_factory=dict)

    def to_options(self) -> dict[str, Any]:
        """Keyword arguments for `Deployment.options()`."""
        actor: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory_bytes:
            actor["memory"] = self.memory_bytes
        if self.env_vars:
            actor["runtime_env"] = {"env_vars": dict(self.env_vars)}
        return {
            "ray_actor_options": actor,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "backpressure_config": {"status_code": 503, "retry_after_s": self.retry_after_s},
            "autoscaling_config": self.autoscaling.model_dump(),
        }


def _vlm_defaults() -> DeploymentSettings:
    return DeploymentSettings(
        # On CPU the engine's compute threads are not Ray-accounted; 0.5 keeps
        # a 2-core box schedulable. A GPU deployment overrides num_gpus=1.
        num_cpus=0.5,
        max_ongoing_requests=16,  # vLLM batches continuously; feed it a batch
        max_queued_requests=128,
        autoscaling=AutoscalingSettings(target_ongoing_requests=8),
        env_vars={"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"},
    )


def _chunker_defaults() -> DeploymentSettings:
    # Decoding one chunk is CPU-bound and short; two at a time per replica.
    return DeploymentSettings(
        num_cpus=0.5,
        max_ongoing_requests=2,
        max_queued_requests=256,
        autoscaling=AutoscalingSettings(max_replicas=2, target_ongoing_requests=1),
    )


class ServeSettings(BaseModel):
    """The HTTP service and the deployments of the Serve graph."""

    host: str = Field(default="127.0.0.1", description="Bind address of the embedded local stack.")
    port: int = Field(default=8000, ge=0, le=65535)
    store_dir: Path = Field(default=DEFAULT_HOME / "store", description="Where uploads and downloads are kept.")
    url_timeout_s: float = Field(default=60, gt=0, description="Total time allowed to fetch a video URL.")
    ready_timeout_s: float = Field(default=5, gt=0, description="How long /readyz waits for the engine.")
    ingress: DeploymentSettings = Field(
        default_factory=lambda: DeploymentSettings(num_cpus=0.25, max_ongoing_requests=32, max_queued_requests=128)
    )
    chunker: DeploymentSettings = Field(default_factory=_chunker_defaults)
    vlm: DeploymentSettings = Field(default_factory=_vlm_defaults)
    aggregator: DeploymentSettings = Field(
        default_factory=lambda: DeploymentSettings(num_cpus=0.1, max_ongoing_requests=16)
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
    max_chunks_in_flight: int = Field(
        default=8, ge=1, description="Chunks of one job sent at once; enough to keep vLLM's batch full."
    )
    chunk_timeout_s: float = Field(default=600, gt=0, description="Longest one chunk's decode + inference may take.")
    retry_deadline_s: float = Field(
        default=240,
        gt=0,
        description="How long a failing chunk keeps being retried; covers a replaced engine starting up.",
    )
    retry_backoff_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles up to 15 s.")
    fail_ratio: float = Field(
        default=0.5, gt=0, le=1, description="The job fails when more than this fraction of its chunks failed."
    )
    retention_s: float = Field(default=7 * 86400, gt=0, description="Finished jobs are deleted after this long.")
    events_poll_s: float = Field(default=0.5, gt=0, description="How often the event stream looks for news.")


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
            "connection or DNS lookup that could leave the machine (serve_app.netguard). Not for production."
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

    video: VideoSettings = Field(default_factory=VideoSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    app_name: str = Field(default="reelserve", description="Serve application name.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

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

    @model_validator(mode="after")
    def _budget_fits_context(self) -> Settings:
        need = self.video.token_budget + self.model.max_tokens + 1024  # + prompt text and markers
        if need > self.model.max_model_len:
            raise ValueError(
                f"video.token_budget ({self.video.token_budget}) + model.max_tokens ({self.model.max_tokens}) "
                f"+ 1024 prompt tokens exceed model.max_model_len ({self.model.max_model_len})"
            )
        if self.video.overlap_s >= self.video.chunk_s / 2:
            raise ValueError("video.overlap_s must be less than half of video.chunk_s")
        return self


def job_store_uri(settings: Settings) -> str:
    return settings.jobs.store_uri or str(settings.serve.store_dir / "jobs-store")


def load_settings(args: dict[str, Any] | None = None) -> Settings:
    """Settings from `serve_config.yaml` args (or CLI) merged under the environment."""
    return Settings(**(args or {}))
