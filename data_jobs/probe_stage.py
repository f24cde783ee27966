"""Probe stage: one listed input → its chunk rows, or one failed / skipped row."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from data_jobs.inputs import OVERRIDES
from data_jobs.rows import row
from data_jobs.store import ArchiveStore, result_key
from serve_app.config import AsrSettings, VideoSettings
from serve_app.errors import InvalidOptions, ReelserveError, StoreNotShared
from serve_app.flow import NO_SPEECH, Speech
from serve_app.schemas import AnalyzeOptions, VideoInfo
from serve_app.speech import shared_recognizer, transcribe_file
from serve_app.store.media import MediaCache, media_path
from serve_app.video import chunking_options, file_sha256, plan_file

logger = logging.getLogger(__name__)


def probe_row(
    item: dict[str, Any],
    *,
    video: VideoSettings,
    asr: AsrSettings,
    cache: MediaCache,
    options: dict[str, Any],
    output: str,
) -> list[dict]:
    """`flat_map` UDF (a CPU task). Input columns: uri, and the optional per-video overrides (`OVERRIDES`).

    The video's audio track is transcribed here too, whole and once (the speech stage of the one flow),
    so each chunk row carries the segments it overlaps; the decode of this video's chunks starts after
    it, while other videos decode (an archive's throughput, not one video's latency, is what counts)."""
    started_at = time.time()
    uri = item["uri"]
    overrides = {k: item[k] for k in OVERRIDES if item.get(k)}
    try:
        analyze = AnalyzeOptions.model_validate({**options, **overrides})
        fetch_started = time.perf_counter()
        path = media_path(uri, cache)
        fetch_s = time.perf_counter() - fetch_started
        sha = file_sha256(path)  # once per file: the skip check and VideoInfo both use it
    except (ValueError, OSError, StoreNotShared) as exc:  # bad per-video options, unreadable or unseen input
        # No content to hash: the key comes from the URI's hash (a URI itself has '/' and shared prefixes).
        key = result_key(hashlib.sha256(uri.encode()).hexdigest(), "unreadable")
        return [row(kind="failed", uri=uri, result_key=key, error=str(exc)[:2000])]
    chunking = chunking_options(analyze, video)
    key = result_key(sha, analyze.model_dump_json() + chunking.model_dump_json())
    base = {
        "uri": uri,
        "result_key": key,
        "sha256": sha,
        "options_json": analyze.model_dump_json(),
    }
    if ArchiveStore(output).is_complete(key):
        return [row(kind="skipped", **base)]
    probe_started = time.perf_counter()
    try:
        info, plans = plan_file(path, chunking, video, sha256=sha)
    except ReelserveError as exc:
        logger.warning("%s: %s", uri, exc.detail)
        return [row(kind="failed", error=f"{exc.title}: {exc.detail}", **base)]
    timings = {"fetch_s": fetch_s, "probe_s": time.perf_counter() - probe_started}
    try:
        speech = transcribe(path, info, analyze, asr)
    except InvalidOptions as exc:  # a language the model does not know: this video's request is bad
        return [row(kind="failed", error=f"{exc.title}: {exc.detail}", **base)]
    common = {
        **base,
        "n_chunks": len(plans),
        "info_json": info.model_dump_json(),
        "timings_json": json.dumps(timings),
        "started_at": started_at,
    }
    return [
        row(
            kind="chunk",
            plan_json=p.model_dump_json(),
            speech_json=json.dumps([seg.model_dump(mode="json") for seg in speech.segments(p)]),
            transcript_json=speech.transcript.model_dump_json() if p.index == 0 and speech.transcript else None,
            transcript_error=speech.error if p.index == 0 else None,
            **common,
        )
        for p in plans
    ]


def transcribe(path: str, info: VideoInfo, options: AnalyzeOptions, asr: AsrSettings) -> Speech:
    """The speech stage in a Ray Data task, with the same code as the ASR deployment; best effort as
    online: a failure is `Speech.error`, and the video goes on with pixels only."""
    if not asr.enabled or not Speech.wanted(options, info):
        return NO_SPEECH
    recognizer = shared_recognizer(asr)
    recognizer.check_language(options.language)
    try:
        return Speech(transcript=transcribe_file(recognizer, path, options.language))
    except Exception as exc:  # noqa: BLE001 - the policy: pixels only, with the reason
        return Speech.failed(path, exc)
