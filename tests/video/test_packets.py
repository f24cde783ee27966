"""The compressed-domain pass (`serve_app.video.packets`) and the decoder that follows it (`guided`).

Clips are generated here with real encoders (idle screens whose pictures are numbered, a camera-like
clip, CBR-padded H.264) plus the real recordings in ../shared/media. The decoder's promise is checked
against full decoding of the same chunks: the same kept times, and at each reported time the picture's
number (its frame code) is the number of the source frame shown then.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from serve_app.config import VideoSettings
from serve_app.devtools.idle_screen import write_idle_screen
from serve_app.devtools.synthetic import ScreenEvent, read_counter
from serve_app.schemas import AnalyzeOptions, ChunkingOptions, ChunkPlan
from serve_app.video.chunking import chunking_options, plan_chunks, plan_file
from serve_app.video.decode import decode_chunk
from serve_app.video.guided import activity
from serve_app.video.packets import (
    PacketInfo,
    has_hidden_frame,
    nal_length_size,
    packet_params,
    payload_size,
    static_flags,
)
from serve_app.video.probe import probe, stream_start_s

LIMITS = VideoSettings()
PARAMS = packet_params(VideoSettings())
assert PARAMS is not None, "guided decoding is on by default"
MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
W, H, FPS = 640, 360, 30
# (encoder, suffix, options): fast settings, each family's usual container.
ENCODERS = {
    "h264": ("libx264", ".mp4", {"preset": "veryfast", "threads": "1"}),
    "hevc": ("libx265", ".mp4", {"preset": "ultrafast", "x265-params": "log-level=error:pools=1:frame-threads=1"}),
    "vp8": ("libvpx", ".webm", {"deadline": "realtime", "cpu-used": "8", "threads": "1"}),
    "vp9": ("libvpx-vp9", ".webm", {"deadline": "realtime", "cpu-used": "8", "threads": "1", "row-mt": "0"}),
    "av1": ("libsvtav1", ".mp4", {"preset": "8", "svtav1-params": "enable-tf=0"}),
    "mpeg4": ("mpeg4", ".avi", {"qscale": "4"}),
}
# Families whose idle stretches the pass must find (SVT-AV1's hierarchical groups hide frames everywhere).
SAVES = {"h264", "hevc", "vp8", "vp9", "mpeg4"}


def _clip(tmp_path: Path, family: str, seconds: float = 12.0, seed: int = 1) -> tuple[Path, list[int]]:
    encoder, suffix, options = ENCODERS[family]
    if encoder not in av.codecs_available:
        pytest.fail(f"this PyAV wheel lacks {encoder}")  # the project pins a wheel that has them all
    path = tmp_path / f"idle-{family}{suffix}"
    ids = write_idle_screen(
        path, duration_s=seconds, fps=FPS, width=W, height=H, seed=seed, code=True, codec=encoder, options=options
    )
    return path, ids


def _packets(path: Path) -> tuple[str, list[PacketInfo]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        codec = ctx.codec.canonical_name
        origin, length = stream_start_s(stream), nal_length_size(codec, ctx.extradata)
        infos = [
            PacketInfo(
                float(p.pts * stream.time_base) - origin,
                payload_size(codec, bytes(p), length),
                p.is_keyframe,
                has_hidden_frame(codec, bytes(p)),
            )
            for p in container.demux(stream)
            if p.size
        ]
        return codec, infos


def _plans(path: Path, fps: float, chunk_s: float = 20.0) -> list[ChunkPlan]:
    opts = ChunkingOptions(
        chunk_s=chunk_s,
        overlap_s=1.0,
        fps=fps,
        token_budget=LIMITS.token_budget,
        sampling="adaptive",
        floor_s=LIMITS.floor_s,
        change_threshold=LIMITS.change_threshold,
        static_chunk_s=0.0,
    )
    return plan_chunks(probe(path, LIMITS), opts, LIMITS)


@pytest.mark.parametrize("family", sorted(ENCODERS))
def test_no_change_is_called_static(tmp_path: Path, family: str) -> None:
    """Every frame whose picture differs from the one before is "possibly changing", per codec family."""
    path, ids = _clip(tmp_path, family)
    codec, infos = _packets(path)
    flags = static_flags(codec, infos, PARAMS)
    changed = [round(p.pts_s * FPS) == 0 or ids[round(p.pts_s * FPS)] != ids[round(p.pts_s * FPS) - 1] for p in infos]
    missed = [p.pts_s for p, f, c in zip(infos, flags, changed, strict=True) if f and c]
    assert missed == [], f"{family}: changes called static at {missed}"
    idle = [f for f, c in zip(flags, changed, strict=True) if not c]
    if family in SAVES:
        # Most idle frames are found (x264 spends bits refining the picture for a while after a change).
        assert sum(idle) >= 0.5 * len(idle), f"{family}: {sum(idle)} of {len(idle)} idle frames found static"


def test_camera_footage_has_no_static_stretch(tmp_path: Path) -> None:
    """Noise and motion everywhere: every inter packet codes content, nothing may be skipped."""
    path = tmp_path / "camera.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "veryfast", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        yy, xx = np.mgrid[0:H, 0:W]
        for i in range(FPS * 4):
            base = 110 + 60 * np.sin((xx + 3 * i) / 37.0) * np.cos((yy - 2 * i) / 23.0)
            image = np.clip(base[:, :, None] + rng.normal(0, 12, (H, W, 3)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    codec, infos = _packets(path)
    assert not any(static_flags(codec, infos, PARAMS))
    plan = _plans(path, fps=2.0)[0]
    full, guided = decode_chunk(path, plan, threads=1), decode_chunk(path, plan, threads=1, packets=PARAMS)
    assert guided.frame_times_s == full.frame_times_s
    assert guided.stats.frames_decoded == full.stats.frames_decoded  # the full path, not a cheaper guess


def test_cbr_filler_is_not_picture(tmp_path: Path) -> None:
    """x264 CBR pads idle frames with filler NAL units: without them the idle floor shows again."""
    encoder, _, options = ENCODERS["h264"]
    cbr = {
        **options,
        "b": "800k",
        "minrate": "800k",
        "maxrate": "800k",
        "bufsize": "400k",
        "x264-params": "nal-hrd=cbr",
    }
    path = tmp_path / "cbr.mp4"
    ids = write_idle_screen(
        path, duration_s=8, fps=FPS, width=W, height=H, seed=1, code=True, codec=encoder, options=cbr
    )
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        raw = [p.size for p in container.demux(stream) if p.size and not p.is_keyframe]
    codec, infos = _packets(path)
    inter = [p.size for p in infos if not p.key]
    assert np.median(raw) > 10 * np.median(inter), "the encoder did not pad: the test no longer tests padding"
    flags = static_flags(codec, infos, PARAMS)
    changed = [ids[round(p.pts_s * FPS)] != ids[max(0, round(p.pts_s * FPS) - 1)] for p in infos]
    assert not any(f and c for f, c in zip(flags, changed, strict=True))
    assert sum(flags) >= 0.3 * changed.count(False)


def test_payload_parsers() -> None:
    """Padding is found in each framing: Annex B and length-prefixed NAL units, AV1 OBUs, MPEG-4 stuffing."""
    slice_nal, filler = b"\x65" + b"\x11" * 20, b"\x0c" + b"\xff" * 50 + b"\x80"
    annexb = b"\x00\x00\x00\x01" + slice_nal + b"\x00\x00\x01" + filler
    assert payload_size("h264", annexb, None) == 4 + len(slice_nal)
    avcc = len(slice_nal).to_bytes(4, "big") + slice_nal + len(filler).to_bytes(4, "big") + filler
    assert payload_size("h264", avcc, 4) == 4 + len(slice_nal)
    hevc_filler = b"\x4c\x01" + b"\xff" * 30  # NAL type 38
    assert payload_size("hevc", len(hevc_filler).to_bytes(4, "big") + hevc_filler, 4) == 0
    frame_obu, pad_obu = b"\x32\x03\x10\x20\x30", b"\x7a\x04\x00\x00\x00\x00"  # OBU_FRAME, OBU_PADDING
    assert payload_size("av1", frame_obu + pad_obu) == len(frame_obu)
    assert payload_size("mpeg4", b"\x00\x00\x01\xb6" + b"\x42" * 9 + b"\x00\x00\x01\xc3" + b"\xff" * 40) == 13
    assert payload_size("vp8", b"\x01" * 33) == 33
    assert has_hidden_frame("vp8", b"\x00\x00\x00") and not has_hidden_frame("vp8", b"\x10\x00\x00")
    assert has_hidden_frame("av1", b"\x1a\x01\x80")  # a lone frame header with show_existing_frame


@pytest.mark.parametrize("family", sorted(ENCODERS))
def test_guided_decode_matches_full_decode(tmp_path: Path, family: str) -> None:
    """Same kept frames and times as decoding everything; each reused picture was on screen when reported."""
    path, ids = _clip(tmp_path, family, seconds=24.0, seed=3)
    decoded = [0, 0]  # guided, full
    for fps in (2.0, 8.0):
        for plan in _plans(path, fps=fps):
            full = decode_chunk(path, plan, threads=1)
            guided = decode_chunk(path, plan, threads=1, packets=PARAMS)
            assert guided.frame_times_s == full.frame_times_s, (family, fps, plan.index)
            for frame, t in zip(guided.frames, guided.frame_times_s, strict=True):
                assert read_counter(frame, W, H) == ids[round(t * FPS)] % 2**16, (family, fps, plan.index, t)
            assert guided.stats.frames_decoded <= full.stats.frames_decoded
            decoded[0] += guided.stats.frames_decoded
            decoded[1] += full.stats.frames_decoded
    if family in SAVES:
        # A static stretch inside a keyframe group is still decoded when a change follows it (its
        # pictures are references); x264's scene-cut starts a group at each change, so it saves most.
        # libvpx's realtime mode refreshes the picture every ~11 frames with packets 3x its floor (not
        # told from a small change by size), and mpeg4's idle frames after its 12-frame keyframes cost
        # 9x its floor: there little is saved.
        assert decoded[0] < (0.5 if family == "h264" else 1.0) * decoded[1], (family, decoded)


@pytest.mark.parametrize("name", ["display-dual-monitors.webm", "vtest.avi"])
def test_real_recordings(name: str) -> None:
    """The GNOME screen recording keeps the frames full decoding keeps; the camera clip falls back."""
    path = MEDIA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/media)")
    for plan in _plans(path, fps=2.0):
        full = decode_chunk(path, plan, threads=1)
        guided = decode_chunk(path, plan, threads=1, packets=PARAMS)
        assert guided.frame_times_s == full.frame_times_s, plan.index
        # The reused picture is the one on screen: within codec noise of the decoded one.
        diff = np.abs(guided.frames.astype(np.int16) - full.frames.astype(np.int16)).mean(axis=(1, 2, 3))
        assert diff.max() < 1.0, (plan.index, diff.max())
        if name == "vtest.avi":
            assert guided.stats.frames_decoded == full.stats.frames_decoded


def test_chunks_sized_by_content_keep_every_change_and_true_times(tmp_path: Path) -> None:
    """An idle screen with three changes (slides at 0 and 40 s, a dialog open 70-72 s): the packet pass
    finds exactly the changes, chunks grow over the stretches between them and end at the grid point
    before each, and the grown chunks keep what full decoding of them keeps: every change, each frame
    the picture on screen at its reported time, fewer frames than the plain grid in all."""
    events = [ScreenEvent("slide", 0.0, 0.0, 40.0), ScreenEvent("slide", 40.0, 40.0, 90.0)]
    events.append(ScreenEvent("dialog", 70.0, 70.0, 72.0))
    path = tmp_path / "idle-90s.mp4"
    encoder, _, options = ENCODERS["h264"]
    ids = write_idle_screen(
        path, duration_s=90, fps=FPS, width=W, height=H, events=events, code=True, codec=encoder, options=options
    )
    spans = activity(path, PARAMS)
    assert spans is not None
    # Each active stretch is a change: the cursor glides 0.4 s before it, x264 refines the new picture for
    # up to ~1.5 s after it (measured 39.6-41.5 s for the slide), the dialog closes at 72 s.
    assert all(any(t - 0.5 <= a and b <= t + 2.0 for t in (40.0, 70.0, 72.0)) for a, b in spans), spans
    assert all(any(a <= t + 0.5 and b >= t - 0.5 for a, b in spans) for t in (40.0, 70.0, 72.0)), spans

    chunking = chunking_options(AnalyzeOptions(), LIMITS)
    info, plans = plan_file(path, chunking, LIMITS)
    assert [(p.start_s, p.end_s) for p in plans] == [(0, 39), (38, 58), (57, 90)]
    grid = plan_chunks(info, chunking.model_copy(update={"static_chunk_s": 0.0}), LIMITS)
    assert len(grid) == 5

    def kept(chunks: list[ChunkPlan], packets: object) -> list[float]:
        times: list[float] = []
        for plan in chunks:
            chunk = decode_chunk(path, plan, threads=1, packets=packets)
            for frame, t in zip(chunk.frames, chunk.frame_times_s, strict=True):
                assert plan.start_s <= t <= plan.end_s, (plan.index, t)
                assert read_counter(frame, plan.width, plan.height) == ids[round(t * FPS)] % 2**16, (plan.index, t)
            times += chunk.frame_times_s
        return times

    guided = kept(plans, PARAMS)
    assert guided == kept(plans, None), "guided decoding of grown chunks keeps what full decoding keeps"
    for event in events:
        assert any(event.shown_s <= t < event.end_s for t in guided), (event, guided)
    assert len(guided) < len(kept(grid, PARAMS)), "fewer frames than the plain grid"
