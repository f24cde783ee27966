"""serveConfigV2 (and the RayJob's env) come from serve_config.yaml + declared overrides, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from serve_app.config import Settings
from serve_app.kube import (
    K8S_DIR,
    SERVE_CONFIG,
    RenderError,
    generated_files,
    leaf_paths,
    overrides_as_config_patch,
    parse_serve_config,
    sync,
)
from tests.k8s.conftest import find

PROFILES = ("gpu", "cpu-dev")


def test_generated_files_are_up_to_date() -> None:
    stale = sync(check=True)
    assert stale == [], f"run `reelserve k8s sync`: stale {[str(p) for p in stale]}"


@pytest.mark.parametrize("overlay", PROFILES)
def test_service_carries_the_generated_serve_config_verbatim(overlay: str, rendered: dict) -> None:
    text = (K8S_DIR / "overlays" / overlay / "serve-config.yaml").read_text()
    assert find(rendered[overlay], "RayService")["spec"]["serveConfigV2"] == text


@pytest.mark.parametrize("overlay", PROFILES)
def test_serve_config_parses_with_ray_serve_schema_and_settings(overlay: str, rendered: dict) -> None:
    doc = yaml.safe_load(find(rendered[overlay], "RayService")["spec"]["serveConfigV2"])
    schema = ServeDeploySchema.model_validate(doc)
    assert schema.http_options.host == "0.0.0.0"
    (app,) = schema.applications
    assert app.import_path == "serve_app.app:build_app"
    Settings.model_validate(app.args)  # extra="forbid": no unknown keys in args
    parse_serve_config(yaml.safe_dump(doc))  # nor anywhere else (Serve's schema ignores them)


@pytest.mark.parametrize("overlay", PROFILES)
def test_serve_config_differs_from_the_repo_only_by_declared_overrides(overlay: str, rendered: dict) -> None:
    overrides = yaml.safe_load((K8S_DIR / "overlays" / overlay / "serve-overrides.yaml").read_text())
    declared = set(leaf_paths(overrides_as_config_patch(overrides)))
    declared |= {("applications", 0, *p) for p in leaf_paths(overrides.get("application") or {})}
    base = leaf_paths(yaml.safe_load(SERVE_CONFIG.read_text()))
    ours = leaf_paths(yaml.safe_load(find(rendered[overlay], "RayService")["spec"]["serveConfigV2"]))
    changed = {p for p in set(base) | set(ours) if base.get(p, "<absent>") != ours.get(p, "<absent>")}
    assert changed == declared
    for path in declared:
        assert ours[path] == leaf_paths(overrides).get(path[2:] if path[0] == "applications" else path, ours[path])


@pytest.mark.parametrize("overlay", PROFILES)
def test_job_env_gives_the_same_settings_as_the_service(
    overlay: str, rendered: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The RayJob driver reads the image's serve_config.yaml args under REELSERVE_* env (env wins).
    service_args = yaml.safe_load(find(rendered[overlay], "RayService")["spec"]["serveConfigV2"])["applications"][0]
    runtime_env = yaml.safe_load(find(rendered[overlay], "RayJob")["spec"]["runtimeEnvYAML"])
    for name, value in runtime_env["env_vars"].items():
        monkeypatch.setenv(name, value)
    repo_args = yaml.safe_load(SERVE_CONFIG.read_text())["applications"][0]["args"]
    assert Settings(**repo_args) == Settings.model_validate(service_args["args"])


def test_gpu_overrides_reach_the_vlm_deployment(rendered: dict) -> None:
    args = yaml.safe_load(find(rendered["gpu"], "RayService")["spec"]["serveConfigV2"])["applications"][0]["args"]
    settings = Settings.model_validate(args)
    assert settings.model.model == "Qwen/Qwen3-VL-8B-Instruct"
    assert settings.serve.vlm.num_gpus == 1 and settings.model.kv_cache_memory_bytes is None
    assert settings.serve.vlm.to_options()["ray_actor_options"]["num_gpus"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy_locaton: EveryNode\napplications: []\n", "unknown keys \\[.proxy_locaton.\\]"),
        ("http_options: {hots: 0.0.0.0}\napplications: []\n", "unknown keys \\[.http_options.hots.\\]"),
        (
            "applications: [{import_path: a.b:c, deployments: [{name: VLM, num_replica: 2}]}]\n",
            "deployments\\[0\\].num_replica",
        ),
        (
            "applications: [{import_path: a.b:c, deployments: [{name: VLM, num_replicas: two}]}]\n",
            "does not match Ray Serve.s schema",
        ),
        (
            "applications:\n- import_path: serve_app.app:build_app\n  args: {serve: {vlm: {num_gpus: lots}}}\n",
            "not valid reelserve settings",
        ),
        (
            "applications:\n- import_path: serve_app.app:build_app\n  args: {modle: {model: x}}\n",
            "not valid reelserve settings",
        ),
        ("applications: [\n", "not YAML"),
        ("- just a list\n", "must be a mapping"),
    ],
)
def test_seeded_broken_serve_config_is_rejected(text: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        parse_serve_config(text)


def test_seeded_undeclared_edit_of_a_generated_file_is_detected(tmp_path: Path) -> None:
    overlay = tmp_path / "overlays" / "gpu"
    overlay.mkdir(parents=True)
    (overlay / "serve-overrides.yaml").write_text((K8S_DIR / "overlays/gpu/serve-overrides.yaml").read_text())
    assert len(sync(k8s_dir=tmp_path)) == 2 and sync(check=True, k8s_dir=tmp_path) == []
    edited = overlay / "serve-config.yaml"
    assert "request_timeout_s: 900\n" in edited.read_text()  # a value serve_config.yaml sets
    edited.write_text(edited.read_text().replace("request_timeout_s: 900\n", "request_timeout_s: 9999\n"))
    assert sync(check=True, k8s_dir=tmp_path) == [edited]


def test_seeded_unknown_override_key_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "serve-overrides.yaml").write_text("applications: [{}]\n")
    with pytest.raises(RenderError, match="unknown top-level keys"):
        generated_files(tmp_path)
