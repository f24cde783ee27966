"""Settings: one model, env over serve_config.yaml over defaults, impossible combinations refused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError
from ray.serve.schema import LoggingConfig, ServeDeploySchema

from serve_app.config import (
    CONFIG_ENV,
    AutoscalingSettings,
    ConfigFileError,
    DeploymentSettings,
    ServeConfig,
    Settings,
    load_settings,
)

REPO_CONFIG = Path(__file__).resolve().parents[1] / "serve_config.yaml"


def test_serve_config_is_a_valid_serve_config_and_valid_settings() -> None:
    doc = yaml.safe_load(REPO_CONFIG.read_text())
    ServeDeploySchema.model_validate(doc)
    settings = ServeConfig.load(REPO_CONFIG).settings()
    assert settings.model.model == "auto"
    for name in ("chunker", "vlm"):  # explicit autoscaling and backpressure for both, by default
        section = getattr(Settings().serve, name)
        assert section.max_queued_requests > 0
        assert section.autoscaling != AutoscalingSettings()  # its own numbers, not the generic ones
    vlm = settings.serve.vlm.to_options()
    assert vlm["ray_actor_options"]["runtime_env"]["env_vars"]["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    # Fractional CPUs: the whole graph fits the 4 logical CPUs of a local stack with room for Ray Data.
    total = sum(getattr(settings.serve, d).num_cpus for d in ("ingress", "chunker", "vlm", "aggregator"))
    assert total <= 2


def test_environment_overrides_the_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELSERVE_MODEL__MODEL", "/models/qwen3-vl-2b")
    monkeypatch.setenv("REELSERVE_SERVE__VLM__NUM_GPUS", "1")
    settings = load_settings({"model": {"model": "auto", "max_tokens": 256}, "serve": {"vlm": {"num_cpus": 2}}})
    assert settings.model.model == "/models/qwen3-vl-2b"
    assert settings.model.max_tokens == 256  # file value kept where env is silent
    assert settings.serve.vlm.num_gpus == 1 and settings.serve.vlm.num_cpus == 2
    assert settings.serve.vlm.to_options()["ray_actor_options"]["num_gpus"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"video": {"token_budget": 20_000}}, "max_model_len"),
        ({"model": {"prompt_reserve_tokens": 4000}}, "prompt_reserve_tokens"),
        ({"video": {"chunk_s": 10, "overlap_s": 5.5}}, "overlap_s"),
        ({"serve": {"vlm": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}}}, "min_replicas"),
        ({"modle": {}}, "modle"),
    ],
)
def test_impossible_settings_are_refused(args: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**args)


def _leaves(doc: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(doc, dict) and doc:
        return {p: v for k, sub in doc.items() for p, v in _leaves(sub, (*prefix, k)).items()}
    return {prefix: doc}


def test_serve_config_holds_only_overrides_of_the_defaults() -> None:
    app = yaml.safe_load(REPO_CONFIG.read_text())["applications"][0]
    # Serve's own `deployments:` options (ray_actor_options, ...) would replace what build_app sets.
    assert set(app) == {"name", "route_prefix", "import_path", "args"}
    defaults = _leaves(Settings().model_dump(mode="json"))
    args = _leaves(app["args"])
    assert args
    for path, value in args.items():
        assert path in defaults, f"{'.'.join(path)}: not a settings field"
        assert value != defaults[path], f"{'.'.join(path)}: restates the default {value!r}; drop it"


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    seen.add(model)
    for info in model.model_fields.values():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel) and sub not in seen:
            _models(sub, seen)


def test_every_field_has_a_description() -> None:
    models: set[type[BaseModel]] = set()
    _models(Settings, models)
    assert DeploymentSettings in models and AutoscalingSettings in models
    missing = [f"{m.__name__}.{n}" for m in models for n, info in m.model_fields.items() if not info.description]
    assert missing == []


def test_packaged_config_is_the_repo_file_and_its_load_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    link = Path(__file__).resolve().parents[1] / "serve_app" / "serve_config.yaml"
    assert link.is_symlink() and str(link.readlink()) == "../serve_config.yaml"  # the wheel holds its content
    with caplog.at_level(logging.INFO, logger="serve_app.config"):
        cfg = ServeConfig.load()
    assert cfg.source is not None and cfg.source.resolve() == REPO_CONFIG
    assert cfg.args == yaml.safe_load(REPO_CONFIG.read_text())["applications"][0]["args"]
    assert any(r.name == "serve_app.config" and str(cfg.source) in r.getMessage() for r in caplog.records)


def test_a_named_config_wins_and_a_missing_one_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("applications:\n- name: other\n  import_path: serve_app.app:build_app\n  args: {}\n")
    monkeypatch.setenv(CONFIG_ENV, str(mine))
    assert ServeConfig.load().app_name == "other" and ServeConfig.load().source == mine
    assert ServeConfig.load(REPO_CONFIG).app_name == "reelserve"  # --config beats the environment
    with pytest.raises(ConfigFileError, match=r"nope\.yaml.*from --config.*does not exist"):
        ServeConfig.load(tmp_path / "nope.yaml")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigFileError, match=f"gone\\.yaml.*from {CONFIG_ENV}"):
        ServeConfig.load()


def test_log_level_and_encoding_reach_every_deployment() -> None:
    from serve_app.app import build_graph

    LoggingConfig.model_validate(Settings().logging_config())  # what Ray Serve accepts
    app = build_graph(Settings(security={"auth": "disabled"}, log_level="DEBUG", log_encoding="JSON"))
    seen: dict[str, tuple[str, str]] = {}
    todo = [app]
    while todo:
        deployment = todo.pop()._bound_deployment
        seen[deployment.name] = (deployment.logging_config["log_level"], deployment.logging_config["encoding"])
        init = deployment._replica_config
        todo += [a for a in (*init.init_args, *init.init_kwargs.values()) if hasattr(a, "_bound_deployment")]
    assert seen == dict.fromkeys(["Ingress", "Chunker", "VLM", "Aggregator", "ASR", "JobRunner"], ("DEBUG", "JSON"))


def test_a_partial_deployment_section_keeps_that_deployments_other_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve.vlm: {num_gpus: 1}` (the gpu overlay) must not drop the VLM's env vars, queue or autoscaling."""
    defaults = Settings().serve.vlm
    merged = Settings(serve={"vlm": {"num_gpus": 1, "autoscaling": {"max_replicas": 4}}}).serve.vlm
    assert merged.num_gpus == 1 and merged.autoscaling.max_replicas == 4
    assert merged.env_vars == defaults.env_vars and merged.env_vars["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    assert merged.max_ongoing_requests == defaults.max_ongoing_requests == 16
    assert merged.autoscaling.downscale_delay_s == defaults.autoscaling.downscale_delay_s == 300
    monkeypatch.setenv("REELSERVE_SERVE__ASR__NUM_CPUS", "2")  # the same through the environment
    asr = Settings().serve.asr
    assert asr.num_cpus == 2 and asr.env_vars == {"HF_HUB_OFFLINE": "1"} and asr.max_ongoing_requests == 1
