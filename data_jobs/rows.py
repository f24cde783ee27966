"""The row contract between the archive stages (one fixed set of columns, so Arrow blocks line up).

kind = "chunk":   one chunk of a video to decode and infer
kind = "failed":  a video that could not be probed or planned (error says why)
kind = "skipped": a video already complete in OUT (same content and options)
"""

from __future__ import annotations

from typing import Any

COLUMNS: dict[str, str] = {
    "kind": "chunk | failed | skipped",
    "uri": "the input as listed (each task opens it on its own node)",
    "result_key": "content hash + options hash (the output file names)",
    "sha256": "content hash of the file (VideoInfo.video_id is its first 16 hex digits)",
    "n_chunks": "chunks planned for this video (None for failed/skipped)",
    "info_json": "VideoInfo",
    "options_json": "AnalyzeOptions for this video",
    "timings_json": "fetch_s and probe_s of this video",
    "started_at": "Unix time the video's processing began (its wall_s runs from here)",
    "plan_json": "ChunkPlan of this chunk",
    "speech_json": "the transcript segments this chunk overlaps (a JSON list)",
    "transcript_json": "the video's Transcript (chunk 0's row only; None: no audio, audio off, or failed)",
    "transcript_error": "why the video has no transcript (chunk 0's row only)",
    "payload": "pickled SampledChunk (decode -> infer), then None",
    "result_json": "ChunkResult (after infer)",
    "error": "why the video failed",
}


def row(**values: Any) -> dict[str, Any]:
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise KeyError(f"unknown archive row columns {sorted(unknown)}; known: {sorted(COLUMNS)}")
    return {name: values.get(name) for name in COLUMNS}
