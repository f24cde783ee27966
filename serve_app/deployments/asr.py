"""ASR: one Whisper model per replica (faster-whisper on CPU), transcribing whole audio tracks.

A CPU-tier deployment of its own, so a video's transcription runs on its own replica while the Chunkers
decode its frames (the flow starts both at once). One track at a time per replica: CTranslate2 already
uses `asr.threads` threads; more videos at once scale out replicas.
"""

from __future__ import annotations

import asyncio
import logging

from ray import serve

from serve_app.config import AsrSettings
from serve_app.observability.logs import route_to_serve
from serve_app.schemas import Transcript
from serve_app.speech import Recognizer, transcribe_file
from serve_app.store.media import MediaCache, media_path

logger = logging.getLogger(__name__)


@serve.deployment(name="ASR", health_check_period_s=10, health_check_timeout_s=30)
class ASR:
    def __init__(self, settings: AsrSettings, cache: MediaCache) -> None:
        route_to_serve()
        # Loads and hash-checks the weights: a missing or damaged model fails the replica at start.
        self.recognizer = Recognizer(settings)
        self.cache = cache

    def check_language(self, language: str | None) -> None:
        self.recognizer.check_language(language)

    async def transcribe(self, media: str, language: str | None) -> Transcript | None:
        """The transcript of the audio track of the media at store URI `media` (None: it has none)."""

        def run() -> Transcript | None:
            return transcribe_file(self.recognizer, media_path(media, self.cache), language)

        transcript = await asyncio.to_thread(run)
        if transcript is not None:
            logger.info(
                "%s: %d segment(s), %.1fs of speech in %.1fs of audio, %.1fs",
                media,
                len(transcript.segments),
                transcript.speech_s,
                transcript.audio_s,
                transcript.asr_s,
            )
        return transcript
