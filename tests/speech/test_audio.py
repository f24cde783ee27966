"""Audio decoding: packet by packet, placed on the video's clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serve_app.devtools.meeting import Line, write_meeting
from serve_app.speech import decode_audio
from serve_app.speech.audio import SAMPLE_RATE


def _onset_s(samples: np.ndarray) -> float:
    return float(np.flatnonzero(np.abs(samples) > 0.02)[0]) / SAMPLE_RATE


def test_a_late_audio_track_is_placed_after_silence_of_the_right_length(tmp_path: Path) -> None:
    early, late = tmp_path / "early.mp4", tmp_path / "late.mkv"
    said = write_meeting(early, [Line(1.0, "Hello there.")], duration_s=4.0)
    write_meeting(late, [Line(1.0, "Hello there.")], duration_s=4.0, start_offset_s=12.0, audio_delay_s=0.5)
    a, b = decode_audio(early), decode_audio(late)
    assert a is not None and b is not None
    # Both voices start where they were said on the video clock (the codec's priming samples are the
    # only slack), although the second file's streams start at 12 s and its audio 0.5 s after the video.
    assert abs(_onset_s(a.samples) - said[0].start_s) < 0.05
    assert abs(_onset_s(b.samples) - said[0].start_s) < 0.05
    assert abs(a.duration_s - 4.0) < 0.1 and a.packets_skipped == 0


def test_megamind_decodes_past_its_corrupt_first_packet(media_dir: Path) -> None:
    track = decode_audio(media_dir / "Megamind.avi")
    assert track is not None and track.packets_skipped >= 1
    assert 10.5 < track.duration_s < 12.0 and track.samples.dtype == np.float32
    assert float(np.abs(track.samples).max()) > 0.1
