"""The archive job's probe stage on generated clips: a good video's chunk rows, else one failed or skipped row.

`probe_row` is a plain function (Ray Data calls it in a task); no Ray here.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from data_jobs.probe_stage import probe_row
from data_jobs.rows import COLUMNS
from data_jobs.store import ArchiveStore
from serve_app.config import AsrSettings, VideoSettings
from serve_app.devtools.synthetic import write_audio_only
from serve_app.schemas import AnalysisStats, AnalyzeOptions, ChunkPlan, ChunkResult, VideoAnalysis, VideoInfo
from serve_app.store.media import MediaCache
from serve_app.video import chunking_options, plan_chunks, probe

if TYPE_CHECKING:
    from conftest import Clip

VIDEO = VideoSettings()
ASR = AsrSettings(model="tiny.en")  # the fast bundled model: these tests are about rows, not accuracy
CACHE = MediaCache(Path(tempfile.gettempdir()) / "reelserve-test-media-cache", 1 << 30)
OPTIONS: dict[str, Any] = {"mode": "describe", "chunk_s": 4}  # the 10 s clip -> 3 chunks
# Columns every chunk row of one video shares (the finisher reads them from the first row).
PER_VIDEO = ("uri", "result_key", "sha256", "n_chunks", "info_json", "options_json", "timings_json")


def probe_rows(
    uri: str | Path, out: Path, options: dict[str, Any] = OPTIONS, video: VideoSettings = VIDEO, **item: Any
) -> list[dict[str, Any]]:
    return probe_row({"uri": str(uri), **item}, video=video, asr=ASR, cache=CACHE, options=options, output=str(out))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def only(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    assert [r["kind"] for r in rows] == [kind], rows
    assert list(rows[0]) == list(COLUMNS), "a row has exactly the contract's columns, in order"
    return rows[0]


def test_a_good_clip_gives_one_chunk_row_per_planned_chunk(cfr_mp4: Clip, tmp_path: Path) -> None:
    before = time.time()
    rows = probe_rows(cfr_mp4.path, tmp_path / "out")
    after = time.time()

    info = probe(cfr_mp4.path, VIDEO)
    analyze = AnalyzeOptions.model_validate(OPTIONS)
    plans = plan_chunks(info, chunking_options(analyze, VIDEO), VIDEO)
    assert len(plans) == 3
    assert [r["kind"] for r in rows] == ["chunk"] * len(plans)
    assert all(list(r) == list(COLUMNS) for r in rows)
    assert [ChunkPlan.model_validate_json(r["plan_json"]) for r in rows] == plans

    sha = sha256_of(cfr_mp4.path)
    first = rows[0]
    assert first["uri"] == str(cfr_mp4.path)
    assert first["sha256"] == sha and first["n_chunks"] == len(rows)
    assert first["result_key"].startswith(sha[:16] + "-")
    assert VideoInfo.model_validate_json(first["info_json"]) == info and info.sha256 == sha
    assert AnalyzeOptions.model_validate_json(first["options_json"]) == analyze
    timings = json.loads(first["timings_json"])
    assert set(timings) == {"fetch_s", "probe_s"}
    assert all(isinstance(v, float) and v >= 0 for v in timings.values())
    assert before <= first["started_at"] <= after
    for r in rows:
        assert {c: r[c] for c in PER_VIDEO} == {c: first[c] for c in PER_VIDEO}
        assert r["started_at"] == first["started_at"]
        assert r["payload"] is None and r["result_json"] is None and r["error"] is None


def test_a_file_uri_is_read_from_its_path(cfr_mp4: Clip, tmp_path: Path) -> None:
    rows = probe_rows(f"file://{cfr_mp4.path}", tmp_path / "out")
    assert len(rows) == 3 and all(r["kind"] == "chunk" for r in rows)
    assert rows[0]["uri"] == f"file://{cfr_mp4.path}"  # each task opens the URI on its node
    assert rows[0]["result_key"] == probe_rows(cfr_mp4.path, tmp_path / "out")[0]["result_key"]


def test_result_key_is_content_plus_the_effective_options(cfr_mp4: Clip, webm_audio: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def key(clip: Clip = cfr_mp4, options: dict[str, Any] = OPTIONS, video: VideoSettings = VIDEO) -> str:
        return probe_rows(clip.path, out, options, video)[0]["result_key"]

    base = key()
    assert key() == base, "the same file and options give the same key"
    others = {
        "mode": key(options={**OPTIONS, "mode": "ui"}),
        "chunk_s": key(options={**OPTIONS, "chunk_s": 5}),
        "sampling": key(options={**OPTIONS, "sampling": "uniform"}),
        "prompt": key(options={**OPTIONS, "prompt": "Count the frames."}),
        # Server defaults the request leaves open are part of the analysis too.
        "server chunk_s": key(options={"mode": "describe"}, video=VideoSettings(chunk_s=8)),
    }
    assert base not in others.values() and len(set(others.values())) == len(others), others
    assert all(k.startswith(sha256_of(cfr_mp4.path)[:16] + "-") for k in others.values())
    # Spelling out a default is the same analysis: the key hashes the validated options.
    assert key(options={"chunk_s": 4}) == base
    other_file = key(clip=webm_audio)
    assert other_file.startswith(sha256_of(webm_audio.path)[:16] + "-") and other_file != base


def test_a_manifest_override_lands_in_the_options(cfr_mp4: Clip, tmp_path: Path) -> None:
    job = {"mode": "meeting", "chunk_s": 4}
    rows = probe_rows(cfr_mp4.path, tmp_path / "out", job, mode="custom", prompt="Who is on screen?")
    assert len(rows) == 3 and all(r["kind"] == "chunk" for r in rows)
    options = AnalyzeOptions.model_validate_json(rows[0]["options_json"])
    assert options == AnalyzeOptions(mode="custom", prompt="Who is on screen?", chunk_s=4)
    plain = probe_rows(cfr_mp4.path, tmp_path / "out", job)
    assert AnalyzeOptions.model_validate_json(plain[0]["options_json"]).mode == "meeting"
    assert plain[0]["result_key"] != rows[0]["result_key"]
    # Manifest columns a row leaves empty (None in Arrow) keep the job's options.
    empty = probe_rows(cfr_mp4.path, tmp_path / "out", job, mode=None, prompt="")
    assert [r["options_json"] for r in empty] == [r["options_json"] for r in plain]
    assert empty[0]["result_key"] == plain[0]["result_key"]


def test_an_unreadable_path_gives_one_failed_row(tmp_path: Path) -> None:
    missing = tmp_path / "in" / "missing.mp4"
    row = only(probe_rows(missing, tmp_path / "out"), "failed")
    assert row["uri"] == str(missing) and "does not exist on node" in row["error"]
    assert row["result_key"] and row["sha256"] is None and not row["n_chunks"] and row["plan_json"] is None
    folder = only(probe_rows(tmp_path, tmp_path / "out"), "failed")
    assert folder["error"] and folder["sha256"] is None


def test_unreadable_inputs_get_distinct_plain_result_keys(tmp_path: Path) -> None:
    keys = [
        only(probe_rows(tmp_path / "in" / name, tmp_path / "out"), "failed")["result_key"]
        for name in ("a-missing.mp4", "b-missing.mp4")
    ]
    assert len(set(keys)) == 2 and not any("/" in k for k in keys), keys


def test_bad_per_video_options_give_one_failed_row(cfr_mp4: Clip, tmp_path: Path) -> None:
    row = only(probe_rows(cfr_mp4.path, tmp_path / "out", mode="nonsense"), "failed")
    assert "mode" in row["error"] and row["uri"] == str(cfr_mp4.path)
    custom = only(probe_rows(cfr_mp4.path, tmp_path / "out", {"mode": "custom"}), "failed")
    assert "prompt" in custom["error"]


@pytest.fixture(scope="module")
def bad_files(faststart_mp4: Clip, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-inputs")
    data = faststart_mp4.path.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("this is not a video\n" * 100)
    (root / "empty.mp4").write_bytes(b"")
    write_audio_only(root / "voice.m4a", 1.0)
    return {p.name: p for p in root.iterdir()}


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("truncated.mp4", "Not a readable video: the file is truncated or corrupt"),
        ("notes.txt", "Not a readable video: not a video: FFmpeg reads the file as text"),
        ("empty.mp4", "Empty upload: the uploaded file is empty"),
        ("voice.m4a", "No video stream"),
    ],
)
def test_a_bad_file_gives_one_failed_row_with_the_reason(
    bad_files: dict[str, Path], tmp_path: Path, name: str, error: str
) -> None:
    path = bad_files[name]
    row = only(probe_rows(path, tmp_path / "out"), "failed")
    assert row["error"].startswith(error), row["error"]
    sha = sha256_of(path)
    # Read and hashed, so the failure is recorded under the file's own key.
    assert row["sha256"] == sha and row["result_key"].startswith(sha[:16] + "-")
    assert row["uri"] == str(path) and row["options_json"]
    assert not row["n_chunks"] and row["plan_json"] is None and row["info_json"] is None


def write_complete(out: Path, row: dict[str, Any]) -> None:
    """Record `row`'s video as finished in `out`, as the archive job's finisher does."""
    info = VideoInfo.model_validate_json(row["info_json"])
    request = AnalyzeOptions.model_validate_json(row["options_json"])
    plan = ChunkPlan.model_validate_json(row["plan_json"])
    chunks = [ChunkResult(index=0, start_s=plan.start_s, end_s=plan.end_s, mode=request.mode, frame_times_s=[0.5])]
    analysis = VideoAnalysis(
        video_id=info.video_id,
        video=info,
        request=request,
        model="test-model",
        chunks=chunks,
        timeline=[],
        summary=None,
        stats=AnalysisStats.from_results(chunks),
    )
    ArchiveStore(str(out)).write_success(row["result_key"], row["uri"], analysis)


def test_a_video_complete_in_the_output_gives_one_skipped_row(cfr_mp4: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = probe_rows(cfr_mp4.path, out)
    key = first[0]["result_key"]
    write_complete(out, first[0])
    assert ArchiveStore(str(out)).is_complete(key)

    row = only(probe_rows(cfr_mp4.path, out), "skipped")
    assert row["result_key"] == key and row["sha256"] == first[0]["sha256"]
    assert row["uri"] == str(cfr_mp4.path)
    assert row["options_json"] == first[0]["options_json"]
    assert not row["n_chunks"] and row["plan_json"] is None and row["error"] is None

    # The same video under other options is other work.
    other = probe_rows(cfr_mp4.path, out, {**OPTIONS, "mode": "ui"})
    assert [r["kind"] for r in other] == ["chunk"] * 3


def test_a_failed_or_incomplete_result_is_redone(cfr_mp4: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = probe_rows(cfr_mp4.path, out)
    key = first[0]["result_key"]
    ArchiveStore(str(out)).write_failure(key, str(cfr_mp4.path), first[0]["sha256"], "describe", "earlier failure")
    assert [r["kind"] for r in probe_rows(cfr_mp4.path, out)] == ["chunk"] * 3
    write_complete(out, first[0])
    (out / "analyses" / f"{key}.json").unlink()  # the video row alone is not a finished result
    assert [r["kind"] for r in probe_rows(cfr_mp4.path, out)] == ["chunk"] * 3
