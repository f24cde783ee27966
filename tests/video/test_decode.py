from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import pytest

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import read_counter, read_frame_index
from serve_app.errors import InvalidVideo
from serve_app.schemas import ChunkingOptions, ChunkPlan, SamplingStrategy
from serve_app.video.chunking import plan_chunks
from serve_app.video.decode import SampledChunk, decode_chunk
from serve_app.video.probe import probe
from serve_app.video.tokens import visual_tokens

if TYPE_CHECKING:
    from conftest import Clip, ScreenClip, VideoFactory

LIMITS = VideoSettings()


def plans_for(
    path: Path,
    chunk_s: float,
    overlap_s: float,
    fps: float,
    token_budget: int = 12_288,
    limits: VideoSettings = LIMITS,
    sampling: SamplingStrategy = "uniform",
) -> list[ChunkPlan]:
    opts = ChunkingOptions(
        chunk_s=chunk_s,
        overlap_s=overlap_s,
        fps=fps,
        token_budget=token_budget,
        sampling=sampling,
        floor_s=LIMITS.floor_s,
        change_threshold=LIMITS.change_threshold,
        static_chunk_s=0.0,
    )
    return plan_chunks(probe(path, limits), opts, limits)


def nearest(times: list[float], target: float) -> float:
    return min(times, key=lambda t: (abs(t - target), t))


def check_chunk(chunk: SampledChunk, clip: Clip) -> None:
    """Shape, pairing, and that each frame really is the one shown at its timestamp."""
    plan = chunk.plan
    assert chunk.frames.dtype == np.uint8
    assert chunk.frames.shape == (len(chunk.frame_times_s), plan.height, plan.width, 3)
    assert len(chunk.frame_times_s) % 2 == 0 and len(chunk.frame_times_s) >= 2
    assert chunk.stats.frames_kept == len(chunk.frame_times_s)
    assert chunk.stats.frames_sampled <= plan.max_frames
    assert chunk.stats.frames_decoded >= chunk.stats.frames_sampled
    assert chunk.frame_times_s == sorted(chunk.frame_times_s)
    for frame, t in zip(chunk.frames, chunk.frame_times_s, strict=True):
        index = read_frame_index(frame)
        assert clip.times[index] == pytest.approx(t, abs=1e-3), "frame content does not match its timestamp"


def test_cfr_frames_are_nearest_to_targets(cfr_mp4: Clip) -> None:
    plans = plans_for(cfr_mp4.path, chunk_s=4, overlap_s=1, fps=2.5)
    assert len(plans) == 3
    for plan in plans:
        chunk = decode_chunk(cfr_mp4.path, plan, threads=1)
        check_chunk(chunk, cfr_mp4)
        assert chunk.stats.frames_sampled == plan.max_frames  # the source is dense enough
        for target, t in zip(plan.target_times(), chunk.frame_times_s, strict=True):
            assert abs(t - target) <= 1 / cfr_mp4.fps / 2 + 1e-6  # within half a source frame
        assert chunk.source_fps == pytest.approx(10.0)
        assert chunk.frame_indices == [round(t * 10) for t in chunk.frame_times_s]


def test_vfr_frames_are_nearest_to_targets(vfr_mkv: Clip) -> None:
    for plan in plans_for(vfr_mkv.path, chunk_s=5, overlap_s=1, fps=2):
        chunk = decode_chunk(vfr_mkv.path, plan)
        check_chunk(chunk, vfr_mkv)
        expected = sorted({nearest(vfr_mkv.times, target) for target in plan.target_times()})
        unique = sorted(set(chunk.frame_times_s))
        assert unique == pytest.approx(expected, abs=1e-3)
        assert chunk.stats.frames_sampled == len(expected)


def test_sparse_source_keeps_unique_frames(make_video: VideoFactory) -> None:
    # One frame every 2 s sampled at 8 fps target: no frame may appear twice
    # except the padding that makes the count even.
    clip = make_video("sparse.mp4", duration_s=10, fps=0.5, width=64, height=64)
    (plan,) = plans_for(clip.path, chunk_s=20, overlap_s=0, fps=8)
    assert plan.max_frames == 6  # fps clamped to the source's 0.5
    chunk = decode_chunk(clip.path, plan)
    check_chunk(chunk, clip)
    assert chunk.stats.frames_sampled == len(set(chunk.frame_times_s)) == 5
    assert chunk.frame_times_s[-1] == chunk.frame_times_s[-2]  # padded to 6


def test_rotated_frames_come_out_upright(rotated_mp4: Clip) -> None:
    (plan,) = plans_for(rotated_mp4.path, chunk_s=20, overlap_s=0, fps=4)
    assert (plan.width, plan.height) == (96, 160)
    chunk = decode_chunk(rotated_mp4.path, plan)
    check_chunk(chunk, rotated_mp4)  # the index code reads right only if upright


def test_webm_with_audio_and_resize(webm_audio: Clip) -> None:
    limits = VideoSettings(min_frame_pixels=32 * 32)  # let the budget shrink frames freely
    plans = plans_for(webm_audio.path, chunk_s=3, overlap_s=0.5, fps=4, token_budget=64, limits=limits)
    assert len(plans) == 3
    for plan in plans:
        assert (plan.width, plan.height) == (96, 64)  # 12 frames in 64 tokens: 10 tokens a pair
        check_chunk(decode_chunk(webm_audio.path, plan), webm_audio)


def test_late_chunk_decodes_only_its_range(long_gop_mp4: Clip) -> None:
    plans = plans_for(long_gop_mp4.path, chunk_s=10, overlap_s=1, fps=1)
    last = plans[-1]
    assert last.start_s >= 50
    chunk = decode_chunk(long_gop_mp4.path, last)
    check_chunk(chunk, long_gop_mp4)
    # From the keyframe before the chunk (at most 5 s earlier) to the last
    # target, not the 540 frames before it.
    assert chunk.stats.frames_decoded <= (last.duration_s + 5) * long_gop_mp4.fps
    assert chunk.stats.frames_decoded < len(long_gop_mp4.times) / 5
    assert chunk.stats.decode_s > 0


def test_chunk_past_the_data_is_invalid(cfr_mp4: Clip) -> None:
    plan = ChunkPlan(
        index=7, start_s=40, end_s=50, core_start_s=40, core_end_s=50, fps=1, width=160, height=96,
        max_frames=10, token_budget=1000, visual_tokens=75, sampling="uniform", floor_s=15, change_threshold=12,
    )  # fmt: skip
    with pytest.raises(InvalidVideo, match=r"chunk 7.*40\.00, 50\.00"):
        decode_chunk(cfr_mp4.path, plan)


@pytest.mark.parametrize("name", ["display-dual-monitors.webm", "vtest.avi", "Megamind.avi"])
def test_decode_real_media(media_dir: Path, name: str) -> None:
    path = media_dir / name
    plans = plans_for(path, chunk_s=LIMITS.chunk_s, overlap_s=LIMITS.overlap_s, fps=LIMITS.fps)
    plan = plans[len(plans) // 2]
    chunk = decode_chunk(path, plan, threads=LIMITS.decode_threads)
    assert chunk.frames.shape == (plan.max_frames, plan.height, plan.width, 3)
    assert chunk.stats.frames_sampled == plan.max_frames
    for target, t in zip(plan.target_times(), chunk.frame_times_s, strict=True):
        assert abs(t - target) <= 1 / chunk.source_fps  # within one source frame
    # Real pictures, not blank frames.
    assert chunk.frames.std() > 10


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("h264.mp4", "libx264"),
        ("hevc.mp4", "libx265"),
        ("vp8.webm", "libvpx"),
        ("vp9.webm", "libvpx-vp9"),
        ("av1.mkv", "libsvtav1"),
        ("mpeg4.avi", "mpeg4"),
    ],
)
def test_each_codec_decodes_the_right_frames(make_video: VideoFactory, name: str, codec: str) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    clip = make_video(name, duration_s=4, fps=10, width=128, height=96, codec=codec, gop=10)
    for sampling in ("uniform", "adaptive"):
        for plan in plans_for(clip.path, chunk_s=2, overlap_s=0.5, fps=2.5, sampling=sampling):
            chunk = decode_chunk(clip.path, plan, threads=1)
            check_chunk(chunk, clip)  # every frame shows the index its timestamp says
            if sampling == "uniform":
                for target, t in zip(plan.target_times(), chunk.frame_times_s, strict=True):
                    assert abs(t - target) <= 1 / clip.fps / 2 + 1e-6  # the nearest frame, skipping or not


def test_non_reference_frames_far_from_targets_are_skipped(long_gop_mp4: Clip) -> None:
    (first, *_) = plans_for(long_gop_mp4.path, chunk_s=10, overlap_s=1, fps=1)
    chunk = decode_chunk(long_gop_mp4.path, first, threads=1)
    check_chunk(chunk, long_gop_mp4)
    for target, t in zip(first.target_times(), chunk.frame_times_s, strict=True):
        assert abs(t - target) <= 1 / long_gop_mp4.fps / 2 + 1e-6
    # Frames up to the last target: 96 at 10 fps; x264's non-reference
    # B-frames between targets are not decoded.
    shown = sum(1 for t in long_gop_mp4.times if t <= first.target_times()[-1] + 0.1)
    assert chunk.stats.frames_decoded < 0.8 * shown


def test_vfr_adaptive_keeps_true_timestamps(vfr_mkv: Clip) -> None:
    for plan in plans_for(vfr_mkv.path, chunk_s=5, overlap_s=1, fps=2, sampling="adaptive"):
        chunk = decode_chunk(vfr_mkv.path, plan)
        check_chunk(chunk, vfr_mkv)
        assert 2 <= chunk.stats.frames_kept <= plan.max_frames
        assert chunk.stats.frames_sampled == len({nearest(vfr_mkv.times, t) for t in plan.sample_times()})


def test_adaptive_keeps_every_change_and_drops_static_stretches(screen_share: ScreenClip) -> None:
    settings = VideoSettings()
    plans = plans_for(screen_share.path, chunk_s=20, overlap_s=1, fps=2, sampling="adaptive", limits=settings)
    kept: list[float] = []
    for plan in plans:
        chunk = decode_chunk(screen_share.path, plan, threads=1)
        stats = chunk.stats
        assert stats.sampling == "adaptive"
        assert stats.frames_sampled == len(plan.sample_times())  # one candidate per slot at 2 fps
        assert stats.frames_kept == len(chunk.frame_times_s) <= plan.max_frames and stats.frames_kept % 2 == 0
        assert stats.visual_tokens == visual_tokens(stats.frames_kept, plan.height, plan.width) <= plan.token_budget
        assert stats.frames_decoded >= stats.frames_sampled
        for frame, t in zip(chunk.frames, chunk.frame_times_s, strict=True):
            # The frame shown at its reported time, to the frame.
            assert read_counter(frame, screen_share.width, screen_share.height) == round(t * screen_share.fps)
        times = chunk.frame_times_s
        step = 1 / plan.fps
        # Pairs (Qwen3-VL's temporal patches): a keep and the candidate after it, never seconds apart.
        for a, b in zip(times[::2], times[1::2], strict=True):
            assert 0 <= b - a <= step + 0.5 / screen_share.fps, (a, b)
        # Between consecutive keeps with no change in between, the floor spacing holds.
        keeps = times[::2]
        for a, b in zip(keeps, keeps[1:], strict=False):
            if not any(a < e.start_s <= b + step or a < e.end_s <= b + step for e in screen_share.events):
                assert b - a >= plan.floor_s - 0.5 - 1e-6, (a, b)
        kept += chunk.frame_times_s
    for event in screen_share.events:
        assert any(event.shown_s <= t < event.end_s for t in kept), f"{event} not covered"
    # Far fewer frames than uniform 1 fps (60+ for this minute).
    assert len(set(kept)) <= 24


def test_adaptive_respects_a_small_budget(screen_share: ScreenClip) -> None:
    plans = plans_for(screen_share.path, chunk_s=30, overlap_s=0, fps=2, token_budget=300, sampling="adaptive")
    for plan in plans:
        # 384x192 frames cost 72 tokens a pair: 300 tokens hold 4 pairs of the 60 candidates.
        assert (plan.width, plan.height, plan.max_frames) == (384, 192, 8)
        chunk = decode_chunk(screen_share.path, plan, threads=1)
        assert chunk.stats.frames_kept <= plan.max_frames
        assert chunk.stats.visual_tokens <= 300
