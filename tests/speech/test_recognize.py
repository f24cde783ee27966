"""Real Whisper (the bundled base model, faster-whisper on CPU) on generated and real speech."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from serve_app.config import AsrSettings
from serve_app.devtools.meeting import Line, word_error_rate, write_meeting
from serve_app.devtools.synthetic import write_video
from serve_app.errors import InvalidOptions
from serve_app.speech import Recognizer, decode_audio, transcribe_file
from serve_app.speech.audio import SAMPLE_RATE, AudioTrack

if TYPE_CHECKING:
    from conftest import Meeting

MAX_WER = 0.15
MAX_START_ERROR_S = 0.5


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(AsrSettings())  # the default: bundled Whisper base, int8, hash-checked


def _matched(meeting: Meeting, transcript) -> list[tuple[object, object]]:
    """Each said sentence with the segment that starts nearest to it."""
    return [(s, min(transcript.segments, key=lambda g: abs(g.start_s - s.start_s))) for s in meeting.said]


def test_a_generated_meeting_is_transcribed_with_its_words_and_times(recognizer: Recognizer, meeting: Meeting) -> None:
    transcript = transcribe_file(recognizer, meeting.path, None)
    assert transcript is not None and transcript.model == "whisper-base" and transcript.language == "en"
    truth = " ".join(s.text for s in meeting.said)
    heard = " ".join(g.text for g in transcript.segments)
    wer = word_error_rate(truth, heard)
    assert wer <= MAX_WER, f"WER {wer:.1%}: {heard!r}"
    for said, segment in _matched(meeting, transcript):
        assert abs(segment.start_s - said.start_s) <= MAX_START_ERROR_S, (said, segment)
    assert len(transcript.segments) == len(meeting.said)  # one segment per sentence: the pauses split them
    assert all(g.words for g in transcript.segments)  # aligned words (segment times come from them)
    assert 0 < transcript.speech_s < transcript.audio_s


def test_times_are_on_the_video_clock_with_offset_streams(recognizer: Recognizer, tmp_path: Path) -> None:
    """Both streams start at 30 s in an MKV, and the audio 0.6 s after the first frame: times count from
    the first frame, as the frames' do."""
    path = tmp_path / "offset.mkv"
    said = write_meeting(
        path,
        [Line(2.0, "The server restarted at noon."), Line(7.0, "Everything is green again.")],
        duration_s=11.0,
        start_offset_s=30.0,
        audio_delay_s=0.6,
    )
    transcript = transcribe_file(recognizer, path, "en")
    assert transcript is not None and len(transcript.segments) == 2
    for truth, segment in zip(said, transcript.segments, strict=True):
        assert abs(segment.start_s - truth.start_s) <= MAX_START_ERROR_S, (truth, segment)


def test_a_corrupt_first_packet_is_skipped_not_an_empty_transcript(recognizer: Recognizer, media_dir: Path) -> None:
    """Megamind.avi's first AC3 packet is damaged: faster-whisper's own loader returns no audio at all."""
    transcript = transcribe_file(recognizer, media_dir / "Megamind.avi", None)
    assert transcript is not None and transcript.packets_skipped >= 1
    text = " ".join(g.text for g in transcript.segments).lower()
    assert "judge a book by its cover" in text and "petty" in text


def _silent_or_tone(tmp_path: Path, kind: str) -> AudioTrack:
    seconds = 20
    t = np.arange(seconds * SAMPLE_RATE) / SAMPLE_RATE
    if kind == "silence":
        samples = np.zeros_like(t)
    else:  # "music": a chord with a beat
        samples = 0.2 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t) + np.sin(2 * np.pi * 330 * t))
        samples *= 0.5 + 0.5 * (np.sin(2 * np.pi * 2 * t) > 0)
    return AudioTrack(samples=samples.astype(np.float32), packets_skipped=0)


@pytest.mark.parametrize("kind", ["silence", "music"])
def test_no_speech_gives_no_segments_and_no_whisper_call(recognizer: Recognizer, tmp_path: Path, kind: str) -> None:
    transcript = recognizer.transcribe(_silent_or_tone(tmp_path, kind))
    assert transcript.segments == [] and transcript.speech_s == 0.0  # VAD found nothing: Whisper never ran
    assert transcript.asr_s < 2.0  # the VAD alone on 20 s (Whisper base on speech takes longer)


def test_a_video_with_a_tone_track_has_no_segments(recognizer: Recognizer, tmp_path: Path) -> None:
    path = tmp_path / "tone.mp4"
    write_video(path, duration_s=6.0, fps=5, width=128, height=96, audio=True)  # a steady 440 Hz tone
    transcript = transcribe_file(recognizer, path, None)
    assert transcript is not None and transcript.segments == []


def test_a_video_without_audio_has_no_transcript(recognizer: Recognizer, tmp_path: Path) -> None:
    path = tmp_path / "mute.mp4"
    write_video(path, duration_s=2.0, fps=5, width=128, height=96)
    assert decode_audio(path) is None and transcribe_file(recognizer, path, None) is None


def test_an_unknown_language_is_refused(recognizer: Recognizer) -> None:
    with pytest.raises(InvalidOptions, match="not a Whisper language code"):
        recognizer.check_language("xx")
    recognizer.check_language("de")  # base is multilingual


def test_the_english_only_model_refuses_other_languages() -> None:
    tiny = Recognizer(AsrSettings(model="tiny.en"))
    assert tiny.name == "whisper-tiny.en"
    with pytest.raises(InvalidOptions, match="English only"):
        tiny.check_language("de")
    tiny.check_language("en")
