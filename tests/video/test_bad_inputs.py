"""A corpus of odd and broken videos through the real probe, planner and decoder (issue 16).

Frames are only ever from their own time: every frame a chunk carries was on screen during the chunk, so
its time is at most `END_SLACK_S` after the chunk's end, and before its start only when it is the frame
still shown at the start (at most one chunk length back). Corrupt packets are skipped with a warning and the
chunk kept; a file whose data ends before its stated duration is truncated (422), wherever it was cut.
"""

from __future__ import annotations

import bisect
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error
import pytest

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import read_frame_index, write_video
from serve_app.errors import InvalidOptions, InvalidVideo
from serve_app.schemas import AnalyzeOptions, ChunkingOptions, ChunkPlan
from serve_app.video.chunking import chunking_options, plan_chunks
from serve_app.video.decode import END_SLACK_S, SampledChunk, decode_chunk
from serve_app.video.probe import ffmpeg_reason, frames_from, open_video, probe, video_stream

if TYPE_CHECKING:
    from conftest import Clip, VideoFactory

LIMITS = VideoSettings()


def plans(path: Path, chunk_s: float = 20, overlap_s: float = 1, fps: float = 2) -> list[ChunkPlan]:
    opts = ChunkingOptions(
        chunk_s=chunk_s,
        overlap_s=overlap_s,
        fps=fps,
        token_budget=12_288,
        sampling="uniform",
        floor_s=LIMITS.floor_s,
        change_threshold=LIMITS.change_threshold,
        static_chunk_s=0.0,
    )
    return plan_chunks(probe(path, LIMITS), opts, LIMITS)


def check_own_time(chunk: SampledChunk, times: list[float], *, read_pixels: bool = True) -> None:
    """Every frame was on screen during the chunk, and (when `read_pixels`) shows the frame its time says.

    `times`: the source frame times, counted from the stream's start.
    """
    plan = chunk.plan
    assert chunk.frame_times_s == sorted(chunk.frame_times_s)
    for frame, t in zip(chunk.frames, chunk.frame_times_s, strict=True):
        assert t <= plan.end_s + END_SLACK_S, f"chunk {plan.index} [{plan.start_s}, {plan.end_s}]: frame at {t}"
        if t < plan.start_s - END_SLACK_S:
            # A frame held from before the start (none of the chunk's own is nearer), at most a chunk back;
            # the one shown at the start, or the reference frame before it when that was a skipped B-frame.
            shown_at_start = times[bisect.bisect_right(times, plan.start_s + 1e-9) - 1]
            assert plan.start_s - plan.duration_s - 1e-9 <= t <= shown_at_start + 1e-9, (plan, t)
        if read_pixels:
            index = read_frame_index(frame)
            assert times[index] == pytest.approx(t, abs=1e-3), "frame content does not match its timestamp"


def decode_all(path: Path, times: list[float], **kwargs: float) -> tuple[list[SampledChunk], list[str]]:
    """Decode every planned chunk; return the decoded ones and the messages of the empty ones."""
    chunks, empty = [], []
    for plan in plans(path, **kwargs):
        try:
            chunk = decode_chunk(path, plan, threads=1)
        except InvalidVideo as exc:
            empty.append(exc.detail)
            continue
        check_own_time(chunk, times)
        chunks.append(chunk)
    return chunks, empty


# -- sparse and variable-rate streams ------------------------------------------------------------------------


# (H.264 in MP4 or TS with these times gets encoder-made decoding times that end the stream at 4 s.)
@pytest.mark.parametrize("name", ["sparse.mkv", "sparse.webm"])
def test_five_frames_over_fifty_minutes_never_borrow_from_the_future(make_video: VideoFactory, name: str) -> None:
    # The case: chunks from 38 s on all showed "the frame at 3000 s".
    clip = make_video(name, duration_s=3000, fps=1, width=64, height=64, vfr_times=[0, 1, 2, 3, 3000])
    times = [t - clip.times[0] for t in clip.times]
    chunks, empty = decode_all(clip.path, times, chunk_s=60, overlap_s=1)
    assert chunks and empty
    shown = {t for c in chunks for t in c.frame_times_s}
    assert shown <= set(times)
    assert times[-1] in shown  # the last chunk has its own frame
    # Chunks in the gap are empty, and say which frames lie around it.
    assert all("is empty: the last frame before it is at 3.00 s, and the next is at 3000.00 s" in m for m in empty)
    # The chunk right after the last early frame carries it, with its true time.
    held = [c for c in chunks if c.plan.start_s > 3]
    assert held and all(set(c.frame_times_s) <= {3.0, 3000.0} for c in held)


@pytest.mark.parametrize("name", ["bursts.mkv", "bursts.mp4", "bursts.ts", "bursts.webm"])
def test_bursts_and_gaps_keep_every_frame_in_its_chunk(make_video: VideoFactory, name: str) -> None:
    # 30 fps bursts of 2 s separated by gaps of 1 s to 25 s: chunks end inside gaps and bursts alike.
    times: list[float] = []
    start = 0.0
    for gap in (1, 7, 25, 3, 12, 1):
        times += [round(start + i / 30, 3) for i in range(60)]
        start = times[-1] + gap
    clip = make_video(name, duration_s=times[-1], fps=30, width=64, height=64, vfr_times=times)
    stream_times = [t - clip.times[0] for t in clip.times]
    for chunk_s, overlap_s in ((10, 1), (4, 2), (2, 1)):
        chunks, empty = decode_all(clip.path, stream_times, chunk_s=chunk_s, overlap_s=overlap_s, fps=4)
        assert chunks
        for message in empty:
            assert "is empty" in message


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".ts", ".webm"])
def test_timestamps_starting_at_an_hour_work_in_every_container(make_video: VideoFactory, suffix: str) -> None:
    clip = make_video(
        f"offset{suffix}", duration_s=10, fps=10, width=64, height=64, vfr_times=[3600 + i / 10 for i in range(100)]
    )
    info = probe(clip.path, LIMITS)
    assert 9.8 <= info.duration_s <= 10.1  # not 3610 s (Matroska's header counts from 0)
    times = [t - 3600 for t in clip.times]
    chunks, empty = decode_all(clip.path, times, chunk_s=4, overlap_s=1)
    assert not empty and len(chunks) == 3
    assert 0 <= chunks[0].frame_times_s[0] <= 0.3  # counted from the stream's start, not from 0


def test_b_frames_in_mpeg_ts_with_audio_keep_the_first_keyframe(make_video: VideoFactory) -> None:
    # Seeking MPEG-TS to the stream's start time landed one packet late, past the only keyframe.
    clip = make_video("gop.ts", duration_s=6, fps=10, width=96, height=64, audio=True)
    info = probe(clip.path, LIMITS)
    assert info.duration_s == pytest.approx(6.0, abs=0.15)
    with open_video(clip.path) as container:
        stream = video_stream(container)
        first = next(frames_from(container, stream, 0.0))
        assert read_frame_index(first.to_ndarray(format="rgb24")) == 0
    times = [t - clip.times[0] for t in clip.times]
    chunks, empty = decode_all(clip.path, times, chunk_s=3, overlap_s=0.5)
    assert not empty and chunks


# -- truncated and corrupt files -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[float]]]:
    """12 s of 10 fps 320x240 with audio: the issue's cuts at 50 % and 95 % both lose more than 2.5 frames."""
    root = tmp_path_factory.mktemp("intact")
    made = {}
    for name, options in (("faststart.mp4", {"movflags": "faststart"}), ("clip.mkv", None), ("clip.webm", None)):
        path = root / name
        made[name] = (
            path,
            write_video(path, duration_s=12, fps=10, width=320, height=240, audio=True, options=options),
        )
    path = root / "clip.ts"
    made["clip.ts"] = (path, write_video(path, duration_s=12, fps=10, width=320, height=240, audio=True))
    return made


def cut(src: Path, fraction: float, dest: Path) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


@pytest.mark.parametrize("name", ["faststart.mp4", "clip.mkv", "clip.webm"])
@pytest.mark.parametrize("fraction", [0.5, 0.8, 0.95])
def test_a_cut_file_with_a_stated_duration_is_truncated_wherever_it_was_cut(
    intact: dict[str, tuple[Path, list[float]]], tmp_path: Path, name: str, fraction: float
) -> None:
    path = cut(intact[name][0], fraction, tmp_path / name)
    with pytest.raises(
        InvalidVideo, match=r"truncated or corrupt: its header says 12\.\d+ s but (its data ends|no frame)"
    ):
        probe(path, LIMITS)


@pytest.mark.parametrize("fraction", [0.5, 0.8, 0.95])
def test_a_cut_stream_format_is_the_part_that_is_there(
    intact: dict[str, tuple[Path, list[float]]], tmp_path: Path, fraction: float
) -> None:
    # MPEG-TS states no duration: what is there is the video, and every chunk of it decodes.
    src, written = intact["clip.ts"]
    path = cut(src, fraction, tmp_path / "cut.ts")
    info = probe(path, LIMITS)
    assert info.duration_s < 12 * fraction + 0.5
    times = [t - written[0] for t in written]
    chunks, empty = decode_all(path, times, chunk_s=3, overlap_s=0.5)
    assert not empty and chunks[-1].plan.end_s == info.duration_s


def test_truncation_messages_never_go_negative(intact: dict[str, tuple[Path, list[float]]], tmp_path: Path) -> None:
    for name in ("faststart.mp4", "clip.mkv"):
        for fraction in (0.1, 0.3):
            try:
                probe(cut(intact[name][0], fraction, tmp_path / name), LIMITS)
            except InvalidVideo as exc:
                assert "-" not in exc.detail.replace("non-", ""), exc.detail
                assert "Operation not permitted" not in exc.detail


def corrupt(src: Path, dest: Path) -> Path:
    """Flip bytes in a 2 kB stretch in the middle of the file: a damaged packet or two."""
    data = bytearray(src.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 2000, 7):
        data[offset] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize("name", ["faststart.mp4", "clip.mkv", "clip.webm", "clip.ts"])
def test_a_corrupt_packet_is_skipped_and_the_chunk_kept(
    intact: dict[str, tuple[Path, list[float]]], tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    src, written = intact[name]
    path = corrupt(src, tmp_path / name)
    times = [t - written[0] for t in written]
    with caplog.at_level(logging.WARNING, logger="serve_app.video.decode"):
        chunk_plans = plans(path, chunk_s=3, overlap_s=0.5)
        chunks = [decode_chunk(path, plan, threads=1) for plan in chunk_plans]  # none fails
    for chunk in chunks:
        # Frames decoded after a damaged reference frame may look wrong; their times may not.
        check_own_time(chunk, times, read_pixels=False)
        assert len(chunk.frame_times_s) >= 2
    skipped = [c for c in chunks if c.packets_skipped]
    warned = [r for r in caplog.records if "corrupt packet" in r.getMessage()]
    assert len(warned) == len(skipped)
    if name in ("faststart.mp4", "clip.ts"):  # where FFmpeg reports the damage (elsewhere it conceals it)
        assert skipped
    check_own_time(chunks[0], times)  # the first chunk, before the damage in the middle, shows the right frames


def test_ffmpeg_bare_failure_is_not_called_operation_not_permitted(tmp_path: Path) -> None:
    try:
        av.error.err_check(-1)  # FFmpeg's bare -1, which PyAV raises as EPERM
    except av.error.PermissionError as exc:
        assert "Operation not permitted" not in ffmpeg_reason(exc)
        assert ffmpeg_reason(exc)
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"\0\0\0\x18ftypmp42" + bytes(4000))
    with pytest.raises(InvalidVideo) as caught:
        with open_video(path) as container:
            probe(path, LIMITS) if container else None
    assert "Operation not permitted" not in caught.value.detail


def test_an_mp4_cut_inside_its_index_is_not_a_readable_container(cfr_mp4: Clip, tmp_path: Path) -> None:
    for fraction in (0.5, 0.8, 0.95):
        path = cut(cfr_mp4.path, fraction, tmp_path / "cut.mp4")
        with pytest.raises(InvalidVideo) as caught:
            probe(path, LIMITS)
        assert caught.value.type == "invalid-video"  # not "no video stream": it has no stream at all


# -- chunk length and overlap: the planner takes everything the validator allows ---------------------------------


@pytest.mark.parametrize(("chunk_s", "overlap_s"), [(2, None), (2, 1), (10, 5), (600, 30), (2, 0)])
def test_the_documented_minimum_and_half_overlaps_plan_and_decode(
    cfr_mp4: Clip, chunk_s: float, overlap_s: float | None
) -> None:
    options = AnalyzeOptions(chunk_s=chunk_s, overlap_s=overlap_s)
    filled = chunking_options(options, LIMITS)
    chunk_plans = plan_chunks(probe(cfr_mp4.path, LIMITS), filled, LIMITS)
    assert chunk_plans[0].start_s == 0 and chunk_plans[-1].end_s == pytest.approx(cfr_mp4.times[-1] + 0.1)
    for prev, nxt in zip(chunk_plans, chunk_plans[1:], strict=False):
        assert prev.core_end_s == nxt.core_start_s
    for plan in chunk_plans:
        check_own_time(decode_chunk(cfr_mp4.path, plan, threads=1), cfr_mp4.times)


@pytest.mark.parametrize(("chunk_s", "overlap_s"), [(10, 10), (10, 30), (4, 2.5)])
def test_an_overlap_above_half_is_refused_by_the_options_themselves(chunk_s: float, overlap_s: float) -> None:
    with pytest.raises(ValueError, match=r"overlap_s \(.+ s\) must be at most half of chunk_s"):
        AnalyzeOptions(chunk_s=chunk_s, overlap_s=overlap_s)


def test_an_overlap_clashing_with_the_default_chunk_names_the_default() -> None:
    with pytest.raises(InvalidOptions, match=r"overlap_s \(15 s\) must be at most half of chunk_s \(20 s\) \(chunk_s"):
        chunking_options(AnalyzeOptions(overlap_s=15), VideoSettings(chunk_s=20, overlap_s=1))
    with pytest.raises(InvalidOptions, match=r"\(overlap_s: the server's default\)"):
        chunking_options(AnalyzeOptions(chunk_s=2), VideoSettings(chunk_s=20, overlap_s=1.5))
