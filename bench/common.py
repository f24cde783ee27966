"""Shared helpers of the benchmarks: hardware line, cached generated videos, timing."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = (REPO_ROOT / ".." / "shared" / "media").resolve()
#: Generated inputs are kept between runs (git-ignored).
CACHE = REPO_ROOT / ".tmp" / "bench"

sys.path.insert(0, str(REPO_ROOT))  # `python bench/x.py` from a fresh clone, before `pip install -e .`


def hardware() -> str:
    """One line: CPU model, cores, load, Python and PyAV versions (next to every number)."""
    import av

    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{model}; {os.cpu_count()} cores; load {load}; Python {platform.python_version()}; "
        f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"
    )


def cached(name: str, make: Callable[[Path], object]) -> Path:
    """`CACHE/name`, made by `make(path)` on first use (written to a temp name, then renamed)."""
    path = CACHE / name
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        started = time.perf_counter()
        print(f"generating {name} (once; cached in {CACHE}) ...", flush=True)
        make(partial)
        partial.rename(path)
        print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)
    return path


@contextmanager
def timed(into: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        into[key] = time.perf_counter() - started
