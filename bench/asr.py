"""Speech recognition: real-time factor, peak memory and accuracy per model, and what the ASR stage adds
to a meeting's end-to-end wall time through the service (it should overlap decoding, not add to it).

    .venv/bin/python bench/asr.py

Per model (bundled Whisper base and tiny.en, int8, `asr.threads`), each in its own process so the peak
RSS is its own: reelserve's speech stage (PyAV packet-by-packet decode + Silero VAD + faster-whisper)
against faster-whisper's own pipeline (`WhisperModel.transcribe(path, vad_filter=True)`, its own
loader), on a generated 160 s meeting (espeak-ng, known words) and `../shared/media/Megamind.avi`
(whose first audio packet is corrupt). Then the same meeting through the embedded stack
(`POST /v1/analyze`, mode `ui`) with `audio=auto` and `audio=off`.

Last line: `asr_rtf_base=<x> asr_rtf_tiny=<x> e2e_wall_ratio_audio_on_vs_off=<x>`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import SHARED_MEDIA, cached, hardware

from serve_app.devtools.meeting import SAMPLE_DURATION_S, SAMPLE_LINES, Line, word_error_rate, write_meeting

REPEATS = 4  # the 40 s sample meeting, four times over: 160 s
MODELS = ("base", "tiny.en")


def meeting_lines() -> list[Line]:
    return [
        Line(line.at_s + k * SAMPLE_DURATION_S, line.text, line.voice) for k in range(REPEATS) for line in SAMPLE_LINES
    ]


def make_meeting(path: Path) -> None:
    write_meeting(path, meeting_lines(), duration_s=REPEATS * SAMPLE_DURATION_S, slide_starts=(0.0, 40.0))


def one(model: str, path: str, pipeline: str) -> dict:
    """In a child process: one transcription; its wall time, audio length and the text."""
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    from serve_app.config import AsrSettings
    from serve_app.speech import Recognizer, transcribe_file
    from serve_app.speech.model import load_model_files

    settings = AsrSettings(model=model)
    if pipeline == "reelserve":
        recognizer = Recognizer(settings)
        started = time.perf_counter()
        transcript = transcribe_file(recognizer, path, None)
        seconds = time.perf_counter() - started
        text = " ".join(s.text for s in transcript.segments) if transcript else ""
        audio_s = transcript.audio_s if transcript else 0.0
    else:  # faster-whisper's own loader and VAD, same model files and compute settings
        from faster_whisper import WhisperModel

        loaded = load_model_files(model)
        whisper = WhisperModel(
            loaded.source,
            device="cpu",
            compute_type=settings.compute_type,
            cpu_threads=settings.threads,
            files=loaded.files,
            local_files_only=True,
        )
        started = time.perf_counter()
        segments, info = whisper.transcribe(path, vad_filter=True, beam_size=settings.beam_size)
        text = " ".join(s.text.strip() for s in segments)
        seconds = time.perf_counter() - started
        audio_s = info.duration
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "audio_s": audio_s, "peak_rss_mb": peak_mb, "text": text}


def run_child(model: str, path: Path, pipeline: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--one", model, str(path), pipeline], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def end_to_end(path: Path) -> dict[str, float]:
    import httpx

    from serve_app.cli.local_stack import local_stack
    from serve_app.config import ServeConfig

    settings = ServeConfig.load(None).settings({"security": {"auth": "disabled"}})
    walls: dict[str, float] = {}
    with local_stack(settings) as url, httpx.Client(base_url=url, timeout=1800) as http:
        for audio in ("off", "auto", "off", "auto"):  # twice each, interleaved; the best of two counts
            with path.open("rb") as fh:
                started = time.perf_counter()
                response = http.post(
                    "/v1/analyze",
                    data={"mode": "ui", "audio": audio, "aggregate": "false"},
                    files={"file": (path.name, fh, "video/mp4")},
                )
                wall = time.perf_counter() - started
            response.raise_for_status()
            said = response.json()["transcript"]
            assert (said is not None) == (audio == "auto")
            walls[audio] = min(walls.get(audio, float("inf")), wall)
    return walls


def main() -> None:
    print(hardware())
    meeting = cached("meeting-160s.mp4", make_meeting)
    truth = " ".join(line.text for line in meeting_lines())
    inputs = {"meeting 160 s": meeting, "Megamind.avi": SHARED_MEDIA / "Megamind.avi"}
    rtf: dict[str, float] = {}
    print("\n| input | model | pipeline | wall s | real-time factor | peak RSS MB | WER | words |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path in inputs.items():
        for model in MODELS:
            for pipeline in ("reelserve", "faster-whisper's own"):
                r = run_child(model, path, "reelserve" if pipeline == "reelserve" else "peer")
                factor = r["seconds"] / max(r["audio_s"], 1e-9) if r["audio_s"] else float("nan")
                wer = f"{word_error_rate(truth, r['text']):.1%}" if name.startswith("meeting") else "-"
                print(
                    f"| {name} | {model} | {pipeline} | {r['seconds']:.2f} | {factor:.3f} | {r['peak_rss_mb']:.0f} "
                    f"| {wer} | {len(r['text'].split())} |",
                    flush=True,
                )
                if name.startswith("meeting") and pipeline == "reelserve":
                    rtf[model] = factor
    walls = end_to_end(meeting)
    ratio = walls["auto"] / walls["off"]
    print(
        f"\nend to end, {meeting.name} via POST /v1/analyze (mode ui, best of 2): audio off {walls['off']:.1f} s, "
        f"audio auto {walls['auto']:.1f} s (x{ratio:.2f})"
    )
    print(
        f"asr_rtf_base={rtf['base']:.3f} asr_rtf_tiny={rtf['tiny.en']:.3f} e2e_wall_ratio_audio_on_vs_off={ratio:.2f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        main()
