"""faster-whisper over a decoded audio track → `Transcript` (segments on the video's clock).

Silero VAD (shipped in faster-whisper) runs first: a track without speech (silence, music, noise)
stops there, with no Whisper call at all — without VAD, Whisper writes junk segments on music and
spends seconds on silence. `HF_HUB_OFFLINE` is set before faster-whisper is imported, so nothing
here can reach a model hub.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from serve_app.config import AsrSettings
from serve_app.errors import InvalidOptions
from serve_app.schemas import Transcript, TranscriptSegment, Word
from serve_app.speech.audio import SAMPLE_RATE, AudioTrack, decode_audio
from serve_app.speech.model import LoadedModel, load_model_files

os.environ.setdefault("HF_HUB_OFFLINE", "1")

logger = logging.getLogger(__name__)


def whisper_languages() -> tuple[str, ...]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES  # the model's own list (no public name for it)

    return tuple(_LANGUAGE_CODES)


class Recognizer:
    """One loaded Whisper model; `transcribe` is thread-compatible but not parallel (CT2 uses `threads`)."""

    def __init__(self, settings: AsrSettings) -> None:
        from faster_whisper import WhisperModel

        self.settings = settings
        started = time.perf_counter()
        loaded: LoadedModel = load_model_files(settings.model)
        source: Any = str(loaded.source) if loaded.files is None else loaded.source
        self.model = WhisperModel(
            source,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.threads,
            files=loaded.files,
            local_files_only=True,
        )
        self.name = loaded.name
        self.multilingual = loaded.multilingual
        logger.info("speech model %s loaded in %.1fs", self.name, time.perf_counter() - started)

    def check_language(self, language: str | None) -> None:
        if language is None:
            return
        if not self.multilingual and language != "en":
            raise InvalidOptions(f"language {language!r}: the speech model {self.name} knows English only ('en')")
        if language not in whisper_languages():
            raise InvalidOptions(f"language {language!r} is not a Whisper language code")

    def transcribe(self, track: AudioTrack, language: str | None = None) -> Transcript:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        self.check_language(language)
        started = time.perf_counter()
        # Pauses of 0.5 s split speech (the default 2 s joins a meeting's turns into one stretch), and
        # 0.2 s of padding keeps onsets audible without moving starts early (measured: 0.4 s pad → 0.39 s).
        vad = VadOptions(min_silence_duration_ms=500, speech_pad_ms=200)
        speech = get_speech_timestamps(track.samples, vad) if len(track.samples) else []
        speech_s = sum(c["end"] - c["start"] for c in speech) / SAMPLE_RATE
        segments: list[TranscriptSegment] = []
        detected, probability = language or ("en" if not self.multilingual else "und"), 1.0
        if speech:
            found, info = self.model.transcribe(
                track.samples,
                language=language,
                beam_size=self.settings.beam_size,
                vad_filter=True,
                vad_parameters=vad,
                word_timestamps=self.settings.word_timestamps,
            )
            segments = [part for s in found if s.text.strip() for part in _sentences(s)]
            detected, probability = info.language, float(info.language_probability)
        return Transcript(
            language=detected,
            language_probability=min(1.0, max(0.0, probability)),
            model=self.name,
            segments=segments,
            audio_s=track.duration_s,
            speech_s=speech_s,
            asr_s=time.perf_counter() - started,
            packets_skipped=track.packets_skipped,
        )


_SENTENCE_END = (".", "?", "!")


def _sentences(s: Any) -> list[TranscriptSegment]:
    """A Whisper segment as one segment per sentence, with times from its aligned words.

    Whisper often writes two sentences as one segment (seen: "...at noon. Everything is green again.",
    3 s apart). Split at sentence-final punctuation, a chunk gets the sentences it overlaps, not a
    neighbour's too. Without word times the segment stays whole, with Whisper's times.
    """
    if not s.words:
        return [TranscriptSegment(start_s=max(0.0, s.start), end_s=max(0.0, s.end), text=s.text.strip())]
    sentences: list[list[Any]] = [[]]
    for w in s.words:
        sentences[-1].append(w)
        if w.word.strip().endswith(_SENTENCE_END):
            sentences.append([])
    return [_from_words(ws) for ws in sentences if ws]


def _from_words(ws: list[Any]) -> TranscriptSegment:
    words = [
        Word(start_s=max(0.0, w.start), end_s=max(0.0, w.end), text=w.word.strip(), probability=w.probability)
        for w in ws
    ]
    text = "".join(w.word for w in ws).strip()
    return TranscriptSegment(start_s=words[0].start_s, end_s=words[-1].end_s, text=text, words=words)


def transcribe_file(recognizer: Recognizer, path: str | Path, language: str | None) -> Transcript | None:
    """The transcript of `path`'s first audio stream, or None when it has no audio stream."""
    started = time.perf_counter()
    track = decode_audio(path)
    if track is None:
        return None
    transcript = recognizer.transcribe(track, language)
    return transcript.model_copy(update={"asr_s": time.perf_counter() - started})


_LOADED: dict[str, Recognizer] = {}


def shared_recognizer(settings: AsrSettings) -> Recognizer:
    """One Recognizer per settings per process: bulk tasks reuse their worker's model (loads take ~1 s and
    ~0.5 GB), as a deployment replica does."""
    key = settings.model_dump_json()
    if key not in _LOADED:
        _LOADED[key] = Recognizer(settings)
    return _LOADED[key]
