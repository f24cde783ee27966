"""The RayJob entrypoints name the real archive module with arguments it accepts."""

from __future__ import annotations

import importlib.util
import shlex

import pytest
import yaml
from ray.runtime_env import RuntimeEnv

from serve_app.kube import RenderError, RenderOptions, apply_render_options
from tests.k8s.conftest import OVERLAY_OPTIONS, find


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_entrypoint_runs_the_archive_module_with_valid_arguments(overlay: str, rendered: dict) -> None:
    argv = shlex.split(find(rendered[overlay], "RayJob")["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "data_jobs.archive"]
    assert importlib.util.find_spec(argv[2]) is not None, "data_jobs/archive.py is missing"
    from data_jobs.archive import parse_args

    args = parse_args(argv[3:])  # the module's own parser: exits on unknown or missing flags
    assert args.input.startswith("s3://") and args.output.startswith("s3://")


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_runtime_env_parses_as_a_ray_runtime_env(overlay: str, rendered: dict) -> None:
    runtime_env = yaml.safe_load(find(rendered[overlay], "RayJob")["spec"]["runtimeEnvYAML"])
    RuntimeEnv(**runtime_env)  # Ray's own validation of the keys and env var types
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values())


def test_render_sets_the_uris_and_the_shared_cluster(rendered: dict) -> None:
    opts = RenderOptions(overlay="gpu", input_uri="gs://bucket/in dir/", output_uri="gs://bucket/out", component="job")
    (job,) = apply_render_options(rendered["gpu"], opts)
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[argv.index("--input") + 1] == "gs://bucket/in dir/"  # quoted, survives the shell
    assert argv[argv.index("--output") + 1] == "gs://bucket/out"
    shared = apply_render_options(rendered["job-shared"], RenderOptions(overlay="job-shared", cluster="rs-x1"))
    assert find(shared, "RayJob")["spec"]["clusterSelector"] == {"ray.io/cluster": "rs-x1"}
    with pytest.raises(RenderError, match="needs --cluster"):
        apply_render_options(rendered["job-shared"], RenderOptions(overlay="job-shared"))


def test_render_time_settings_reach_the_job_env(rendered: dict) -> None:
    opts = RenderOptions(overlay="gpu", component="job", sets={"model.model": "Qwen/Qwen3-VL-8B-Instruct-FP8"})
    (job,) = apply_render_options(rendered["gpu"], opts)
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    assert env["REELSERVE_MODEL__MODEL"] == "Qwen/Qwen3-VL-8B-Instruct-FP8"
    assert env["REELSERVE_SERVE__VLM__NUM_GPUS"] == "1"  # the overlay's own overrides stay
