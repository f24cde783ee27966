"""The job runner's pure helpers: progress and the job's failure reason."""

from __future__ import annotations

import time

from serve_app.deployments.runner import first_error, progress_of
from serve_app.schemas import ChunkPlan, ChunkResult
from tests.conftest import chunk_plan


def plan(i: int) -> ChunkPlan:
    return chunk_plan(i, max(0.0, 20.0 * i - 1), 20.0 * i + 20, 20.0 * i, 20.0 * i + 20)


def result(p: ChunkPlan, error: str | None = None) -> ChunkResult:
    return ChunkResult(index=p.index, start_s=p.start_s, end_s=p.end_s, mode="describe", frame_times_s=[], error=error)


def test_progress_counts_video_seconds_by_core_and_eta_from_this_run_only() -> None:
    plans = [plan(i) for i in range(4)]
    done = {0: result(plans[0]), 1: result(plans[1], "engine rejected the chunk"), 2: result(plans[2])}
    started = time.time() - 10
    progress = progress_of(plans, done, started, done_before=1)  # chunk 0 was done by an earlier attempt
    assert (progress.chunks_total, progress.chunks_done, progress.chunks_failed) == (4, 3, 1)
    assert (progress.video_s_total, progress.video_s_done) == (80.0, 60.0)
    assert progress.eta_s is not None and 4.5 <= progress.eta_s <= 6  # 10 s for 2 fresh chunks, 1 to go
    assert progress_of(plans, {0: done[0]}, started, done_before=1).eta_s is None
    assert first_error(list(done.values())) == "engine rejected the chunk"
    assert first_error([done[0]]) is None
