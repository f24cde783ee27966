"""`reelserve search --index OUT`: an archive's output searched on this machine, no server."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from data_jobs.store import ArchiveStore
from serve_app.cli import app
from tests.search.test_index import analysis


def test_search_an_archive_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = analysis("e", said=[(1.0, 5.5, "Let us review the quarterly budget.")], visible=[["Budget 2025"], []])
    ArchiveStore(str(out)).write_success("eeee-1", "/in/meeting.mp4", result)
    runner = CliRunner()

    shown = runner.invoke(app, ["search", "budget", "--index", str(out), "--json"])
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.stdout)
    assert {(h["kind"], h["result_key"]) for h in found["hits"]} == {("speech", "eeee-1"), ("screen_text", "eeee-1")}
    assert (out / "search" / "index.sqlite").is_file()

    listed = runner.invoke(app, ["search", "quarterly", "--index", str(out)])
    assert listed.exit_code == 0 and "«quarterly»" in listed.stdout and "analyses/eeee-1.json#t=1,5.5" in listed.stdout

    assert runner.invoke(app, ["search", "()", "--index", str(out)]).exit_code == 2  # nothing to search
    assert runner.invoke(app, ["search", "budget"]).exit_code == 2  # neither --server nor --index
