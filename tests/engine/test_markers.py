"""Exact time: what reaches the model, whatever the (random, blind) tiny model answers.

For real chunks (reelserve's own probe, planner and decoder), vLLM's REAL
Qwen3-VL multimodal processor builds the prompt and pixels `VLMEngine`
would send (`serve_app.devtools.markers`). The test decodes the prompt's
`<X.Y seconds>` markers, un-patchifies `pixel_values_videos` back into
frames, reads each frame's index from its pixels, and checks against the
source clip: frame order, frames inside their chunk, one marker per temporal
pair (= grid t), and every marker within 0.5 s of BOTH frames of its pair.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from serve_app.config import VideoSettings
from serve_app.devtools.markers import ChunkCheck, ModelInputProbe, check_chunk, write_offset_video
from serve_app.devtools.synthetic import read_counter, read_frame_index
from serve_app.schemas import AnalyzeOptions
from serve_app.video import chunking_options, decode_chunk, plan_chunks, probe

if TYPE_CHECKING:
    from conftest import Clip, ScreenClip, VideoFactory

LIMITS = VideoSettings()
MAX_MARKER_ERROR_S = 0.5


@pytest.fixture(scope="module")
def model_input() -> ModelInputProbe:
    """vLLM's Qwen3-VL processor as the engine configures it (imports vLLM once: ~20 s)."""
    return ModelInputProbe()


@dataclass(frozen=True)
class Case:
    path: Path
    times: list[float]  # true time of source frame i, from the stream's first frame
    read_index: Callable[[np.ndarray], int]
    options: AnalyzeOptions
    last_only: bool = False  # check only the video's last chunk


def _uniform(**kwargs: Any) -> AnalyzeOptions:
    return AnalyzeOptions(sampling="uniform", **kwargs)


def _offset_clip(tmp_path_factory: pytest.TempPathFactory) -> Case:
    path = tmp_path_factory.mktemp("offset") / "offset.mp4"
    stored = write_offset_video(path, start_s=7.5, duration_s=6.0, fps=10, width=128, height=96)
    # reelserve's clock (and every player's position) starts at the stream's first frame.
    return Case(path, [t - stored[0] for t in stored], read_frame_index, _uniform(chunk_s=4, overlap_s=1, fps=2))


def _case(name: str, request: pytest.FixtureRequest) -> Case:
    fixture = request.getfixturevalue
    if name == "uniform":
        clip: Clip = fixture("cfr_mp4")
        return Case(clip.path, clip.times, read_frame_index, _uniform(chunk_s=4, overlap_s=1, fps=2))
    if name == "adaptive":
        screen: ScreenClip = fixture("screen_share")
        frames = round(60.0 * screen.fps)
        return Case(
            screen.path,
            [i / screen.fps for i in range(frames)],
            partial(read_counter, width=screen.width, height=screen.height),
            AnalyzeOptions(sampling="adaptive"),  # the service defaults: 20 s chunks, 2 fps candidates
        )
    if name == "vfr":
        clip = fixture("vfr_mkv")
        return Case(clip.path, clip.times, read_frame_index, _uniform(chunk_s=5, overlap_s=1, fps=2))
    if name == "offset-start":
        return _offset_clip(fixture("tmp_path_factory"))
    if name == "rotated":
        clip = fixture("rotated_mp4")
        return Case(clip.path, clip.times, read_frame_index, _uniform(fps=4))
    if name == "last-chunk":
        # 2.5 fps source, 4 s chunks: the last one (6.0-10.4 s) plans 12 frames but only 11 exist there,
        # so the decoder pads the last pair with a repeat of the last frame.
        make: VideoFactory = fixture("make_video")
        clip = make("tail.mp4", duration_s=10.4, fps=2.5, width=128, height=96)
        return Case(clip.path, clip.times, read_frame_index, _uniform(chunk_s=4, overlap_s=1, fps=3), last_only=True)
    raise AssertionError(name)


def _checks(case: Case, model_input: ModelInputProbe) -> list[ChunkCheck]:
    plans = plan_chunks(probe(case.path, LIMITS), chunking_options(case.options, LIMITS), LIMITS)
    checks = []
    for plan in plans[-1:] if case.last_only else plans:
        chunk = decode_chunk(case.path, plan, threads=LIMITS.decode_threads)
        view = model_input.view(chunk)
        checks.append(check_chunk(view, chunk, case.times, case.read_index, max_error_s=MAX_MARKER_ERROR_S))
    return checks


@pytest.mark.parametrize("name", ["uniform", "adaptive", "vfr", "offset-start", "rotated", "last-chunk"])
def test_markers_match_the_frames_the_model_sees(
    name: str, request: pytest.FixtureRequest, model_input: ModelInputProbe
) -> None:
    checks = _checks(_case(name, request), model_input)
    worst = max(c.worst_error_s for c in checks)
    problems = [f"chunk {c.index} [{c.start_s:.2f}, {c.end_s:.2f}] s: {p}" for c in checks for p in c.problems]
    assert not problems, f"{name}: worst marker error {worst:.3f} s\n" + "\n".join(problems)
    assert worst <= MAX_MARKER_ERROR_S
    assert all(c.pairs for c in checks)


def test_last_chunk_case_really_pads(request: pytest.FixtureRequest, model_input: ModelInputProbe) -> None:
    """The last-chunk case covers the padding pair (its last frame twice, one marker at that frame)."""
    (check,) = _checks(_case("last-chunk", request), model_input)
    last = check.pairs[-1]
    assert last.frames[0] == last.frames[1]
    assert last.error_s <= 0.05 + 1e-9  # only the marker's one-decimal rounding


def test_host_normalised_pixels_read_back_the_same(cfr_mp4: Clip, model_input: ModelInputProbe) -> None:
    """The un-patchify layout holds for both pixel forms vLLM may hand the encoder."""
    assert model_input.device_normalize  # vLLM's default for Qwen3-VL: raw uint8 pixels
    host = ModelInputProbe(device_normalize=False)  # normalised floats, as transformers alone makes them
    options = _uniform(chunk_s=4, overlap_s=1, fps=2)
    plan = plan_chunks(probe(cfr_mp4.path, LIMITS), chunking_options(options, LIMITS), LIMITS)[1]
    chunk = decode_chunk(cfr_mp4.path, plan, threads=1)
    raw, normalised = model_input.view(chunk), host.view(chunk)
    assert normalised.markers_s == raw.markers_s
    assert np.abs(normalised.frames.astype(int) - raw.frames).max() <= 1
    assert np.array_equal(raw.frames, chunk.frames)  # planned size: the processor resized nothing
