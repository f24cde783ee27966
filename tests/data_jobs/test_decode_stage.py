"""The archive job's decode stage on generated clips: a chunk row gets its sampled frames, pickled.

The clips draw each frame's index into its pixels, so a decoded frame can be checked against the
time it claims (`read_frame_index`). `decode_row` is a plain function (a Ray Data task); no Ray here.
"""

from __future__ import annotations

import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from data_jobs.decode_stage import decode_row
from data_jobs.probe_stage import probe_row
from serve_app.config import AsrSettings, VideoSettings
from serve_app.devtools.synthetic import read_frame_index
from serve_app.schemas import ChunkPlan
from serve_app.store.media import MediaCache
from serve_app.video import SampledChunk

if TYPE_CHECKING:
    from conftest import Clip

VIDEO = VideoSettings()
ASR = AsrSettings(model="tiny.en")  # the fast bundled model: these tests are about rows, not accuracy
CACHE = MediaCache(Path(tempfile.gettempdir()) / "reelserve-test-media-cache", 1 << 30)


def chunk_rows(path: Path, out: Path, **options: Any) -> list[dict[str, Any]]:
    rows = probe_row(
        {"uri": str(path)}, video=VIDEO, asr=ASR, cache=CACHE, options={"chunk_s": 4, **options}, output=str(out)
    )
    assert rows and all(r["kind"] == "chunk" for r in rows), rows
    return rows


def sampled(row: dict[str, Any]) -> SampledChunk:
    out = decode_row(row, cache=CACHE, threads=VIDEO.decode_threads)
    assert out["error"] is None, out["error"]
    assert isinstance(out["payload"], bytes)
    assert {k: v for k, v in out.items() if k != "payload"} == {k: v for k, v in row.items() if k != "payload"}
    chunk = pickle.loads(out["payload"])
    assert isinstance(chunk, SampledChunk)
    return chunk


def check_frames(chunk: SampledChunk, plan: ChunkPlan, clip: Clip) -> None:
    """Inside the plan, whole pairs, and each frame really is the one shown at its time."""
    assert chunk.plan == plan
    times = chunk.frame_times_s
    assert len(times) % 2 == 0 and 2 <= len(times) <= plan.max_frames
    assert chunk.frames.dtype == np.uint8 and chunk.frames.shape == (len(times), plan.height, plan.width, 3)
    assert chunk.stats.frames_kept == len(times) and times == sorted(times)
    half_frame = 0.5 / clip.fps + 1e-6  # the frame nearest a target may start just outside the range
    assert all(plan.start_s - half_frame <= t <= plan.end_s + half_frame for t in times), (plan, times)
    for frame, t in zip(chunk.frames, times, strict=True):
        assert clip.times[read_frame_index(frame)] == pytest.approx(t, abs=1e-3), "frame does not match its time"


@pytest.mark.parametrize("sampling", ["uniform", "adaptive"])
@pytest.mark.parametrize("clip_name", ["cfr_mp4", "webm_audio"])
def test_a_chunk_row_gets_its_sampled_frames(
    request: pytest.FixtureRequest, tmp_path: Path, clip_name: str, sampling: str
) -> None:
    clip: Clip = request.getfixturevalue(clip_name)
    rows = chunk_rows(clip.path, tmp_path / "out", sampling=sampling)
    assert len(rows) >= 2
    for row in rows:
        plan = ChunkPlan.model_validate_json(row["plan_json"])
        assert plan.sampling == sampling
        chunk = sampled(row)
        check_frames(chunk, plan, clip)
        if sampling == "uniform":  # the source is dense enough for every target
            assert len(chunk.frame_times_s) == plan.max_frames
        assert row["payload"] is None, "the input row is not modified"


def test_non_chunk_rows_pass_through_unchanged(cfr_mp4: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out"
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a video\n" * 100)
    failed = probe_row({"uri": str(notes)}, video=VIDEO, asr=ASR, cache=CACHE, options={}, output=str(out))
    missing = probe_row(
        {"uri": str(tmp_path / "missing.mp4")}, video=VIDEO, asr=ASR, cache=CACHE, options={}, output=str(out)
    )
    skipped = {**chunk_rows(cfr_mp4.path, out)[0], "kind": "skipped", "plan_json": None}
    for row in (*failed, *missing, skipped):
        assert row["kind"] in ("failed", "skipped")
        copy = dict(row)
        assert decode_row(row, cache=CACHE) == copy and row == copy


def test_a_chunk_past_the_end_of_the_data_reports_a_decode_failure(faststart_mp4: Clip, tmp_path: Path) -> None:
    """Planned on the whole file, decoded from a copy cut in half (as if truncated after the probe)."""
    rows = chunk_rows(faststart_mp4.path, tmp_path / "out", sampling="uniform")
    data = faststart_mp4.path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    outcomes = [decode_row({**row, "uri": str(cut)}, cache=CACHE, threads=1) for row in rows]
    first, last = outcomes[0], outcomes[-1]
    assert first["error"] is None and first["payload"] is not None  # the data before the cut still decodes
    check_frames(pickle.loads(first["payload"]), ChunkPlan.model_validate_json(rows[0]["plan_json"]), faststart_mp4)
    assert last["payload"] is None and last["error"].startswith("decode failed:"), last["error"]
    assert "truncated or corrupt" in last["error"]
    assert last == {**rows[-1], "uri": str(cut), "error": last["error"]}, "only the error is added"


def test_a_chunk_beyond_the_video_has_no_stale_frames(cfr_mp4: Clip, tmp_path: Path) -> None:
    row = chunk_rows(cfr_mp4.path, tmp_path / "out")[-1]
    plan = ChunkPlan.model_validate_json(row["plan_json"])
    beyond = plan.model_copy(
        update={"index": 9, "start_s": 30.0, "end_s": 34.0, "core_start_s": 30.0, "core_end_s": 34.0}
    )
    out = decode_row({**row, "plan_json": beyond.model_dump_json()}, cache=CACHE)
    assert out["payload"] is None and out["error"].startswith("decode failed:"), out["error"]
    assert "no frame decodes in [30.00, 34.00] s" in out["error"]
