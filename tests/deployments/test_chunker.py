"""The Chunker deployment's methods, called on the class itself (real PyAV, no cluster): plan and decode
are the core's, and a chunk that cannot be decoded comes back as a DecodeFailure, never raised."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from serve_app.config import VideoSettings
from serve_app.deployments.chunker import Chunker, DecodeFailure
from serve_app.errors import StoreNotShared
from serve_app.schemas import AnalyzeOptions
from serve_app.store.jobs import JobStore, ThumbnailTarget
from serve_app.store.media import MediaCache
from serve_app.video import SampledChunk, chunking_options, plan_chunks, probe
from serve_app.video.thumbnails import kept_frames
from tests.conftest import Clip

VIDEO = VideoSettings()
CACHE = MediaCache(Path(tempfile.gettempdir()) / "reelserve-test-media-cache", 1 << 30)


def test_plan_is_the_cores_plan_and_decode_returns_frames(cfr_mp4: Clip) -> None:
    chunker = Chunker.func_or_class(VIDEO, CACHE)
    options = AnalyzeOptions(chunk_s=4, overlap_s=0.5)
    info, plans = asyncio.run(chunker.plan(str(cfr_mp4.path), options))
    assert info == probe(cfr_mp4.path, VIDEO)
    assert plans == plan_chunks(info, chunking_options(options, VIDEO), VIDEO)
    chunk = asyncio.run(chunker.decode(str(cfr_mp4.path), plans[1]))
    assert isinstance(chunk, SampledChunk) and chunk.plan == plans[1]
    assert all(plans[1].start_s - 0.5 <= t <= plans[1].end_s + 0.5 for t in chunk.frame_times_s)


def test_a_chunk_past_the_data_is_a_decode_failure(cfr_mp4: Clip) -> None:
    chunker = Chunker.func_or_class(VIDEO, CACHE)
    _, plans = asyncio.run(chunker.plan(str(cfr_mp4.path), AnalyzeOptions(chunk_s=4, overlap_s=0.5)))
    beyond = plans[-1].model_copy(update={"index": 99, "start_s": 500.0, "end_s": 504.0, "core_start_s": 500.0,
                                          "core_end_s": 504.0})  # fmt: skip
    failure = asyncio.run(chunker.decode(str(cfr_mp4.path), beyond))
    assert isinstance(failure, DecodeFailure) and failure.plan == beyond
    assert "chunk 99" in failure.error


def test_media_this_node_cannot_see_fails_the_request_not_one_chunk(cfr_mp4: Clip, tmp_path: Path) -> None:
    """A node-local store seen from another node: a StoreNotShared problem, never a DecodeFailure per chunk."""
    chunker = Chunker.func_or_class(VIDEO, CACHE)
    _, plans = asyncio.run(chunker.plan(str(cfr_mp4.path), AnalyzeOptions(chunk_s=4, overlap_s=0.5)))
    elsewhere = str(tmp_path / "on-the-other-node.mp4")
    with pytest.raises(StoreNotShared):
        asyncio.run(chunker.plan(elsewhere, AnalyzeOptions()))
    with pytest.raises(StoreNotShared):
        asyncio.run(chunker.decode(elsewhere, plans[0]))


def test_decode_for_a_job_stores_a_thumbnail_of_each_kept_frame(cfr_mp4: Clip, tmp_path: Path) -> None:
    """On the store the target names (any node's Chunker writes there), the frames the chunk kept."""
    chunker = Chunker.func_or_class(VIDEO, CACHE)
    _, plans = asyncio.run(chunker.plan(str(cfr_mp4.path), AnalyzeOptions(chunk_s=4, overlap_s=0.5)))
    store = JobStore(str(tmp_path / "store"))
    target = ThumbnailTarget(store_uri=store.files.uri, job_id="0190f3a2b4c5aabbccddeeff")
    chunk = asyncio.run(chunker.decode(str(cfr_mp4.path), plans[1], target))
    assert isinstance(chunk, SampledChunk)
    expected = [round(t * 1000) for t, _ in kept_frames(chunk)]
    assert expected and store.thumbnail_times(target.job_id) == expected
    assert asyncio.run(chunker.decode(str(cfr_mp4.path), plans[2])) is not None
    assert store.thumbnail_times(target.job_id) == expected, "no target: no thumbnails (sync /v1/analyze)"
