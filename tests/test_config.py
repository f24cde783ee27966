"""Settings: one model, env over serve_config.yaml over defaults, impossible combinations refused."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError
from ray.serve.schema import ServeDeploySchema

from serve_app.config import Settings, load_settings
from serve_app.local_stack import DEFAULT_CONFIG, ServeConfig


def test_serve_config_is_a_valid_serve_config_and_valid_settings() -> None:
    doc = yaml.safe_load(DEFAULT_CONFIG.read_text())
    ServeDeploySchema.model_validate(doc)
    settings = ServeConfig.load(DEFAULT_CONFIG).settings()
    assert settings.model.model == "auto"
    for name in ("chunker", "vlm"):  # explicit autoscaling and backpressure for both
        section = doc["applications"][0]["args"]["serve"][name]
        assert {"max_ongoing_requests", "max_queued_requests", "autoscaling"} <= set(section)
        assert "target_ongoing_requests" in section["autoscaling"]
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
        ({"video": {"chunk_s": 10, "overlap_s": 5}}, "overlap_s"),
        ({"serve": {"vlm": {"autoscaling": {"min_replicas": 3, "max_replicas": 2}}}}, "min_replicas"),
        ({"modle": {}}, "modle"),
    ],
)
def test_impossible_settings_are_refused(args: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**args)
