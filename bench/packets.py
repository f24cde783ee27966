"""CPU of packet-guided decoding vs the strongest same-output baselines, adaptive sampling, same frames out.

    flock /tmp/reelserve-heavy.lock .venv/bin/python bench/packets.py     # ~7 min on 2 cores (first run
                                                                          # also generates the 1080p clips)
    .venv/bin/python bench/packets.py --rounds 1 --no-shared              # a quicker look

The work, the same on every side: the adaptive sampler's KEPT frames (same times, same pictures) of every
chunk of the service's plan (20 s chunks, 1 s overlap, candidates at 2 fps), as RGB24 arrays in the
process at the planned frame size (bilinear), padded to an even count as `decode_chunk` pads them.

Sides, each run in a fresh subprocess of its own (`bench/decode.py`'s method, its side functions reused):
- reelserve, guided (the service's default): probe, plan, `decode_chunk(..., packets=packet_params(...))`
  per chunk, one decoder thread: a demux-only pass per chunk, then only what can have changed is decoded
  (`serve_app.video.guided`), the last decoded picture standing for static frames at their own times;
- reelserve, full decoder (`packets=None`): every frame near a candidate decoded, non-reference frames
  away from them skipped; the reference the guided side is checked against;
- ffmpeg CLI (Debian's, and imageio-ffmpeg's static build when installed), `-threads 1` / `-threads 2`,
  with and without `-skip_frame noref`: one pass over the file selecting exactly the plan's candidate
  frames (reelserve's candidate times, handed to it), scaled to the planned size bilinear, rawvideo
  rgb24 to a pipe (`bench/decode.py`'s `ffmpeg_frames`, the windows summed as a balanced tree: FFmpeg
  refuses a chain of more than 100 terms); then, in-process, reelserve's own
  `AdaptiveSampler` per chunk over those arrays (as `_KeepChanges` uses it: thumbnails at
  `thumbnail_size`, grey, AREA, here from the arrays; a frame shared by two chunks is thumbnailed once);
- PyAV one pass (`bench/decode.py`'s `side_pyav`, 1 thread, `skip_frame="NONREF"` or not): the frame
  nearest each candidate time, then the same in-process sampler.
With `noref`/`NONREF` a candidate may not be decoded at all: its nearest decoded neighbour stands in.

CPU-seconds, the primary figure: user+sys of the side and every process it waited for (ffprobe,
ffmpeg), from after its library imports until the kept frames are in its memory; wall secondary. Each
side's figure is its cheapest of `--rounds` (2) alternating rounds; as outputs are deterministic, rounds
after the first re-measure only the guided side and the same-output baselines within `RECHECK` (1.15x)
of the cheapest (the full decoder, a reference, is measured once). The baselines are handed the
candidate times for free.
Same output: per chunk the kept times equal the guided side's, and the pictures too: on the generated
clips every kept frame's code (`read_counter`) is the number of the picture on screen at its time (the
truth `write_idle_screen` returns); everywhere a 64x36 grey thumbnail of each kept frame is within
`SAME_PICTURE` grey levels (mean absolute) of the guided side's. Only same-output sides compete for
"best".

Inputs: generated 1080p30 screen shares with idle stretches and frame codes (`write_idle_screen`, x264
veryfast, keyint 250, scene-cut on as OBS; the same with scene-cut off: fixed GOP; 39 s each: two whole
chunks, no short tail chunk to weigh on the per-hour projection; and 20 s, one chunk, with a live webcam
tile), the GNOME recording and the two camera clips in ../shared/media (no generated camera clip: on
camera footage the pass finds nothing static and the guided side falls back to the full one).
Last line: `screen_cpu_speedup_vs_best=<x> camera_cpu_ratio_vs_best=<x>`: over the screen recordings
(the two idle 1080p clips and the GNOME recording; the webcam clip is printed on its own) the
sum of each clip's best same-output baseline CPU over the guided side's; over the camera clips the guided
side's CPU over the best baselines'. A clip where no baseline gives the guided side's output is left out
of its pool, and says so.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from common import CACHE, SHARED_MEDIA, cached, hardware
from decode import SAME_PICTURE, Spec, _thumb, cli_versions, cpu_now, ffmpeg_frames, side_pyav

from serve_app.config import VideoSettings
from serve_app.devtools.idle_screen import write_idle_screen
from serve_app.devtools.synthetic import CODE_BITS, read_counter
from serve_app.schemas import ChunkingOptions, ChunkPlan, VideoInfo
from serve_app.video import decode as decode_module
from serve_app.video.chunking import plan_chunks
from serve_app.video.decode import decode_chunk
from serve_app.video.guided import guided_frames
from serve_app.video.packets import packet_params
from serve_app.video.probe import BadPackets, open_video, probe, video_stream
from serve_app.video.sampling import AdaptiveParams, AdaptiveSampler, thumbnail_size

SETTINGS = VideoSettings()
PARAMS = packet_params(SETTINGS)
assert PARAMS is not None, "guided decoding is on by default"
X264 = {"preset": "veryfast", "threads": "2"}
SCENECUT, FIXED_GOP, WEBCAM = "1080p30 idle screen, scene-cut", "1080p30 idle screen, fixed GOP", "1080p30 + webcam"
SCREEN = (SCENECUT, FIXED_GOP, "display-dual-monitors.webm")
CAMERA = ("vtest.avi", "Megamind.avi")
GUIDED, FULL = "reelserve, guided", "reelserve, full decoder"
#: Rounds after the first re-measure the baselines with the guided side's output within this of the cheapest.
RECHECK = 1.15


def _plans(info: VideoInfo) -> list[ChunkPlan]:
    """The service's adaptive plan of the video."""
    opts = ChunkingOptions(
        chunk_s=SETTINGS.chunk_s,
        overlap_s=SETTINGS.overlap_s,
        fps=SETTINGS.adaptive_fps,
        token_budget=SETTINGS.token_budget,
        sampling="adaptive",
        floor_s=SETTINGS.floor_s,
        change_threshold=SETTINGS.change_threshold,
        static_chunk_s=0.0,
    )
    return plan_chunks(info, opts, SETTINGS)


@dataclass
class Work:
    """What every side must deliver for one video (computed once by the parent)."""

    video: str
    plans: list[dict[str, Any]]  # the service's plan (ChunkPlan dumps)
    candidates: list[list[float]]  # per chunk, the candidate times reelserve picks (its full decoder's)
    source_size: tuple[int, int]
    fps: float
    ids: list[int] = field(default_factory=list)  # generated clips: picture number of each source frame


# ---------------------------------------------------------------- sides (each runs in its own process)

Chunks = list[tuple[list[np.ndarray], list[float], int]]  # per chunk: kept frames, their times, frames decoded


def side_reelserve(work: Work, guided: bool) -> Chunks:
    info = probe(work.video, SETTINGS)
    out = []
    for plan in _plans(info):
        chunk = decode_chunk(work.video, plan, SETTINGS.decode_threads, packets=PARAMS if guided else None)
        out.append((list(chunk.frames), chunk.frame_times_s, chunk.stats.frames_decoded))
    return out


def side_baseline(work: Work, decoder: Callable[[Spec], tuple[list[np.ndarray], list[float]]]) -> Chunks:
    """Decode the plan's candidate frames with `decoder`, then reelserve's sampler over the arrays per chunk."""
    plans = [ChunkPlan.model_validate(p) for p in work.plans]
    union = sorted({t for times in work.candidates for t in times})
    spec = Spec(work.video, union, plans[0].width, plans[0].height, work.source_size, bool(work.ids), union)
    frames, times = decoder(spec)
    if not times:  # the CLI without skipping: raw video carries no times, it gave exactly the selected frames
        if len(frames) != len(union):
            raise RuntimeError(f"{len(frames)} frames for {len(union)} candidate times")
        times = union
    thumb_w, thumb_h = thumbnail_size(*work.source_size)
    thumbs: dict[int, np.ndarray] = {}

    def thumb(i: int) -> np.ndarray:
        if i not in thumbs:
            rgb = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            thumbs[i] = rgb.reformat(width=thumb_w, height=thumb_h, format="gray", interpolation="AREA").to_ndarray()
        return thumbs[i]

    out = []
    for plan, candidates in zip(plans, work.candidates, strict=True):
        params = AdaptiveParams(floor_s=plan.floor_s, tile_threshold=plan.change_threshold)
        sampler: AdaptiveSampler[np.ndarray] = AdaptiveSampler(params, plan.max_frames, lambda f: f)
        last = -1
        for goal in candidates:
            i = _nearest(times, goal)
            if i != last:  # a skipped candidate's neighbour may stand for two
                sampler.add(frames[i], times[i], thumb(i))
                last = i
        selection = sampler.finish()
        kept, kept_t = selection.frames, selection.times_s
        while len(kept) < 2 or len(kept) % 2:
            kept.append(kept[-1])
            kept_t.append(kept_t[-1])
        out.append((kept, kept_t, 0))
    return out


def _nearest(times: list[float], goal: float) -> int:
    i = bisect_left(times, goal)
    return min((j for j in (i - 1, i) if 0 <= j < len(times)), key=lambda j: (abs(times[j] - goal), times[j]))


def run_side(args: argparse.Namespace) -> int:
    """One measured side: import, snapshot, do the work, snapshot, then read the frames (not measured)."""
    raw = json.loads(Path(args.spec).read_text())
    work = Work(**{**raw, "source_size": tuple(raw["source_size"])})
    kind, _, rest = args.side.partition(":")
    threads, _, flag = rest.partition(":")
    sides: dict[str, Callable[[], Chunks]] = {
        "guided": lambda: side_reelserve(work, guided=True),
        "full": lambda: side_reelserve(work, guided=False),
        "ffmpeg": lambda: side_baseline(work, lambda s: ffmpeg_frames(s, args.binary, int(threads), flag == "noref")),
        "pyav": lambda: side_baseline(work, lambda s: side_pyav(s, int(threads), flag == "noref")),
    }
    import_cpu = cpu_now()
    started = time.perf_counter()
    try:
        chunks = sides[kind]()
    except (RuntimeError, AssertionError) as exc:
        Path(args.out).write_text(json.dumps({"error": str(exc)[-300:]}))
        return 0
    wall, cpu = time.perf_counter() - started, cpu_now() - import_cpu
    width, height = work.source_size
    out = [
        {
            "times": times,
            "decoded": decoded,
            "counters": [read_counter(f, width, height) for f in frames] if work.ids else [],
            "thumbs": [_thumb(f).tolist() for f in frames],
        }
        for frames, times, decoded in chunks
    ]
    result = {"cpu_s": cpu, "wall_s": wall, "import_cpu_s": import_cpu, "chunks": out}
    Path(args.out).write_text(json.dumps(result))
    return 0


# ---------------------------------------------------------------- the parent


@dataclass
class Outcome:
    name: str
    cpu_s: float
    wall_s: float
    spread: str  # CPU-s of every round
    decoded: int  # frames decoded (reelserve's sides; 0: not counted)
    same: bool
    check: str  # how the output compares with the guided side's


def candidate_times(path: Path, plans: list[ChunkPlan]) -> list[list[float]]:
    """Per chunk, the candidate times the adaptive sampler is offered (reelserve's full decoder; not measured)."""
    seen: list[list[float]] = []
    add = decode_module._KeepChanges.add

    def recording(self: Any, frame: av.VideoFrame, time_s: float) -> None:
        seen[-1].append(time_s)
        add(self, frame, time_s)

    decode_module._KeepChanges.add = recording  # type: ignore[method-assign]
    try:
        for plan in plans:
            seen.append([])
            decode_chunk(path, plan, SETTINGS.decode_threads)
    finally:
        decode_module._KeepChanges.add = add  # type: ignore[method-assign]
    return seen


def pass_cpu(path: Path, plans: list[ChunkPlan]) -> float:
    """CPU of the demux-only pass over every chunk (part of what the guided side pays; in-process)."""
    started = time.process_time()
    for plan in plans:
        with open_video(path) as container:
            stream = video_stream(container)
            guided_frames(container, stream, plan.start_s, plan.end_s, lambda _: None, BadPackets(), PARAMS)
    return time.process_time() - started


def measure(side: str, spec: Path, tmp: Path, binary: str | None) -> dict[str, Any]:
    out = tmp / f"{side.replace(':', '_')}-{Path(binary or '').name}.json"
    cmd = [sys.executable, __file__, "--side", side, "--spec", str(spec), "--out", str(out)]
    cmd += ["--binary", binary] if binary else []
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def truth_errors(work: Work, got: dict[str, Any]) -> int:
    """Kept frames whose code is not the picture on screen at their reported time (generated clips)."""
    wrong = 0
    for chunk in got["chunks"]:
        for code, t in zip(chunk["counters"], chunk["times"], strict=True):
            wrong += code != work.ids[min(len(work.ids) - 1, round(t * work.fps))] % 2**CODE_BITS
    return wrong


def compare(work: Work, ref: dict[str, Any], got: dict[str, Any]) -> tuple[bool, str]:
    """Same output as the guided side: kept times per chunk, codes against the truth, thumbnails."""
    if "error" in got:
        return False, f"failed: {got['error']}"
    pairs = list(zip(ref["chunks"], got["chunks"], strict=True))
    n_ref = sum(len(a["times"]) for a, _ in pairs)
    n_got = sum(len(b["times"]) for _, b in pairs)
    off = sum(
        len(a["times"]) != len(b["times"])
        or any(abs(x - y) > 1e-6 for x, y in zip(a["times"], b["times"], strict=True))
        for a, b in pairs
    )
    if off:
        return False, f"kept {n_got} frames vs {n_ref}: other kept times in {off} of {len(pairs)} chunks"
    diff = max(
        float(np.abs(np.array(x) - np.array(y)).mean())
        for a, b in pairs
        for x, y in zip(a["thumbs"], b["thumbs"], strict=True)
    )
    wrong = truth_errors(work, got) if work.ids else 0
    same = diff <= SAME_PICTURE and not wrong
    codes = f", {wrong} codes wrong" if wrong else (", codes all right" if work.ids else "")
    return same, f"kept {n_got} frames, same times, thumbnails within {diff:.2f}{codes}"


def sides_for(clis: list[tuple[str, str]]) -> list[tuple[str, str, str | None]]:
    """(label, side argument, CLI binary) of every measured side; the guided side first."""
    sides: list[tuple[str, str, str | None]] = [(GUIDED, "guided", None), (FULL, "full", None)]
    for label, binary in clis:
        for threads in (1, 2):
            for noref in (False, True):
                flags = f"-threads {threads}" + (" -skip_frame noref" if noref else "")
                sides.append((f"{label} {flags}", f"ffmpeg:{threads}:{'noref' if noref else ''}", binary))
    for noref in (False, True):
        sides.append(
            (f"PyAV one pass, 1 thread{', NONREF' if noref else ''}", f"pyav:1:{'noref' if noref else ''}", None)
        )
    return sides


def bench_video(
    name: str, path: Path, ids: list[int], sides: list[tuple[str, str, str | None]], tmp: Path, rounds: int
) -> tuple[list[Outcome], float]:
    info = probe(path, SETTINGS)
    plans = _plans(info)
    candidates = candidate_times(path, plans)
    work = Work(str(path), [p.model_dump() for p in plans], candidates, (info.width, info.height), info.fps, ids)
    spec = tmp / f"{path.stem}.work.json"
    spec.write_text(json.dumps(work.__dict__))
    minutes = info.duration_s / 60
    print(
        f"\n== {name} ({path.name}): {info.codec} {info.width}x{info.height} {info.fps:.2f} fps "
        f"{info.duration_s:.1f} s; {len(plans)} chunks, {sum(map(len, candidates))} candidates, "
        f"out {plans[0].width}x{plans[0].height}",
        flush=True,
    )
    runs = {label: [measure(side, spec, tmp, binary)] for label, side, binary in sides}
    # Outputs are deterministic: later rounds re-measure only the guided side and the baselines that can
    # still come out best (the full decoder, a reference, is measured once).
    first = runs[GUIDED][0]
    contenders = {
        label: got[0]["cpu_s"]
        for label, got in runs.items()
        if label not in (GUIDED, FULL) and compare(work, first, got[0])[0]
    }
    cutoff = RECHECK * min(contenders.values(), default=math.inf)
    again = [s for s in sides if s[0] == GUIDED or (s[0] in contenders and contenders[s[0]] <= cutoff)]
    for round_ in range(1, rounds):
        for label, side, binary in again[::-1] if round_ % 2 else again:
            runs[label].append(measure(side, spec, tmp, binary))
    ref = min(runs[GUIDED], key=lambda r: r["cpu_s"])
    if ids:
        print(f"   guided side's kept frames vs the truth (frame codes): {truth_errors(work, ref)} wrong")
    outcomes = []
    for label, _, _ in sides:
        ok = [r for r in runs[label] if "error" not in r]
        got = min(ok, key=lambda r: r["cpu_s"]) if ok else runs[label][0]
        same, check = (True, "the reference") if label == GUIDED else compare(work, ref, got)
        if label == GUIDED and ids and truth_errors(work, ref):
            same, check = False, "codes wrong"
        cpu, wall = got.get("cpu_s", float("nan")), got.get("wall_s", float("nan"))
        spread = "/".join(f"{r['cpu_s']:.2f}" for r in ok)
        decoded = sum(c["decoded"] for c in got.get("chunks", []))
        o = Outcome(label, cpu, wall, spread, decoded, same, check)
        outcomes.append(o)
        per_min = f"{decoded / minutes:6.0f}" if decoded else "     -"
        print(
            f"   {label:<44s} cpu {cpu:6.2f} s ({spread:<11s}) wall {wall:6.2f} s  decoded/min {per_min}  "
            f"{'SAME' if same else 'DIFF'}: {check}",
            flush=True,
        )
    passed = pass_cpu(path, plans)
    print(f"   demux-only pass alone: {passed:.3f} CPU-s; every frame: {info.fps * 60:.0f}/min")
    return outcomes, minutes


def _idle(name: str, *, scenecut: bool, webcam: bool, seconds: float) -> tuple[Path, list[int]]:
    """A generated 1080p30 idle screen with frame codes, cached with its picture numbers."""
    truth = CACHE / f"{name}.ids.json"

    def make(path: Path) -> None:
        params = "keyint=250:min-keyint=25" + ("" if scenecut else ":scenecut=0")
        options = {**X264, "x264-params": params}
        ids = write_idle_screen(path, duration_s=seconds, seed=5, webcam=webcam, code=True, options=options)
        truth.write_text(json.dumps(ids))

    path = cached(name, make)
    return path, json.loads(truth.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds (see the docstring)")
    parser.add_argument("--no-shared", action="store_true", help="skip ../shared/media")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--binary", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return run_side(args)

    started = time.perf_counter()
    print(f"hardware: {hardware()}")
    clis = cli_versions()
    if not clis or not shutil.which("ffprobe"):
        print(
            "ffmpeg / ffprobe CLI NOT FOUND: install Debian's ffmpeg (`apt-get install -y ffmpeg`); nothing measured."
        )
        return 2
    clips: dict[str, tuple[Path, list[int]]] = {
        SCENECUT: _idle("idle-1080p-x264-coded-39s.mp4", scenecut=True, webcam=False, seconds=39.0),
        FIXED_GOP: _idle("idle-1080p-x264-gop-coded-39s.mp4", scenecut=False, webcam=False, seconds=39.0),
        WEBCAM: _idle("idle-1080p-x264-webcam-coded-20s.mp4", scenecut=True, webcam=True, seconds=20.0),
    }
    for real in () if args.no_shared else (*SCREEN[2:], *CAMERA):
        if (SHARED_MEDIA / real).exists():
            clips[real] = (SHARED_MEDIA / real, [])
        else:
            print(f"MISSING {SHARED_MEDIA / real}: not measured")
    sides = sides_for(clis)
    results: dict[str, tuple[list[Outcome], float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-packets-") as tmp:
        for name, (path, ids) in clips.items():
            results[name] = bench_video(name, path, ids, sides, Path(tmp), args.rounds)

    print("\nCPU-seconds per clip: guided vs reelserve's full decoder vs the best same-output baseline")
    best: dict[str, Outcome | None] = {}
    ok = True
    for name, (outs, minutes) in results.items():
        guided, full = outs[0], outs[1]
        ok &= guided.same and full.same
        same = [o for o in outs[2:] if o.same]
        best[name] = min(same, key=lambda o: o.cpu_s) if same else None
        fastest = min(outs[2:], key=lambda o: o.cpu_s)
        b = best[name]
        vs = (
            f"best same-output {b.name} {b.cpu_s:.2f} -> x{b.cpu_s / guided.cpu_s:.2f}"
            if b
            else "NO same-output baseline"
        )
        other = "" if fastest.same else f"; fastest overall {fastest.name} {fastest.cpu_s:.2f} with other output"
        print(
            f"  {name:<32s} guided {guided.cpu_s:6.2f} (decoded {guided.decoded / minutes:4.0f}/min)  "
            f"full {full.cpu_s:6.2f} (x{full.cpu_s / guided.cpu_s:.2f}, {full.decoded / minutes:4.0f}/min)  {vs}{other}"
        )
    for name in (SCENECUT, FIXED_GOP):
        outs, minutes = results[name]
        b = best[name]
        base = f" best baseline={b.cpu_s / minutes * 60:.0f}" if b else ""
        print(
            f"projected CPU-s per hour of 1080p30 screen recording ({name}): guided={outs[0].cpu_s / minutes * 60:.0f}"
            f" full={outs[1].cpu_s / minutes * 60:.0f}{base}"
        )

    def pooled(names: tuple[str, ...]) -> tuple[float, float] | None:
        """(guided, best baseline) CPU-s summed over the clips that have a same-output baseline."""
        rows = [(results[n][0][0].cpu_s, b.cpu_s) for n in names if n in results and (b := best[n]) is not None]
        left_out = [n for n in names if n in results and best[n] is None]
        if left_out:
            print(f"left out of the pooled figure (no same-output baseline): {', '.join(left_out)}")
        return (sum(g for g, _ in rows), sum(b for _, b in rows)) if rows else None

    screen, camera = pooled(SCREEN), pooled(CAMERA)
    speedup = screen[1] / screen[0] if screen else float("nan")
    ratio = camera[0] / camera[1] if camera else float("nan")
    print(f"run took {(time.perf_counter() - started) / 60:.1f} min")
    print(f"screen_cpu_speedup_vs_best={speedup:.2f} camera_cpu_ratio_vs_best={ratio:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
