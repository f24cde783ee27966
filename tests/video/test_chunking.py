from __future__ import annotations

import itertools
import math
import random

import pytest

from serve_app.config import VideoSettings
from serve_app.errors import InvalidOptions
from serve_app.schemas import ChunkingOptions, ChunkPlan, VideoInfo
from serve_app.video.chunking import plan_chunks
from serve_app.video.tokens import fit_frame_size, visual_tokens

LIMITS = VideoSettings()
# The floor before the legibility policy: lets the budget shrink frames to 320x192.
LOW_FLOOR = VideoSettings(min_frame_pixels=320 * 192)


def info(duration_s: float, fps: float = 30.0, width: int = 1280, height: int = 720) -> VideoInfo:
    return VideoInfo(
        container="mp4",
        codec="h264",
        duration_s=duration_s,
        fps=fps,
        width=width,
        height=height,
        has_audio=False,
        stream_count=1,
        size_bytes=1,
        sha256="0" * 64,
    )


def options(chunk_s: float = 20.0, overlap_s: float = 1.0, fps: float = 1.0, token_budget: int = 12_288):
    video = VideoSettings()
    return ChunkingOptions(
        chunk_s=chunk_s,
        overlap_s=overlap_s,
        fps=fps,
        token_budget=token_budget,
        sampling="uniform",
        floor_s=video.floor_s,
        change_threshold=video.change_threshold,
        static_chunk_s=0.0,
    )


def spans(plans: list[ChunkPlan]) -> list[tuple[float, float]]:
    return [(p.start_s, p.end_s) for p in plans]


def cores(plans: list[ChunkPlan]) -> list[tuple[float, float]]:
    return [(p.core_start_s, p.core_end_s) for p in plans]


def test_default_plan_for_a_minute_of_720p() -> None:
    plans = plan_chunks(info(60), options(), LIMITS)
    assert spans(plans) == [(0, 20), (19, 39), (38, 58), (57, 60)]
    assert cores(plans) == [(0, 19.5), (19.5, 38.5), (38.5, 57.5), (57.5, 60)]
    assert [p.index for p in plans] == [0, 1, 2, 3]
    assert [p.max_frames for p in plans] == [20, 20, 20, 4]
    assert {(p.width, p.height) for p in plans} == {(1280, 704)}
    assert [p.visual_tokens for p in plans] == [8800, 8800, 8800, 1760]
    assert all(p.fps == 1.0 and p.token_budget == 12_288 for p in plans)


def test_short_video_is_one_chunk() -> None:
    (plan,) = plan_chunks(info(5.3), options(), LIMITS)
    assert (plan.start_s, plan.end_s, plan.core_start_s, plan.core_end_s) == (0, 5.3, 0, 5.3)
    assert plan.max_frames == 6  # ceil(5.3) = 6, already even


def test_very_short_video_still_gets_two_frames() -> None:
    (plan,) = plan_chunks(info(0.2), options(), LIMITS)
    assert plan.max_frames == 2 and plan.visual_tokens == 880


def test_tiny_last_chunk_is_merged_into_the_previous_one() -> None:
    # The grid would end with [57, 58.5]: 1.5 s < 2 * overlap, so [38, 58.5] instead.
    plans = plan_chunks(info(58.5), options(), LIMITS)
    assert spans(plans) == [(0, 20), (19, 39), (38, 58.5)]
    assert plans[-1].max_frames == 22  # ceil(20.5) = 21 -> even
    assert cores(plans)[-1] == (38.5, 58.5)


def test_no_overlap_tiles_exactly() -> None:
    plans = plan_chunks(info(30), options(chunk_s=10, overlap_s=0), LIMITS)
    assert spans(plans) == cores(plans) == [(0, 10), (10, 20), (20, 30)]


def test_fps_is_clamped_to_the_source_rate() -> None:
    plans = plan_chunks(info(40, fps=0.5), options(fps=4), LIMITS)
    assert all(p.fps == 0.5 for p in plans)
    assert plans[0].max_frames == 10  # 20 s at 0.5 fps


def test_frame_count_is_capped_at_768() -> None:
    (plan,) = plan_chunks(info(600), options(chunk_s=600, overlap_s=0, fps=8, token_budget=10**6), LIMITS)
    assert plan.max_frames == 768
    assert plan.fps == pytest.approx(768 / 600)


def test_budget_shrinks_frames_first() -> None:
    # 40 frames = 20 pairs; 4000 // 20 = 200 tokens a pair -> 204,800 px.
    (plan,) = plan_chunks(info(20), options(fps=2, token_budget=4000), LOW_FLOOR)
    assert (plan.width, plan.height) == fit_frame_size(1280, 720, 200 * 1024) == (576, 320)
    assert plan.max_frames == 40 and plan.fps == 2
    assert plan.visual_tokens == 20 * 18 * 10 <= 4000


def test_budget_lowers_fps_below_the_minimum_frame_size() -> None:
    # 1000 // 20 pairs = 50 tokens a pair would be 51,200 px < min_frame_pixels
    # (320x192): keep 320x192 (60 tokens a pair) and take 16 pairs instead.
    (plan,) = plan_chunks(info(20), options(fps=2, token_budget=1000), LOW_FLOOR)
    assert (plan.width, plan.height) == (320, 192)
    assert plan.max_frames == 32
    assert plan.fps == pytest.approx(32 / 20)
    assert plan.visual_tokens == 960


def test_screen_text_stays_legible_unless_the_budget_forces_less() -> None:
    # 2 fps over 20 s would need 614 tokens a pair (1024x576); the default
    # floor keeps 1152x640 (720 a pair) and samples 17 pairs instead.
    (plan,) = plan_chunks(info(20, width=1920, height=1080), options(fps=2), LIMITS)
    assert (plan.width, plan.height) == (1152, 640)
    assert plan.max_frames == 34 and plan.visual_tokens == 17 * 720 <= 12_288
    # 1 fps fits at the largest size.
    (plan,) = plan_chunks(info(20, width=1920, height=1080), options(fps=1), LIMITS)
    assert plan.width * plan.height > 1152 * 640 and plan.max_frames == 20
    # A budget below one legible pair: smaller frames, as large as it allows.
    (plan,) = plan_chunks(info(20, width=1920, height=1080), options(token_budget=500), LIMITS)
    assert plan.max_frames == 2 and plan.visual_tokens <= 500 and plan.width * plan.height < 1152 * 640


def test_adaptive_plan_uses_the_largest_frames_and_a_budget_ceiling() -> None:
    opts = ChunkingOptions(
        chunk_s=20,
        overlap_s=1,
        fps=2,
        token_budget=12_288,
        sampling="adaptive",
        floor_s=7,
        change_threshold=12,
        static_chunk_s=0.0,
    )
    plans = plan_chunks(info(60), opts, LIMITS)
    assert [(p.start_s, p.end_s) for p in plans] == [(0, 20), (19, 39), (38, 58), (57, 60)]
    for plan in plans:
        assert plan.sampling == "adaptive" and plan.floor_s == 7 and plan.fps == 2
        assert (plan.width, plan.height) == (1280, 704)  # max_frame_pixels, not shrunk for 40 candidates
        # 12,288 // 880 tokens a pair = 13 pairs, never more than the candidates.
        assert plan.max_frames == min(26, len(plan.sample_times()) + len(plan.sample_times()) % 2)
        assert plan.visual_tokens == visual_tokens(plan.max_frames, 704, 1280) <= 12_288
    times = plans[0].sample_times()
    assert len(times) == 40 and times[0] == pytest.approx(0.25) and times[-1] == pytest.approx(19.75)
    assert plans[-1].max_frames == 6  # 3 s of candidates at 2 fps


def test_small_source_keeps_its_size_and_drops_frames() -> None:
    # A 160x96 source is below min_frame_pixels: its own size is the floor.
    (plan,) = plan_chunks(info(20, width=160, height=96), options(fps=8, token_budget=300), LIMITS)
    assert (plan.width, plan.height) == (160, 96)
    assert plan.max_frames == 2 * (300 // 15) == 40


def test_tiny_budget_shrinks_below_the_minimum_frame_size() -> None:
    (plan,) = plan_chunks(info(20), options(token_budget=10), LIMITS)
    assert plan.max_frames == 2
    assert (plan.width, plan.height) == fit_frame_size(1280, 720, 10 * 1024) == (128, 64)
    assert plan.visual_tokens == 8


def test_budget_below_one_token_is_invalid() -> None:
    # ChunkingOptions refuses a zero budget itself; the planner still guards.
    bad = options().model_copy(update={"token_budget": 0})
    with pytest.raises(InvalidOptions):
        plan_chunks(info(20), bad, LIMITS)


def test_max_frame_pixels_caps_the_size() -> None:
    limits = VideoSettings(max_frame_pixels=640 * 360)
    (plan,) = plan_chunks(info(10, width=3840, height=2160), options(token_budget=10**6), limits)
    assert (plan.width, plan.height) == (640, 352)


DURATIONS = [0.05, 0.5, 1, 1.9, 2, 2.5, 9.99, 10, 19.99, 20, 20.01, 21, 38, 39, 39.5, 57.3, 100, 1234.5, 3600]
CHUNKINGS = [(2, 0), (2, 0.5), (2, 1), (5, 2.4), (10, 5), (10, 1), (20, 1), (20, 0), (30, 5), (60, 10), (600, 30)]
SOURCES = [(1280, 720, 30), (720, 1280, 60), (100, 50, 5), (3840, 2160, 24), (1024, 768, 0.5)]


def check_plan(video: VideoInfo, opts: ChunkingOptions, plans: list[ChunkPlan]) -> None:
    duration = video.duration_s
    assert plans[0].start_s == 0 and plans[0].core_start_s == 0
    assert plans[-1].end_s == duration and plans[-1].core_end_s == duration
    assert [p.index for p in plans] == list(range(len(plans)))
    for prev, nxt in itertools.pairwise(plans):
        assert nxt.start_s == pytest.approx(prev.start_s + opts.chunk_s - opts.overlap_s)
        assert prev.end_s - nxt.start_s == pytest.approx(opts.overlap_s)  # requested overlap, no gap
        assert prev.core_end_s == nxt.core_start_s  # cores tile with no gap or overlap
    for plan in plans:
        assert plan.start_s <= plan.core_start_s < plan.core_end_s <= plan.end_s
        assert plan.end_s - plan.start_s <= opts.chunk_s + max(2 * opts.overlap_s, 1.0) + 1e-9
        assert 2 <= plan.max_frames <= 768 and plan.max_frames % 2 == 0
        assert plan.visual_tokens == visual_tokens(plan.max_frames, plan.height, plan.width)
        assert plan.visual_tokens <= opts.token_budget
        assert plan.fps <= min(opts.fps, video.fps) + 1e-12
        assert plan.width * plan.height <= LIMITS.max_frame_pixels
        assert plan.sampling == opts.sampling
        if opts.sampling == "uniform":
            # At least the planned rate over the chunk (targets cover it).
            assert plan.max_frames >= math.ceil(plan.duration_s * plan.fps - 1e-6)
            assert plan.sample_times() == plan.target_times()
        else:
            # The ceiling never exceeds the candidates (rounded up to a pair).
            candidates = len(plan.sample_times())
            assert candidates >= math.ceil(plan.duration_s * plan.fps - 1e-6)
            assert plan.max_frames <= candidates + candidates % 2
    if len(plans) > 1:
        assert plans[-1].duration_s >= max(2 * opts.overlap_s, 1.0)
    assert len({(p.width, p.height) for p in plans}) == 1


def test_plan_invariants_over_many_videos_and_options() -> None:
    rng = random.Random(11)
    cases = 0
    for duration in DURATIONS:
        for chunk_s, overlap_s in CHUNKINGS:
            if duration / (chunk_s - overlap_s) > 400:
                continue  # keep the loop fast; long grids are covered by the hour-long cases
            width, height, src_fps = rng.choice(SOURCES)
            opts = options(chunk_s, overlap_s, rng.choice([0.25, 1, 2, 8]), rng.choice([64, 500, 4096, 12_288, 60_000]))
            video = info(duration, fps=src_fps, width=width, height=height)
            check_plan(video, opts, plan_chunks(video, opts, LIMITS))
            adaptive = opts.model_copy(update={"sampling": "adaptive"})
            check_plan(video, adaptive, plan_chunks(video, adaptive, LIMITS))
            cases += 1
    assert cases > 150


def test_chunking_options_fill_request_gaps_with_server_defaults() -> None:
    from serve_app.config import VideoSettings
    from serve_app.schemas import AnalyzeOptions
    from serve_app.video import chunking_options

    video = VideoSettings(chunk_s=20, overlap_s=1, fps=1, adaptive_fps=2, sampling="adaptive", floor_s=15)
    filled = chunking_options(AnalyzeOptions(), video)
    assert (filled.chunk_s, filled.overlap_s, filled.fps, filled.sampling, filled.floor_s) == (20, 1, 2, "adaptive", 15)
    uniform = chunking_options(AnalyzeOptions(sampling="uniform", overlap_s=0, chunk_s=8), video)
    assert (uniform.chunk_s, uniform.overlap_s, uniform.fps, uniform.sampling) == (8, 0, 1, "uniform")
    assert chunking_options(AnalyzeOptions(fps=0.5), video).fps == 0.5


def grown(active: list[tuple[float, float]] | None, static_chunk_s: float = 120.0, sampling: str = "adaptive"):
    opts = options(fps=2).model_copy(update={"sampling": sampling, "static_chunk_s": static_chunk_s})
    return plan_chunks(info(200), opts, LIMITS, active)


def test_chunks_grow_over_static_stretches_and_end_before_changes() -> None:
    # Changes at 50 and 150 s: the grid (step 19) is 0, 19, 38, ..., 190.
    plans = grown([(50.0, 51.0), (150.0, 150.4)])
    assert [(p.start_s, p.end_s) for p in plans] == [(0, 39), (38, 134), (133, 200)]
    # Each change lies inside a chunk that opens on the grid point before it, overlaps and cores as ever.
    assert [(p.core_start_s, p.core_end_s) for p in plans] == [(0, 38.5), (38.5, 133.5), (133.5, 200)]
    assert all(p.max_frames == plans[0].max_frames for p in plans)  # one frame size, one ceiling
    # Bounded: no chunk grows past static_chunk_s; a stretch longer than that takes several.
    assert [(p.start_s, p.end_s) for p in grown([], static_chunk_s=60)] == [(0, 58), (57, 115), (114, 172), (171, 200)]


def test_no_growth_without_a_static_stretch_known_or_for_uniform_sampling() -> None:
    grid = [(p.start_s, p.end_s) for p in grown(None)]
    assert grid[:3] == [(0, 20), (19, 39), (38, 58)] and len(grid) == 11
    assert [(p.start_s, p.end_s) for p in grown([], sampling="uniform")] == grid
    assert [(p.start_s, p.end_s) for p in grown([], static_chunk_s=0)] == grid
    # Changes everywhere: the plain grid.
    busy = [(t, t + 0.5) for t in range(0, 200, 3)]
    assert [(p.start_s, p.end_s) for p in grown(busy)] == grid
