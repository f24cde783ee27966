"""The archive job's output layout under OUT (any pyarrow/fsspec filesystem), written atomically.

    OUT/videos/<result-key>.parquet     one row per video (written last: the completion marker)
    OUT/chunks/<result-key>.parquet     one row per chunk
    OUT/transcripts/<result-key>.parquet one row per transcript segment (videos with speech)
    OUT/analyses/<result-key>.json      the same `VideoAnalysis` the HTTP API returns
    OUT/report.json                     the run's report

`video_id` means what it means everywhere: the content hash (`VideoInfo.video_id`). The files are named
by the `result_key`: the content hash plus a hash of the analysis options, so a re-run with the same
options finds finished work, the same video under other options gets its own result, and a file
rewritten under the same name replaces (never duplicates) rows. Local
writes go to a temporary name and are renamed; object stores publish an
object only when its upload completes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from serve_app.schemas import VideoAnalysis
from serve_app.store.files import FileStore

VIDEO_SCHEMA = pa.schema(
    [
        ("result_key", pa.string()),
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("mode", pa.string()),
        ("duration_s", pa.float64()),
        ("chunk_count", pa.int32()),
        ("chunks_failed", pa.int32()),
        ("summary_json", pa.string()),
        ("stats_json", pa.string()),
        ("model", pa.string()),
        ("options_json", pa.string()),
        ("finished_at", pa.string()),
    ]
)

CHUNK_SCHEMA = pa.schema(
    [
        ("result_key", pa.string()),
        ("video_id", pa.string()),
        ("index", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("frame_times_s", pa.list_(pa.float64())),
        ("mode", pa.string()),
        ("result_json", pa.string()),
        ("text", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("visual_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("infer_s", pa.float64()),
        ("decode_s", pa.float64()),
        ("error", pa.string()),
    ]
)


TRANSCRIPT_SCHEMA = pa.schema(
    [
        ("result_key", pa.string()),
        ("video_id", pa.string()),
        ("index", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("text", pa.string()),
    ]
)


def result_key(content: str, options_key: str) -> str:
    """`<content hash[:16]>-<options hash[:8]>`: one result per video and analysis options."""
    return f"{content[:16]}-{hashlib.sha256(options_key.encode()).hexdigest()[:8]}"


class ArchiveStore:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.files = FileStore(uri)

    @staticmethod
    def _key(kind: str, key: str) -> str:
        return f"{kind}/{key}.{'json' if kind == 'analyses' else 'parquet'}"

    def is_complete(self, key: str) -> bool:
        """Finished and intact: the video row says ok and its analysis is there."""
        if not (self.files.exists(self._key("videos", key)) and self.files.exists(self._key("analyses", key))):
            return False
        rows = pq.read_table(self.files.path(self._key("videos", key)), filesystem=self.files.fs).to_pylist()
        return bool(rows) and rows[0]["status"] == "ok"

    def write_success(self, key: str, path: str, analysis: VideoAnalysis) -> None:
        chunks = [
            {
                "result_key": key,
                "video_id": analysis.video_id,
                "index": c.index,
                "start_s": c.start_s,
                "end_s": c.end_s,
                "frame_times_s": c.frame_times_s,
                "mode": c.mode,
                "result_json": json.dumps(c.output) if c.output is not None else None,
                "text": c.text,
                "prompt_tokens": c.prompt_tokens,
                "visual_tokens": c.visual_tokens,
                "completion_tokens": c.completion_tokens,
                "infer_s": c.infer_s,
                "decode_s": c.decode.decode_s if c.decode else 0.0,
                "error": c.error,
            }
            for c in analysis.chunks
        ]
        self._write_table(self._key("chunks", key), chunks, CHUNK_SCHEMA)
        if analysis.transcript is not None:
            said = [
                {"result_key": key, "video_id": analysis.video_id, "index": i, **seg.model_dump(exclude={"words"})}
                for i, seg in enumerate(analysis.transcript.segments)
            ]
            self._write_table(self._key("transcripts", key), said, TRANSCRIPT_SCHEMA)
        self.files.write_bytes(self._key("analyses", key), analysis.model_dump_json(indent=2).encode())
        self._write_video_row(
            key,
            video_id=analysis.video_id,
            path=path,
            sha256=analysis.video.sha256,
            status="ok",
            error=None,
            mode=analysis.request.mode,
            duration_s=analysis.video.duration_s,
            chunk_count=len(analysis.chunks),
            chunks_failed=analysis.stats.chunks_failed,
            summary_json=analysis.summary.model_dump_json() if analysis.summary else None,
            stats_json=analysis.stats.model_dump_json(),
            model=analysis.model,
            options_json=analysis.request.model_dump_json(),
        )

    def write_failure(self, key: str, path: str, sha256: str | None, mode: str, error: str) -> None:
        # A failed redo must not leave an old analysis looking current.
        self.files.delete(self._key("analyses", key))
        video_id = sha256[:16] if sha256 else None
        self._write_video_row(key, video_id=video_id, path=path, sha256=sha256, status="failed", error=error, mode=mode)

    def _write_video_row(self, key: str, **fields: Any) -> None:
        row = {name: None for name in VIDEO_SCHEMA.names}
        row.update(fields, result_key=key, finished_at=datetime.now(UTC).isoformat())
        self._write_table(self._key("videos", key), [row], VIDEO_SCHEMA)

    def _write_table(self, key: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
        table = pa.Table.from_pylist(rows, schema=schema)
        self.files.publish(key, lambda out: pq.write_table(table, out))

    def write_report(self, report: dict[str, Any]) -> None:
        self.files.write_bytes("report.json", json.dumps(report, indent=2).encode())
