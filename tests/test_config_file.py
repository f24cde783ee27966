"""An installed reelserve (the Docker image: a non-editable `pip install .`) loads the serve_config.yaml it ships.

Builds the wheel from exactly the files the Dockerfile copies, installs it into a temp folder and imports that
copy (not the repository) in a subprocess run from an unrelated folder. No network: --no-deps, --no-index and
--no-build-isolation (setuptools comes from the venv).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("serve_app.config").setLevel(logging.INFO)
import serve_app
from serve_app.config import ConfigFileError, ServeConfig

cfg = ServeConfig.load()
settings = cfg.settings()
try:
    ServeConfig.load(sys.argv[1])
    missing = None
except ConfigFileError as exc:
    missing = str(exc)
print(json.dumps({
    "package": serve_app.__file__,
    "source": str(cfg.source),
    "content": cfg.source.read_text(),
    "auth": settings.security.auth,
    "missing": missing,
}))
"""


def _docker_copied_sources() -> list[str]:
    """The sources of the Dockerfile's COPY lines: what `pip install .` sees in the image."""
    lines = (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    sources = {src for line in lines if line.startswith("COPY ") for src in line.split()[1:-1]}
    return sorted(s for s in sources if not s.startswith("--"))


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.timeout(180)
def test_the_installed_package_loads_its_packaged_serve_config(tmp_path: Path) -> None:
    src, wheels, site, run = (tmp_path / d for d in ("src", "wheels", "site", "run"))
    for d in (src, run):
        d.mkdir()
    for name in _docker_copied_sources():
        if (REPO / name).is_dir():  # symlinks kept as links, as `COPY` keeps them
            shutil.copytree(REPO / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    assert (src / "serve_app" / "serve_config.yaml").is_symlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELSERVE_", "PYTHON", "PIP_"))}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation", str(src), "-w", str(wheels)], src, env
    )
    (wheel,) = wheels.glob("reelserve-*.whl")
    _run([*pip, "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)], run, env)

    installed = site / "serve_app" / "serve_config.yaml"
    assert installed.is_file() and not installed.is_symlink()  # the content, not a link into the build tree
    static = REPO / "serve_app" / "web" / "static"
    for page_file in sorted(static.iterdir()):  # the web page ships prebuilt, as package data
        assert (site / "serve_app" / "web" / "static" / page_file.name).read_bytes() == page_file.read_bytes()
    proc = _run([sys.executable, "-c", PROBE, str(run / "nope.yaml")], run, env | {"PYTHONPATH": str(site)})
    out = json.loads(proc.stdout)
    assert Path(out["package"]).is_relative_to(site), out["package"]  # the installed copy, not the repository
    assert Path(out["source"]) == installed
    assert out["content"] == (REPO / "serve_config.yaml").read_text()
    assert out["auth"] == "disabled"  # the laptop profile's args were applied, not the built-in defaults
    assert f"INFO serve_app.config: serve config: {installed}" in proc.stderr
    assert out["missing"] and "nope.yaml" in out["missing"] and "does not exist" in out["missing"]
