"""CPU of decoding guided by the compressed-domain pass vs today's decoder, on the same chunks.

    flock /tmp/reelserve-heavy.lock .venv/bin/python bench/packets.py     # ~4 min on 2 cores (first run
                                                                          # also generates the 1080p clips)

Baseline: `decode_chunk` as the service runs it (adaptive sampling at the default candidate rate,
non-reference frames skipped away from the candidates: ffmpeg's `-skip_frame noref` work, one decoder
thread). Guided: the same call with the service's thresholds (`packet_params`), which reads each chunk's packets first
(demux only) and decodes only what can have changed (`serve_app.video.guided`). Both decode every
chunk of the service's plan (20 s, 1 s overlap) once, alternating chunk by chunk; CPU is process time.
Costs on the guided side include its demux pass (also timed alone: `pass`), and the fallback to the
full decoder where the pass finds nothing to save (camera footage, a live webcam tile).

Inputs: generated 1080p30 screen shares with idle stretches (`serve_app.devtools.idle_screen`, x264
veryfast with scene-cut on, keyint 250 as OBS; the same with scene-cut off; the same with a live
webcam tile), the GNOME recording and the two camera clips in ../shared/media.
Checked per chunk: the guided decoder keeps the same frames at the same times (`same_kept`).
Last line: `screen_cpu_speedup=<x> camera_cpu_ratio=<x>` (the 1080p scene-cut clip and the GNOME
recording pooled; the camera clips pooled).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import SHARED_MEDIA, cached, hardware

from serve_app.config import VideoSettings
from serve_app.devtools.idle_screen import write_idle_screen
from serve_app.schemas import ChunkingOptions, ChunkPlan
from serve_app.video.chunking import plan_chunks
from serve_app.video.decode import decode_chunk
from serve_app.video.guided import guided_frames
from serve_app.video.packets import packet_params
from serve_app.video.probe import BadPackets, open_video, probe, video_stream

SETTINGS = VideoSettings()
PARAMS = packet_params(VideoSettings())
assert PARAMS is not None, "guided decoding is on by default"
X264 = {"preset": "veryfast", "threads": "2"}


def _screen(path: Path, *, scenecut: bool, webcam: bool = False, seconds: float = 60.0) -> None:
    params = "keyint=250:min-keyint=25" + ("" if scenecut else ":scenecut=0")
    write_idle_screen(path, duration_s=seconds, seed=5, webcam=webcam, options={**X264, "x264-params": params})


def _plans(path: Path) -> list[ChunkPlan]:
    opts = ChunkingOptions(
        chunk_s=SETTINGS.chunk_s,
        overlap_s=SETTINGS.overlap_s,
        fps=SETTINGS.adaptive_fps,
        token_budget=SETTINGS.token_budget,
        sampling="adaptive",
        floor_s=SETTINGS.floor_s,
        change_threshold=SETTINGS.change_threshold,
    )
    return plan_chunks(probe(path, SETTINGS), opts, SETTINGS)


def _pass_s(path: Path, plan: ChunkPlan) -> float:
    """CPU of the demux-only pass of one chunk (what the guided decoder pays before decoding)."""
    started = time.process_time()
    with open_video(path) as container:
        stream = video_stream(container)
        guided_frames(container, stream, plan.start_s, plan.end_s, lambda _: None, BadPackets(), PARAMS)
    return time.process_time() - started


def measure(name: str, path: Path) -> dict[str, float]:
    full_s = guided_s = pass_s = 0.0
    full_n = guided_n = 0
    same = True
    plans = _plans(path)
    for plan in plans:
        started = time.process_time()
        full = decode_chunk(path, plan, threads=SETTINGS.decode_threads)
        full_s += time.process_time() - started
        started = time.process_time()
        guided = decode_chunk(path, plan, threads=SETTINGS.decode_threads, packets=PARAMS)
        guided_s += time.process_time() - started
        pass_s += _pass_s(path, plan)
        full_n += full.stats.frames_decoded
        guided_n += guided.stats.frames_decoded
        same &= guided.frame_times_s == full.frame_times_s
    minutes = probe(path, SETTINGS).duration_s / 60
    print(
        f"{name:<34} chunks={len(plans):>2} full_cpu_s={full_s:6.2f} guided_cpu_s={guided_s:6.2f} "
        f"speedup={full_s / guided_s:5.2f}x pass_cpu_s={pass_s:5.3f} ({pass_s / full_s:6.2%} of full) "
        f"frames_decoded/min full={full_n / minutes:6.0f} guided={guided_n / minutes:6.0f} same_kept={same}",
        flush=True,
    )
    return {"full": full_s, "guided": guided_s, "minutes": minutes, "same": float(same)}


def main() -> int:
    print(hardware())
    clips = {
        "1080p30 idle screen, x264 scene-cut": cached("idle-1080p-x264.mp4", lambda p: _screen(p, scenecut=True)),
        "1080p30 idle screen, x264 fixed GOP": cached("idle-1080p-x264-gop.mp4", lambda p: _screen(p, scenecut=False)),
        "1080p30 screen + live webcam": cached(
            "idle-1080p-x264-webcam.mp4", lambda p: _screen(p, scenecut=True, webcam=True, seconds=30.0)
        ),
    }
    for real in ("display-dual-monitors.webm", "vtest.avi", "Megamind.avi"):
        if (SHARED_MEDIA / real).exists():
            clips[real] = SHARED_MEDIA / real
        else:
            print(f"MISSING {SHARED_MEDIA / real}: not measured")
    results = {name: measure(name, path) for name, path in clips.items()}
    screen = [results[n] for n in ("1080p30 idle screen, x264 scene-cut", "display-dual-monitors.webm") if n in results]
    camera = [results[n] for n in ("vtest.avi", "Megamind.avi") if n in results]
    speedup = sum(r["full"] for r in screen) / sum(r["guided"] for r in screen)
    ratio = sum(r["guided"] for r in camera) / sum(r["full"] for r in camera) if camera else float("nan")
    first = results["1080p30 idle screen, x264 scene-cut"]
    per_hour = first["guided"] / first["minutes"] * 60
    print(
        f"projected CPU-s per hour of 1080p30 idle screen (scene-cut): full={first['full'] / first['minutes'] * 60:.0f}"
        f" guided={per_hour:.0f}"
    )
    print(f"screen_cpu_speedup={speedup:.2f} camera_cpu_ratio={ratio:.3f}")
    return 0 if all(r["same"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
