"""API keys on Kubernetes: a user-created Secret, mounted where the Ingress may run, named by serveConfigV2."""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from serve_app.config import ServeConfig, Settings
from serve_app.kube import REPO_ROOT, RenderOptions, apply_render_options, check_operator_rules, pod_templates
from tests.k8s.conftest import OVERLAY_OPTIONS, find

PROFILES = ("gpu", "cpu-dev")
README = REPO_ROOT / "README.md"


def _readme_secret() -> tuple[str, str]:
    """(Secret name, key) of the `kubectl create secret ... --from-file=KEY=...` in "Run on Kubernetes"."""
    section = README.read_text().split("## Run on Kubernetes", 1)[1]
    found = re.search(r"^kubectl create secret generic (\S*api-keys\S*) --from-file=(\w+)=", section, re.M)
    assert found, "README 'Run on Kubernetes' has no `kubectl create secret generic ...api-keys...` command"
    return found[1], found[2]


def _service(rendered: dict, overlay: str) -> dict[str, Any]:
    return copy.deepcopy(find(rendered[overlay], "RayService"))


def _args(service: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(service["spec"]["serveConfigV2"])["applications"][0]["args"]


def _keys_file(service: dict[str, Any]) -> PurePosixPath:
    path = Settings.model_validate(_args(service)).security.api_keys_file
    assert path is not None, "serveConfigV2 must set security.api_keys_file"
    return PurePosixPath(str(path))


def _templates(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(pod_templates(service["spec"]["rayClusterConfig"]))


def _set_args(service: dict[str, Any], args: dict[str, Any]) -> None:
    doc = yaml.safe_load(service["spec"]["serveConfigV2"])
    doc["applications"][0]["args"] = args
    service["spec"]["serveConfigV2"] = yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.parametrize("overlay", PROFILES)
def test_auth_is_required_and_keys_come_from_a_file(overlay: str, rendered: dict) -> None:
    service = _service(rendered, overlay)
    security = Settings.model_validate(_args(service)).security
    assert security.auth == "required" and security.api_keys is None  # never keys in the RayService
    assert _keys_file(service).is_absolute()


@pytest.mark.parametrize("overlay", PROFILES)
def test_the_readme_secret_is_mounted_where_the_ingress_may_run(overlay: str, rendered: dict) -> None:
    name, key = _readme_secret()
    service = _service(rendered, overlay)
    keys_file = _keys_file(service)
    templates = _templates(service)
    assert service["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    workers = {g: t for g, t in templates.items() if g != "head"}
    assert "cpu" in workers and set(workers) == ({"cpu", "gpu"} if overlay == "gpu" else {"cpu"})
    for group, template in workers.items():
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mounts = [
            m
            for m in template["spec"]["containers"][0]["volumeMounts"]
            if "secret" in volumes[m["name"]] and volumes[m["name"]]["secret"]["secretName"] == name
        ]
        assert len(mounts) == 1, f"group {group} must mount the Secret {name} once"
        (mount,) = mounts
        secret = volumes[mount["name"]]["secret"]
        assert mount["readOnly"] is True and "subPath" not in mount  # subPath would freeze rotation
        assert PurePosixPath(mount["mountPath"]) == keys_file.parent
        assert secret["items"] == [{"key": key, "path": keys_file.name}]
        assert not secret.get("optional"), "a missing Secret must stop the pod, not start it without keys"
        assert secret["defaultMode"] & 0o007 == 0  # not world-readable
    head_volumes = templates["head"]["spec"]["volumes"]
    assert not any("secret" in v for v in head_volumes), "the head runs no Ingress: no keys there"


def test_no_secret_with_keys_is_committed(rendered: dict) -> None:
    for docs in rendered.values():
        assert not [d for d in docs if d["kind"] == "Secret"]


@pytest.mark.parametrize("overlay", PROFILES)
def test_seeded_missing_mount_is_caught(overlay: str, rendered: dict) -> None:
    service = _service(rendered, overlay)
    container = _templates(service)["cpu"]["spec"]["containers"][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "api-keys"]
    problems = check_operator_rules([service])
    assert any("group cpu: may run the Ingress but does not mount a Secret" in p for p in problems), problems


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda spec: spec["volumes"].pop(), id="volume-removed"),
        pytest.param(lambda spec: spec["containers"][0]["volumeMounts"][-1].pop("readOnly"), id="not-read-only"),
        pytest.param(
            lambda spec: spec["containers"][0]["volumeMounts"][-1].update(mountPath="/etc/other"), id="other-path"
        ),
        pytest.param(lambda spec: spec["volumes"][-1]["secret"]["items"][0].update(path="k"), id="other-file"),
        pytest.param(
            lambda spec: spec["volumes"].__setitem__(-1, {"name": "api-keys", "emptyDir": {}}), id="not-a-secret"
        ),
    ],
)
def test_seeded_broken_mount_is_caught(break_it: Any, rendered: dict) -> None:
    service = _service(rendered, "gpu")
    spec = _templates(service)["gpu"]["spec"]
    assert spec["volumes"][-1]["name"] == "api-keys" and spec["containers"][0]["volumeMounts"][-1]["name"] == "api-keys"
    break_it(spec)
    problems = check_operator_rules([service])
    assert any("group gpu: may run the Ingress but does not mount" in p for p in problems), problems


def test_seeded_head_that_runs_replicas_needs_the_mount_too(rendered: dict) -> None:
    service = _service(rendered, "gpu")
    service["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = "2"
    problems = check_operator_rules([service])
    assert any("group head: may run the Ingress but does not mount" in p for p in problems), problems


def test_seeded_serve_config_without_keys_file_or_with_literal_keys(rendered: dict) -> None:
    service = _service(rendered, "gpu")
    args = _args(service)
    del args["security"]["api_keys_file"]
    _set_args(service, args)
    assert any("sets no security.api_keys_file" in p for p in check_operator_rules([service]))
    _set_args(service, args | {"security": {"api_keys": "k" * 32}})
    assert any("sets security.api_keys" in p for p in check_operator_rules([service]))
    _set_args(service, args | {"security": {"auth": "disabled"}})  # explicit, then no key is needed
    assert check_operator_rules([service]) == []


def test_render_time_keys_file_elsewhere_is_caught(rendered: dict) -> None:
    opts = RenderOptions(overlay="gpu", component="service", sets={"security.api_keys_file": "/keys/api"})
    problems = check_operator_rules(apply_render_options(rendered["gpu"], opts))
    assert any("does not mount a Secret read-only at /keys holding api" in p for p in problems), problems


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS))
def test_archive_job_settings_validate_without_any_key(
    overlay: str, rendered: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver builds Settings exactly like data_jobs.archive.main: the image's serve_config.yaml
    # under the runtime env. No key and no mounted file: validation must not need them.
    job = find(rendered[overlay], "RayJob")
    for name, value in yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("REELSERVE_API_KEYS", raising=False)
    settings = ServeConfig.load(None).settings()
    assert settings.security.api_keys is None  # validated without any key, whatever the auth mode
    cluster = job["spec"].get("rayClusterSpec")  # job-shared: none, it runs on the RayService's
    for _, template in pod_templates(cluster) if cluster else []:
        assert not any("secret" in v for v in template["spec"]["volumes"]), "the job serves no HTTP: no keys"


@pytest.mark.parametrize("overlay", sorted(OVERLAY_OPTIONS.keys() - {"job-shared"}))
def test_every_replica_pod_mounts_the_shared_store(overlay: str, rendered: dict) -> None:
    service = _service(rendered, overlay)
    assert _args(service)["jobs"]["store_uri"] == "/mnt/reelserve-store"
    assert check_operator_rules([service]) == []


def test_seeded_multi_node_profile_without_a_shared_store_is_refused(rendered: dict) -> None:
    service = _service(rendered, "gpu")
    args = _args(service)
    del args["jobs"]
    _set_args(service, args)
    problems = check_operator_rules([service])
    assert any("needs a shared store, but serveConfigV2 sets no jobs.store_uri" in p for p in problems), problems


def test_seeded_store_path_without_a_volume_is_refused(rendered: dict) -> None:
    service = _service(rendered, "gpu")
    container = _templates(service)["cpu"]["spec"]["containers"][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "store"]
    problems = check_operator_rules([service])
    assert any("group cpu: may run replicas but does not mount a PersistentVolumeClaim" in p for p in problems)
    args = _args(service)
    args["jobs"] = {"store_uri": "s3://reelserve-store/prod"}  # an object store needs no volume
    _set_args(service, args)
    assert not [p for p in check_operator_rules([service]) if "PersistentVolumeClaim" in p]
