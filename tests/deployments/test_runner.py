"""The job runner's pure helpers: incremental progress and the job's failure reason."""

from __future__ import annotations

import time

from serve_app.deployments.runner import Progress, first_error
from serve_app.schemas import ChunkPlan, ChunkResult
from tests.conftest import chunk_plan


def plan(i: int) -> ChunkPlan:
    return chunk_plan(i, max(0.0, 20.0 * i - 1), 20.0 * i + 20, 20.0 * i, 20.0 * i + 20)


def result(p: ChunkPlan, error: str | None = None) -> ChunkResult:
    return ChunkResult(index=p.index, start_s=p.start_s, end_s=p.end_s, mode="describe", frame_times_s=[], error=error)


def test_progress_counts_video_seconds_by_core_and_eta_from_this_run_only() -> None:
    plans = [plan(i) for i in range(4)]
    earlier = result(plans[0])  # chunk 0 was done by an earlier attempt
    progress = Progress(plans, [earlier], started=time.time() - 10)
    assert progress.snapshot().eta_s is None, "no chunk of this run yet: no ETA"
    progress.add(result(plans[1], "engine rejected the chunk"))
    snapshot = progress.add(result(plans[2]))
    assert (snapshot.chunks_total, snapshot.chunks_done, snapshot.chunks_failed) == (4, 3, 1)
    assert (snapshot.video_s_total, snapshot.video_s_done) == (80.0, 60.0)
    assert snapshot.eta_s is not None and 4.5 <= snapshot.eta_s <= 6  # 10 s for 2 fresh chunks, 1 to go
    failed = [result(plans[1], "engine rejected the chunk")]
    assert first_error([earlier, *failed]) == "engine rejected the chunk"
    assert first_error([earlier]) is None


def test_progress_is_incremental() -> None:
    """Each finished chunk costs the same, however many came before (the old recount was quadratic)."""
    plans = [plan(i) for i in range(4000)]
    progress = Progress(plans, [], started=time.time())
    costs = []
    for p in plans:
        began = time.perf_counter()
        progress.add(result(p))
        costs.append(time.perf_counter() - began)
    assert progress.snapshot().chunks_done == 4000 and progress.snapshot().video_s_done == 80_000.0
    first, last = sorted(costs[:500])[250], sorted(costs[-500:])[250]  # medians of the first and last 500
    assert last < 5 * first, (first, last)
