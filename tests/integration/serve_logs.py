"""The Serve log files of the test session's Ray cluster, read back (the integration suite logs JSON)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ray


def serve_log_records() -> list[dict]:
    """Every line of every Serve log file of this session, parsed as JSON (a line that is not fails), with
    the file's name under `file`."""
    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"  # no public accessor
    records = []
    for path in sorted(logs.glob("*.log")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise AssertionError(f"{path.name}:{number} is not JSON: {line[:200]!r}") from None
            records.append({**record, "file": path.name})
    return records


def chunk_lines(records: list[dict], request_id: str, video_id: str) -> set[int]:
    """Indices of the chunks the VLM replicas logged (`video <id> chunk <n>: ...`) under `request_id`."""
    line = re.compile(rf"^video {video_id} chunk (\d+): \d+ frames")
    return {
        int(m[1])
        for r in records
        if r.get("request_id") == request_id and "_VLM_" in r["file"] and (m := line.match(r["message"]))
    }
