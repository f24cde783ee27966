"""Probe stage: one listed input → its chunk rows, or one failed / skipped row."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from data_jobs.rows import row
from data_jobs.store import ArchiveStore, video_id
from serve_app.config import VideoSettings
from serve_app.errors import ReelserveError
from serve_app.schemas import AnalyzeOptions
from serve_app.storage import local_path
from serve_app.video import chunking_options, plan_chunks, probe

logger = logging.getLogger(__name__)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def probe_row(item: dict[str, Any], *, video: VideoSettings, options: dict[str, Any], output: str) -> list[dict]:
    """`flat_map` UDF (a CPU task). Input columns: uri, mode (optional), prompt (optional)."""
    uri = item["uri"]
    overrides = {k: item[k] for k in ("mode", "prompt") if item.get(k)}
    try:
        analyze = AnalyzeOptions.model_validate({**options, **overrides})
        path = local_path(uri)
        sha = file_sha256(path)
    except (ValueError, OSError) as exc:  # bad per-video options, unreadable input
        return [row(kind="failed", uri=uri, video_id=video_id(uri, "unreadable"), error=str(exc)[:2000])]
    chunking = chunking_options(analyze, video)
    vid = video_id(sha, analyze.model_dump_json() + chunking.model_dump_json())
    base = {"uri": uri, "local_path": path, "video_id": vid, "sha256": sha, "options_json": analyze.model_dump_json()}
    if ArchiveStore(output).is_complete(vid):
        return [row(kind="skipped", **base)]
    try:
        info = probe(path, video)
        plans = plan_chunks(info, chunking, video)
    except ReelserveError as exc:
        logger.warning("%s: %s", uri, exc.detail)
        return [row(kind="failed", error=f"{exc.title}: {exc.detail}", **base)]
    common = {**base, "n_chunks": len(plans), "info_json": info.model_dump_json()}
    return [row(kind="chunk", plan_json=p.model_dump_json(), **common) for p in plans]
