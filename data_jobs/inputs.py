"""What to process: a folder (recursive), a glob, an object-store URI, or a manifest (CSV / JSONL).

Every input becomes a `VideoInput` (a URI plus optional per-video mode, prompt,
audio and language). Listing does not open files: non-video files are found out, and
reported, by the probe stage.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from serve_app.store.files import resolve, to_uri

MANIFEST_SUFFIXES = (".csv", ".jsonl")


#: Per-video manifest columns that override the run's options.
OVERRIDES = ("mode", "prompt", "audio", "language")


@dataclass(frozen=True)
class VideoInput:
    uri: str
    mode: str | None = None
    prompt: str | None = None
    audio: str | None = None
    language: str | None = None


def list_inputs(spec: str) -> list[VideoInput]:
    """Expand `spec` into the videos to process, sorted and de-duplicated."""
    if spec.endswith(MANIFEST_SUFFIXES):
        return _read_manifest(spec)
    if any(ch in spec for ch in "*?["):
        return _glob(spec)
    fs, path = resolve(spec)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"input {spec} does not exist")
    if info.type == pafs.FileType.File:
        return [VideoInput(to_uri(fs, path))]
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    files = sorted(f.path for f in found if f.type == pafs.FileType.File and not _hidden(f.path))
    return [VideoInput(to_uri(fs, p)) for p in files]


def _glob(spec: str) -> list[VideoInput]:
    # The folder part before the first wildcard is listed; the pattern filters it.
    head = spec[: min(spec.index(ch) for ch in "*?[" if ch in spec)]
    root = head.rsplit("/", 1)[0] if "/" in head else "."
    fs, base = resolve(root)
    pattern = resolve(spec)[1] if "://" in spec else str(Path(base) / spec[len(root) :].lstrip("/"))
    found = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return [
        VideoInput(to_uri(fs, f.path))
        for f in sorted(found, key=lambda f: f.path)
        if f.type == pafs.FileType.File and not _hidden(f.path) and _matches(f.path, pattern)
    ]


def _hidden(path: str) -> bool:
    return Path(path).name.startswith(".")


def _matches(path: str, pattern: str) -> bool:
    # fnmatch's `*` already crosses folders; `**/` must also match no folder at all, as in shell globs.
    return fnmatch.fnmatch(path, pattern) or ("**/" in pattern and fnmatch.fnmatch(path, pattern.replace("**/", "")))


def _read_manifest(spec: str) -> list[VideoInput]:
    """One row per video: `path` (or `uri`), optional `mode`, `prompt`, `audio` and `language`; relative paths
    are manifest-relative."""
    fs, path = resolve(spec)
    with fs.open_input_stream(path) as fh:
        text = fh.read().decode()
    rows = (
        list(csv.DictReader(io.StringIO(text)))
        if spec.endswith(".csv")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    base = path.rsplit("/", 1)[0]
    inputs = []
    for number, row in enumerate(rows, start=1):
        target = row.get("path") or row.get("uri")
        if not target:
            raise ValueError(f"{spec} row {number}: needs a 'path' (or 'uri') column")
        if "://" not in target and not target.startswith("/"):
            target = f"{base}/{target}"
        if "://" not in target and isinstance(fs, pafs.LocalFileSystem):
            target = str(Path(target).resolve())
        elif "://" not in target:
            target = to_uri(fs, target)
        overrides = {key: row.get(key) or None for key in OVERRIDES}
        inputs.append(VideoInput(target, **overrides))
    return inputs
