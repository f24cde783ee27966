"""Generated meetings: espeak-ng sentences at known times over slides that change at known times.

The truth a test checks a transcript against: each sentence's words and the time its voice really
starts and ends (measured on the synthesized samples, not assumed), and each slide's start. Needs the
`espeak-ng` program (Debian package `espeak-ng`; `make setup` installs it where apt is available).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from serve_app.devtools.synthetic import _slide_image

RATE = 22_050  # espeak-ng's output rate
_VOICE_LEVEL = 0.02  # |sample| above this is voice (espeak pads with exact silence)


@dataclass(frozen=True)
class Line:
    """A sentence to say at `at_s` on the video's clock."""

    at_s: float
    text: str
    voice: str = "en-us"


@dataclass(frozen=True)
class Spoken:
    """A said sentence with the times its voice is heard (video clock)."""

    start_s: float
    end_s: float
    text: str


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def say(text: str, voice: str = "en-us", words_per_minute: int = 160) -> np.ndarray:
    """espeak-ng's rendering of `text` as float32 samples at RATE."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", out.name, text],
            check=True,
            capture_output=True,
        )
        with wave.open(out.name) as wav:
            assert wav.getframerate() == RATE and wav.getsampwidth() == 2 and wav.getnchannels() == 1
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def _voiced(samples: np.ndarray) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(samples) > _VOICE_LEVEL)
    return (int(loud[0]), int(loud[-1]) + 1) if len(loud) else (0, 0)


def write_meeting(
    path: str | Path,
    lines: Sequence[Line],
    *,
    duration_s: float,
    slide_starts: Sequence[float] = (0.0,),
    fps: float = 5.0,
    width: int = 640,
    height: int = 360,
    start_offset_s: float = 0.0,
    audio_delay_s: float = 0.0,
    noise: float = 0.0,
) -> list[Spoken]:
    """Write an H.264 + AAC file (.mp4/.mkv/.mov) of slides with the lines spoken; returns what was said.

    `start_offset_s` starts both streams' timestamps there (as cut recordings do; times in the result are
    still on the video's clock, which starts at 0); `audio_delay_s` starts the audio track that much
    after the first frame. `noise` adds white noise of that amplitude.
    """
    track = np.zeros(math.ceil(duration_s * RATE), np.float32)
    said: list[Spoken] = []
    for line in lines:
        voice = say(line.text, line.voice)
        at = round(line.at_s * RATE)
        voice = voice[: max(0, len(track) - at)]
        track[at : at + len(voice)] += voice
        first, last = _voiced(voice)
        said.append(Spoken(start_s=(at + first) / RATE, end_s=(at + last) / RATE, text=line.text))
    if noise:
        track += np.random.default_rng(0).normal(0, noise, len(track)).astype(np.float32)
    if audio_delay_s < 0:
        raise ValueError("audio_delay_s must be >= 0")
    audio = track[round(audio_delay_s * RATE) :]  # the audio stream's own t=0 is `audio_delay_s` on the clock
    _mux(Path(path), audio, duration_s, slide_starts, fps, width, height, start_offset_s, audio_delay_s)
    return said


def _mux(
    path: Path,
    audio: np.ndarray,
    duration_s: float,
    slide_starts: Sequence[float],
    fps: float,
    width: int,
    height: int,
    offset_s: float,
    audio_delay_s: float,
) -> None:
    rate = Fraction(fps).limit_denominator(1001)
    audio_codec = "libopus" if path.suffix.lower() in (".mkv", ".webm") else "aac"
    audio_rate = 48_000
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=rate, options={"preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = 1 / rate
        sound = container.add_stream(audio_codec, rate=audio_rate)
        sound.layout = "mono"
        frame_size = 960 if audio_codec == "libopus" else 1024
        resampled = _resample(audio, audio_rate)
        video_offset = round(offset_s * rate)
        audio_offset = round((offset_s + audio_delay_s) * audio_rate)
        sent = 0

        def send_audio_until(t: float) -> None:  # interleaved with the video, as recorders do
            nonlocal sent
            while sent < len(resampled) and sent / audio_rate + audio_delay_s <= t:
                chunk = resampled[sent : sent + frame_size]
                if len(chunk) < frame_size:
                    chunk = np.pad(chunk, (0, frame_size - len(chunk)))
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                frame.sample_rate = audio_rate
                frame.pts = audio_offset + sent
                frame.time_base = Fraction(1, audio_rate)
                for packet in sound.encode(frame):
                    container.mux(packet)
                sent += frame_size

        for index in range(round(duration_s * rate)):
            t = float(index / rate)
            send_audio_until(t)
            slide = max(i for i, s in enumerate(slide_starts) if s <= t) if slide_starts[0] <= t else 0
            image = _slide_image(slide, t, width, height, rows=3 + slide % 5, background=250 - 7 * (slide % 4))
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = video_offset + index
            picture.time_base = video.codec_context.time_base
            for packet in video.encode(picture):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        send_audio_until(math.inf)
        for packet in sound.encode():
            container.mux(packet)


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """RATE → `rate` by linear interpolation (plenty for speech that Whisper resamples to 16 kHz again)."""
    if not len(samples):
        return samples
    times = np.arange(round(len(samples) * rate / RATE)) / rate
    return np.interp(times, np.arange(len(samples)) / RATE, samples).astype(np.float32)


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, for comparing transcripts."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(truth: str, heard: str) -> float:
    """(substitutions + deletions + insertions) / words of `truth`: word-level Levenshtein distance."""
    ref, hyp = words(truth), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


#: The sample meeting of the demo and the tests: six sentences, two voices, four slides in 40 s. Worded
#: so Whisper base hears every word on any CPU: "by Friday" ("I Friday") and espeak's en-us+f3 voice were
#: misheard on some machines (int8 kernels differ by CPU), which made the WER tests flaky.
SAMPLE_LINES = (
    Line(1.0, "Good morning everyone, let us review the quarterly budget."),
    Line(7.0, "The marketing team needs two more engineers.", "en-gb"),
    # Starts before and ends after 16 s: across the boundary of 8 s chunks.
    Line(14.6, "Please send the final report to finance before Friday."),
    Line(21.0, "Does anyone have questions about the new dashboard?"),
    Line(28.5, "We decided to launch the mobile app in March."),
    Line(35.0, "Thank you all, see you next week.", "en-gb"),
)
SAMPLE_SLIDES = (0.0, 10.0, 20.0, 30.0)
SAMPLE_DURATION_S = 40.0


def write_sample_meeting(path: str | Path) -> list[Spoken]:
    return write_meeting(path, SAMPLE_LINES, duration_s=SAMPLE_DURATION_S, slide_starts=SAMPLE_SLIDES)
