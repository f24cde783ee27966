"""The bulk archive job on the session's real Ray cluster, sharing the Serve app's VLM deployment."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_jobs.archive import run
from serve_app.analysis import parse_answer
from serve_app.config import Settings
from serve_app.schemas import ChunkResult, VideoAnalysis

pytestmark = pytest.mark.integration

OPTIONS = {"mode": "screen_share", "aggregate": True}


@pytest.fixture(scope="module")
def archive_in(
    tmp_path_factory: pytest.TempPathFactory, media_dir: Path, clip_9s_mp4: Path, clip_25s_webm: Path
) -> Path:
    root = tmp_path_factory.mktemp("archive") / "in"
    (root / "generated").mkdir(parents=True)
    for name in ("display-dual-monitors.webm", "vtest.avi", "Megamind.avi"):
        shutil.copy(media_dir / name, root / name)  # a temp copy, removed with the test's temp dir
    shutil.copy(clip_9s_mp4, root / "generated" / "one.mp4")
    shutil.copy(clip_25s_webm, root / "generated" / "two.webm")
    (root / "broken.mp4").write_bytes((root / "vtest.avi").read_bytes()[:200_000])
    (root / "readme.txt").write_text("not a video\n")
    return root


def read_rows(out: Path, kind: str) -> list[dict]:
    return [row for f in sorted((out / kind).glob("*.parquet")) for row in pq.read_table(f).to_pylist()]


def snapshot(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "report.json"
    }


def test_archive_outputs_resume_and_redo(server: str, settings: Settings, archive_in: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run(str(archive_in), str(out), settings, OPTIONS)
    assert first["videos"] == {"inputs": 7, "ok": 5, "failed": 2, "skipped": 0}
    assert json.loads((out / "report.json").read_text()) == first

    videos = read_rows(out, "videos")
    assert len(videos) == 7 and len({v["result_key"] for v in videos}) == 7
    failed = {Path(v["path"]).name: v["error"] for v in videos if v["status"] == "failed"}
    assert set(failed) == {"broken.mp4", "readme.txt"}
    assert "truncated" in failed["broken.mp4"] and "not a readable media container" in failed["readme.txt"]

    chunks = read_rows(out, "chunks")
    ok = [v for v in videos if v["status"] == "ok"]
    assert len(chunks) == sum(v["chunk_count"] for v in ok) == first["chunks"]["inferred"]
    for row in chunks:
        assert row["error"] is None and row["mode"] == "screen_share" and row["frame_times_s"]
        assert parse_answer("screen_share", row["text"]) == json.loads(row["result_json"])
        assert row["visual_tokens"] > 0 and row["prompt_tokens"] > row["visual_tokens"]
    for v in ok:
        analysis = VideoAnalysis.model_validate_json((out / "analyses" / f"{v['result_key']}.json").read_text())
        assert analysis.video_id == v["video_id"] == v["sha256"][:16] and analysis.summary is not None
        assert v["result_key"].startswith(v["video_id"] + "-")
        assert analysis.chunks[0].start_s == 0 and analysis.chunks[-1].end_s == pytest.approx(v["duration_s"])
        assert [c.index for c in analysis.chunks] == list(range(v["chunk_count"]))

    # Megamind.avi has speech (its first audio packet is corrupt): a transcript Parquet, and the chunks'
    # results carry the lines their prompts had. Videos without audio have no transcript.
    said = read_rows(out, "transcripts")
    megamind = next(v for v in ok if Path(v["path"]).name == "Megamind.avi")
    assert {r["result_key"] for r in said} == {megamind["result_key"]}
    assert "petty" in " ".join(r["text"] for r in said).lower()
    analysis = VideoAnalysis.model_validate_json((out / "analyses" / f"{megamind['result_key']}.json").read_text())
    assert analysis.transcript is not None and analysis.transcript.packets_skipped >= 1
    assert [r["text"] for r in said] == [s.text for s in analysis.transcript.segments]
    assert all(c.transcript and c.transcript_tokens > 0 for c in analysis.chunks)

    # Second run: nothing to infer, outputs unchanged.
    before = snapshot(out)
    second = run(str(archive_in), str(out), settings, OPTIONS)
    assert second["videos"] == {"inputs": 7, "ok": 0, "failed": 2, "skipped": 5}
    assert second["chunks"]["inferred"] == 0 and second["tokens"]["visual"] == 0
    assert {k: v for k, v in snapshot(out).items() if "videos/" not in k or k in before} == {
        k: v for k, v in before.items()
    } | {k: v for k, v in snapshot(out).items() if k.startswith("videos/") and k in before}

    # Delete one video's outputs: only that one is redone.
    victim = next(v for v in ok if Path(v["path"]).name == "one.mp4")
    (out / "analyses" / f"{victim['result_key']}.json").unlink()
    third = run(str(archive_in), str(out), settings, OPTIONS)
    assert third["videos"] == {"inputs": 7, "ok": 1, "failed": 2, "skipped": 4}
    assert third["chunks"]["inferred"] == victim["chunk_count"]
    assert len(read_rows(out, "videos")) == 7 and len(read_rows(out, "chunks")) == len(chunks)


def test_manifest_with_per_video_modes(server: str, settings: Settings, archive_in: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    rows = [
        {"path": str(archive_in / "generated" / "one.mp4"), "mode": "ui"},
        {"path": str(archive_in / "Megamind.avi"), "mode": "custom", "prompt": "Who is on screen?"},
        {"path": str(archive_in / "generated" / "two.webm")},
    ]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    report = run(str(manifest), str(out), settings, {"mode": "meeting", "aggregate": False})
    assert report["videos"]["ok"] == 3
    modes = {}
    for path in (out / "analyses").glob("*.json"):
        analysis = VideoAnalysis.model_validate_json(path.read_text())
        modes[analysis.video.duration_s] = (analysis.request.mode, analysis.request.prompt, analysis.summary)
        for chunk in analysis.chunks:
            assert ChunkResult.model_validate(chunk).ok
    assert sorted(m[:2] for m in modes.values()) == [
        ("custom", "Who is on screen?"),
        ("meeting", None),
        ("ui", None),
    ]
    assert all(m[2] is None for m in modes.values())
