"""The archive output store: identity, atomic publishing, completeness (pure; local filesystem)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from data_jobs.store import ArchiveStore, result_key


def test_result_key_is_content_plus_options() -> None:
    sha = "ab" * 32
    assert result_key(sha, "opts-1") == result_key(sha, "opts-1")
    assert result_key(sha, "opts-1") != result_key(sha, "opts-2")
    assert result_key(sha, "opts-1").startswith(sha[:16])


def test_failure_rows_are_published_atomically_and_never_complete(tmp_path: Path) -> None:
    store = ArchiveStore(str(tmp_path / "out"))
    store.write_failure("v1", "/in/x.mp4", None, "describe", "Not a readable video: nope")
    rows = pq.read_table(tmp_path / "out" / "videos" / "v1.parquet").to_pylist()
    assert rows[0]["status"] == "failed" and rows[0]["error"].startswith("Not a readable")
    assert not store.is_complete("v1")
    assert not list((tmp_path / "out").rglob("*.tmp-*")), "no temporary files left behind"
    store.write_report({"videos": {"ok": 0}})
    assert (tmp_path / "out" / "report.json").read_text().startswith("{")
