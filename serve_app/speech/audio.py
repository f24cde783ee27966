"""Decode a video's audio track to 16 kHz mono float32 on the video's clock.

Packet by packet, because faster-whisper's own loader returns no samples at all when the first packet
is corrupt (upstream SYSTRAN/faster-whisper#988; `../shared/media/Megamind.avi` has such a packet): a
packet FFmpeg cannot decode is skipped and counted. Samples are placed by their timestamps, so a gap
(a skipped packet, a stream that starts late) stays silence of the right length and the transcript's
times stay on the clock the frames use (the video stream's first timestamp is 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from serve_app.video.probe import open_video, stream_start_s, video_stream

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what Whisper takes
#: A timestamp jump longer than this is a gap to fill with silence; shorter ones are resampler jitter.
_GAP_S = 0.02


@dataclass(frozen=True)
class AudioTrack:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE; samples[0] is at video time 0
    packets_skipped: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode_audio(path: str | Path) -> AudioTrack | None:
    """The first audio stream of `path`, or None when the file has none (raises InvalidVideo if unreadable)."""
    with open_video(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        try:
            origin = stream_start_s(video_stream(container))
        except av.FFmpegError:
            origin = 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pieces: list[np.ndarray] = []
        filled = 0  # samples placed so far
        skipped = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                skipped += 1
                continue
            for frame in frames:
                at = None if frame.time is None else round((float(frame.time) - origin) * SAMPLE_RATE)
                for out in resampler.resample(frame):
                    data = out.to_ndarray().reshape(-1)
                    if at is not None:
                        if at - filled > _GAP_S * SAMPLE_RATE:  # a hole in the stream: keep its length
                            pieces.append(np.zeros(at - filled, dtype=np.float32))
                            filled = at
                        elif at < 0:  # audio from before the first video frame: not on the clock
                            data = data[min(len(data), -at) :]
                        at = None  # later outputs of one input frame follow on directly
                    pieces.append(data)
                    filled += len(data)
        for out in resampler.resample(None):
            pieces.append(out.to_ndarray().reshape(-1))
    if skipped:
        logger.warning("%s: skipped %d corrupt audio packet(s)", path, skipped)
    samples = np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)
    return AudioTrack(samples=samples, packets_skipped=skipped)
