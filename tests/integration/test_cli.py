"""`reelserve analyze --server` against the running app, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from serve_app.analysis.chapters import chapters_from, to_markdown
from serve_app.schemas import VideoAnalysis

pytestmark = pytest.mark.integration


def test_cli_analyze_against_a_server(server: str, api_key: str, clip_6s_webm: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "analysis.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "serve_app.cli",
            "analyze",
            str(clip_6s_webm),
            "--server",
            server,
            "--mode",
            "ui",
            "-o",
            str(out),
        ],
        capture_output=True,
        env={**os.environ, "REELSERVE_API_KEY": api_key},
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    analysis = VideoAnalysis.model_validate(json.loads(out.read_text()))
    assert analysis.request.mode == "ui" and analysis.video.codec == "vp8"
    assert "chunks     1 (0 failed)" in proc.stdout and str(out.resolve()) in proc.stdout


def test_cli_reports_problems_with_exit_code_2(server: str, api_key: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    proc = subprocess.run(
        [sys.executable, "-m", "serve_app.cli", "analyze", str(bad), "--server", server],
        capture_output=True,
        env={**os.environ, "REELSERVE_API_KEY": api_key},
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "HTTP 422" in proc.stderr


def test_cli_uses_a_job_for_long_videos_and_streams_chunks(
    server: str, api_key: str, clip_50s_mp4: Path, tmp_path: Path
) -> None:
    # clip_50s_mp4: more than 2 chunks of 20 s.
    out, chapters, sheet = tmp_path / "long.json", tmp_path / "chapters.md", tmp_path / "sheet.jpg"
    command = [sys.executable, "-m", "serve_app.cli", "analyze", str(clip_50s_mp4), "--server", server, "-o", str(out)]
    command += ["--chapters", str(chapters), "--contact-sheet", str(sheet)]
    env = {**os.environ, "REELSERVE_API_KEY": api_key, "COLUMNS": "200"}
    proc = subprocess.run(command, capture_output=True, env=env, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "queued" in proc.stderr and proc.stderr.count("chunk ") >= 3, proc.stderr
    analysis = VideoAnalysis.model_validate(json.loads(out.read_text()))
    assert [c.index for c in analysis.chunks] == [0, 1, 2] and "chunks     3 (0 failed)" in proc.stdout
    # The exports: chapters as `[mm:ss] title` lines (the same as the server's), the kept frames' contact sheet.
    lines = chapters.read_text().splitlines()
    assert lines and all(re.fullmatch(r"- \[\d\d:\d\d\] .+", line) for line in lines), lines
    assert chapters.read_text() == to_markdown(chapters_from(analysis.timeline, analysis.video.duration_s))
    with Image.open(sheet) as image:
        assert image.format == "JPEG" and image.width > 160
