"""Probe stage: one listed input → its chunk rows, or one failed / skipped row."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from data_jobs.rows import row
from data_jobs.store import ArchiveStore, result_key
from serve_app.config import VideoSettings
from serve_app.errors import ReelserveError
from serve_app.schemas import AnalyzeOptions
from serve_app.store.files import local_path
from serve_app.video import chunking_options, file_sha256, plan_chunks, probe

logger = logging.getLogger(__name__)


def probe_row(item: dict[str, Any], *, video: VideoSettings, options: dict[str, Any], output: str) -> list[dict]:
    """`flat_map` UDF (a CPU task). Input columns: uri, mode (optional), prompt (optional)."""
    started_at = time.time()
    uri = item["uri"]
    overrides = {k: item[k] for k in ("mode", "prompt") if item.get(k)}
    try:
        analyze = AnalyzeOptions.model_validate({**options, **overrides})
        fetch_started = time.perf_counter()
        path = local_path(uri)
        fetch_s = time.perf_counter() - fetch_started
        sha = file_sha256(path)  # once per file: the skip check and VideoInfo both use it
    except (ValueError, OSError) as exc:  # bad per-video options, unreadable input
        # No content to hash: the key comes from the URI's hash (a URI itself has '/' and shared prefixes).
        key = result_key(hashlib.sha256(uri.encode()).hexdigest(), "unreadable")
        return [row(kind="failed", uri=uri, result_key=key, error=str(exc)[:2000])]
    chunking = chunking_options(analyze, video)
    key = result_key(sha, analyze.model_dump_json() + chunking.model_dump_json())
    base = {
        "uri": uri,
        "local_path": path,
        "result_key": key,
        "sha256": sha,
        "options_json": analyze.model_dump_json(),
    }
    if ArchiveStore(output).is_complete(key):
        return [row(kind="skipped", **base)]
    probe_started = time.perf_counter()
    try:
        info = probe(path, video, sha256=sha)
        plans = plan_chunks(info, chunking, video)
    except ReelserveError as exc:
        logger.warning("%s: %s", uri, exc.detail)
        return [row(kind="failed", error=f"{exc.title}: {exc.detail}", **base)]
    timings = {"fetch_s": fetch_s, "probe_s": time.perf_counter() - probe_started}
    common = {
        **base,
        "n_chunks": len(plans),
        "info_json": info.model_dump_json(),
        "timings_json": json.dumps(timings),
        "started_at": started_at,
    }
    return [row(kind="chunk", plan_json=p.model_dump_json(), **common) for p in plans]
