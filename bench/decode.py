"""Decode + sample at 1 fps: reelserve's chunked decoder vs the strongest decoders at hand, same frames out.

    flock /tmp/reelserve-heavy.lock .venv/bin/python bench/decode.py   # ~6 min on 2 cores (+ generating once)
    .venv/bin/python bench/decode.py --duration 30 --no-shared         # a quicker look

The work, the same on every side: the frames reelserve's uniform 1 fps plan
picks (20 s chunks with 1 s overlap; in each chunk the frame nearest each
target time), each frame once, as RGB24 arrays in the process at the planned
frame size (bilinear). Inputs: a generated 1080p30 H.264 screen recording
(x264 defaults: B-frames, GOP 250; a frame counter in the corner) and the
videos in ../shared/media.

Sides, each run in a fresh subprocess of its own:
- reelserve, 1 process:  probe, plan, `decode_chunk` per chunk one after the other (`decode_threads`:
                          1 decoder thread; also with FFmpeg's own thread count);
- reelserve, N processes: the same chunks on a process pool started inside the side (what Chunker
                          replicas / Ray tasks do; pool start counted);
- ffmpeg CLI (Debian's, and imageio-ffmpeg's static build when installed): ffprobe for the stream's
  start and rate, then `ffmpeg -threads T -copyts -i IN -vf select=<+-1 ms around each of reelserve's
  frame times>,scale=W:H:flags=bilinear -fps_mode passthrough -f rawvideo -pix_fmt rgb24 -`, read
  into arrays; with `-skip_frame noref` the windows widen to +-1 source frame (a picked frame may
  be skipped) and showinfo's times pick the nearest decoded frame;
- PyAV, one pass over the stream (no seeking, no chunks), `codec_context.skip_frame = "NONREF"` or not,
  thread_count T, the nearest frame to each target converted as reelserve converts;
- vLLM's own video loaders (`VIDEO_LOADER_REGISTRY`; here OpenCV-based: `opencv`, `qwen3_vl`) called as
  vLLM's VideoMediaIO calls them (`load_bytes(data, num_frames=N)`; `qwen3_vl` samples by `fps`), then
  vLLM's `resize_video`; they pick their own frames, so they also run as a registered subclass
  whose `compute_frames_index_to_sample` returns reelserve's picks (vLLM's plug-in point).

CPU-seconds, the primary figure: user+sys of the side process and of every process it started and
waited for (ffmpeg, ffprobe, pool workers), from the moment its libraries are imported (a server
imports them once; the import cost is printed apart) until the frames are in its memory: probes,
process and pool starts, file reads count. Wall seconds over the same span are secondary.
Same frames: on the generated video every frame's counter is read back and compared with the
frames reelserve picked; on the shared clips (no counter) a 64x36 grey thumbnail of each frame is
compared with reelserve's (max mean absolute difference, grey levels). Only sides with the same
frames compete for "best". Last line: `decode_cpu_speedup_vs_best=<x> best=<name>` on the generated
video (the best same-frame baseline's CPU-seconds over reelserve's best configuration's).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from common import SHARED_MEDIA, cached, hardware

from serve_app.config import VideoSettings
from serve_app.devtools.synthetic import read_counter, write_screen_share
from serve_app.schemas import ChunkingOptions, ChunkPlan, VideoInfo
from serve_app.video import decode_chunk, plan_chunks, probe

SAMPLE_FPS = 1.0
SHARED = ("display-dual-monitors.webm", "vtest.avi", "Megamind.avi")
THUMB = (64, 36)
#: Thumbnail difference (grey levels, mean absolute) up to which a shared-clip frame counts as the same picture.
SAME_PICTURE = 1.0


def plans_for(info: VideoInfo, settings: VideoSettings) -> list[ChunkPlan]:
    options = ChunkingOptions(
        chunk_s=settings.chunk_s,
        overlap_s=settings.overlap_s,
        fps=SAMPLE_FPS,
        token_budget=settings.token_budget,
        sampling="uniform",
        floor_s=settings.floor_s,
        change_threshold=settings.change_threshold,
        static_chunk_s=0.0,
    )
    return plan_chunks(info, options, settings)


@dataclass
class Spec:
    """What every side must deliver for one video (computed once by the parent from reelserve's plan)."""

    video: str
    targets: list[float]  # unique target times of all chunks, sorted (source seconds from stream start)
    width: int  # planned frame size
    height: int
    source_size: tuple[int, int]
    counter: bool
    #: Times of the frames reelserve picked (filled in after its side ran): the CLI selects exactly these.
    picked: list[float] = field(default_factory=list)


def cpu_now() -> float:
    """User+sys seconds of this process and of the children it has waited for."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# ---------------------------------------------------------------- sides (each runs in its own process)


def _chunk_frames(path: str, plan: ChunkPlan, threads: int) -> tuple[np.ndarray, list[float]]:
    chunk = decode_chunk(path, plan, threads)
    return chunk.frames, chunk.frame_times_s


def side_reelserve(spec: Spec, workers: int, threads: int) -> tuple[list[np.ndarray], list[float]]:
    settings = VideoSettings()
    info = probe(spec.video, settings)
    plans = plans_for(info, settings)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunks = list(pool.map(_chunk_frames, [spec.video] * len(plans), plans, [threads] * len(plans)))
    else:
        chunks = [_chunk_frames(spec.video, plan, threads) for plan in plans]
    by_time: dict[float, np.ndarray] = {}
    for frames, times in chunks:
        for frame, t in zip(frames, times, strict=True):
            by_time.setdefault(round(t, 6), frame)  # overlaps and the even-count padding repeat frames
    times = sorted(by_time)
    return [by_time[t] for t in times], times


def _probe_cli(ffprobe: str, video: str) -> tuple[float, float]:
    """(start time, frame rate) of the video stream, as a user of the CLI gets them (ffprobe)."""
    cmd = [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=start_time,r_frame_rate"]
    out = subprocess.run([*cmd, "-of", "json", video], capture_output=True, text=True, check=True).stdout
    stream = json.loads(out)["streams"][0]
    num, _, den = stream["r_frame_rate"].partition("/")
    return float(stream.get("start_time", 0.0)), float(num) / float(den or 1)


_SHOWINFO_TIME = re.compile(r"\bn:\s*\d+\s+pts:\s*-?\d+\s+pts_time:(-?[\d.]+)")


def side_ffmpeg(spec: Spec, binary: str, threads: int, noref: bool) -> tuple[list[np.ndarray], list[float]]:
    """The CLI is handed the answer, the times of reelserve's frames, on the stream's own clock (-copyts).
    Without skipping it selects exactly those frames (+-1 ms). With `-skip_frame noref` a picked frame may
    not be decoded at all, so it selects the decoded frames within one source frame of a picked time
    (x264's non-reference frames stand alone, so a neighbour is decoded), logs their times (showinfo)
    and keeps the nearest: the frames `-skip_frame noref` can give, at the price of converting both
    neighbours of a skipped frame."""
    frames, times = ffmpeg_frames(spec, binary, threads, noref)
    if not noref:
        return frames, []  # raw video carries no times; the frames are checked by their pictures
    reach = 1 / _probe_cli(shutil.which("ffprobe") or "ffprobe", spec.video)[1] + 1e-3
    chosen: dict[int, None] = {}
    for goal in spec.picked:
        near = [i for i, t in enumerate(times) if abs(t - goal) <= reach]
        if near:
            chosen.setdefault(min(near, key=lambda i: (abs(times[i] - goal), times[i])))
    return [frames[i] for i in chosen], [times[i] for i in chosen]


def ffmpeg_frames(spec: Spec, binary: str, threads: int, noref: bool) -> tuple[list[np.ndarray], list[float]]:
    """The ffmpeg CLI's RGB frames selected around `spec.picked` (see `side_ffmpeg`), and with `noref` their
    stream times (showinfo; without it none: exactly the selected frames, in order). The select windows are
    summed as a balanced tree: FFmpeg's expression parser refuses a chain of more than 100 terms."""
    origin, rate = _probe_cli(shutil.which("ffprobe") or "ffprobe", spec.video)
    reach = 1 / rate + 1e-3 if noref else 1e-3
    windows = _balanced([f"between(t,{t + origin - reach:.6f},{t + origin + reach:.6f})" for t in spec.picked])
    cmd = [binary, "-nostdin", "-v", "info" if noref else "error"]
    cmd += ["-skip_frame", "noref"] if noref else []
    cmd += ["-threads", str(threads), "-copyts", "-i", spec.video, "-threads", str(threads)]
    chain = f"select='{windows}'" + (",showinfo" if noref else "") + f",scale={spec.width}:{spec.height}:flags=bilinear"
    cmd += ["-vf", chain, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    size = spec.width * spec.height * 3
    frames = []
    with tempfile.TemporaryFile("w+") as log:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log) as proc:
            assert proc.stdout is not None
            while len(block := proc.stdout.read(size)) == size:
                frames.append(np.frombuffer(block, np.uint8).reshape(spec.height, spec.width, 3))
        log.seek(0)
        text = log.read()
    if proc.returncode:
        raise RuntimeError(f"{binary} failed on {spec.video} (exit {proc.returncode}): {text[-500:]}")
    if not noref:
        return frames, []
    times = [float(m) - origin for m in _SHOWINFO_TIME.findall(text)]
    assert len(times) == len(frames), (len(times), len(frames))
    return frames, times


def _balanced(terms: list[str]) -> str:
    if len(terms) == 1:
        return terms[0]
    half = len(terms) // 2
    return f"({_balanced(terms[:half])}+{_balanced(terms[half:])})"


def side_pyav(spec: Spec, threads: int, noref: bool) -> tuple[list[np.ndarray], list[float]]:
    frames: list[np.ndarray] = []
    times: list[float] = []
    with av.open(spec.video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        if noref:
            stream.codec_context.skip_frame = "NONREF"
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        targets, i = spec.targets, 0
        prev: tuple[av.VideoFrame, float] | None = None
        last: av.VideoFrame | None = None

        def keep(frame: av.VideoFrame, t: float) -> None:
            rgb = frame.reformat(width=spec.width, height=spec.height, format="rgb24", interpolation="BILINEAR")
            frames.append(rgb.to_ndarray())
            times.append(t)

        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.InvalidDataError:  # a corrupt packet: go on, as reelserve does
                continue
            for frame in decoded:
                t = float(frame.time) - origin
                while i < len(targets) and t >= targets[i]:
                    goal = targets[i]
                    best, best_t = (frame, t) if prev is None or t - goal < goal - prev[1] else prev
                    if best is not last:
                        keep(best, best_t)
                        last = best
                    i += 1
                prev = (frame, t)
            if i == len(targets):
                break
        if i < len(targets) and prev is not None and prev[0] is not last:
            keep(*prev)
    return frames, times


def side_vllm(spec: Spec, loader: str) -> tuple[list[np.ndarray], list[float]]:
    from vllm.multimodal.video import VIDEO_LOADER_REGISTRY, VideoBackend, resize_video

    data = Path(spec.video).read_bytes()
    if loader == "picks":

        class ReelservePicks(VideoBackend):
            """vLLM's OpenCV loader, sampling the frames reelserve picks (nearest frame per target)."""

            @classmethod
            def compute_frames_index_to_sample(cls, source: Any, target: Any, **kwargs: Any) -> list[int]:
                last = source.total_frames_num - 1
                fps = source.original_fps
                # OpenCV counts frames; vLLM takes frame k to be at k / fps (so does this subclass).
                return sorted({min(last, max(0, round(t * fps))) for t in spec.picked})

        frames, meta = ReelservePicks.load_bytes(data, num_frames=len(spec.picked))
    elif loader == "qwen3_vl":
        frames, meta = VIDEO_LOADER_REGISTRY.load(loader).load_bytes(data, fps=SAMPLE_FPS)
    else:
        frames, meta = VIDEO_LOADER_REGISTRY.load(loader).load_bytes(data, num_frames=len(spec.picked))
    if frames.shape[1:3] != (spec.height, spec.width):
        frames = resize_video(frames, (spec.height, spec.width))
    return list(frames), [i / meta["fps"] for i in meta["frames_indices"]]


def run_side(args: argparse.Namespace) -> int:
    """One measured side: import, snapshot, do the work, snapshot, then check the frames (not measured)."""
    spec = Spec(**json.loads(Path(args.spec).read_text()))
    kind, _, rest = args.side.partition(":")
    sides: dict[str, Callable[[], tuple[list[np.ndarray], list[float]]]] = {
        "reelserve": lambda: side_reelserve(spec, *(int(n) for n in rest.split(":"))),
        "ffmpeg": lambda: side_ffmpeg(spec, args.binary, *_threads_noref(rest)),
        "pyav": lambda: side_pyav(spec, *_threads_noref(rest)),
        "vllm": lambda: side_vllm(spec, rest),
    }
    if kind == "vllm":
        import vllm.multimodal.video  # noqa: F401  (torch, cv2: a vLLM server has them loaded)
    import_cpu = cpu_now()
    started = time.perf_counter()
    frames, times = sides[kind]()
    wall, cpu = time.perf_counter() - started, cpu_now() - import_cpu
    counters = [read_counter(f, *spec.source_size) for f in frames] if spec.counter else []
    thumbs = [_thumb(f).tolist() for f in frames]
    result = {"cpu_s": cpu, "wall_s": wall, "import_cpu_s": import_cpu, "times": times, "counters": counters}
    Path(args.out).write_text(json.dumps({**result, "thumbs": thumbs}))
    return 0


def _threads_noref(rest: str) -> tuple[int, bool]:
    threads, _, flag = rest.partition(":")
    return int(threads), flag == "noref"


def _thumb(frame: np.ndarray) -> np.ndarray:
    """A grey THUMB-sized picture of `frame` (block means), to compare frames without their exact pixels."""
    w, h = THUMB
    grey = frame.astype(np.float32).mean(axis=2)
    bh, bw = grey.shape[0] // h, grey.shape[1] // w
    return grey[: bh * h, : bw * w].reshape(h, bh, w, bw).mean(axis=(1, 3)).round(2)


# ---------------------------------------------------------------- the parent


@dataclass
class Outcome:
    name: str
    cpu_s: float
    wall_s: float
    import_cpu_s: float
    frames: int
    same: bool
    check: str  # how the frames compare with reelserve's
    extra: dict[str, Any] = field(default_factory=dict)


def measure(side: str, spec_path: Path, out_dir: Path, binary: str | None = None) -> dict[str, Any]:
    out = out_dir / f"{side.replace(':', '_')}.json"
    cmd = [sys.executable, __file__, "--side", side, "--spec", str(spec_path), "--out", str(out)]
    cmd += ["--binary", binary] if binary else []
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def compare(ref: dict[str, Any], got: dict[str, Any], counter: bool) -> tuple[bool, str]:
    n_ref, n_got = len(ref["thumbs"]), len(got["thumbs"])
    if counter:
        if n_ref != n_got:
            missing = len(set(ref["counters"]) - set(got["counters"]))
            return False, f"{n_got} frames vs reelserve's {n_ref}, {missing} of reelserve's missing"
        offs = [abs(a - b) for a, b in zip(ref["counters"], got["counters"], strict=True)]
        if not any(offs):
            return True, f"{n_got} frames, all counters as reelserve's"
        return False, f"{n_got} frames, {sum(o > 0 for o in offs)} others (up to {max(offs)} source frames away)"
    if n_ref != n_got:
        return False, f"{n_got} frames vs reelserve's {n_ref}: other frames"
    diff = max(
        float(np.abs(np.array(a) - np.array(b)).mean()) for a, b in zip(ref["thumbs"], got["thumbs"], strict=True)
    )
    same = diff <= SAME_PICTURE
    return same, f"{n_got} frames, thumbnails within {diff:.2f} grey levels" + ("" if same else " (other frames)")


def sides_for(clis: list[tuple[str, str]], workers: int) -> list[tuple[str, str, str | None]]:
    """(label, side argument, CLI binary) of every measured side."""
    threads = VideoSettings().decode_threads
    sides: list[tuple[str, str, str | None]] = [("reelserve, 1 process", f"reelserve:1:{threads}", None)]
    sides.append((f"reelserve, {workers} processes", f"reelserve:{workers}:{threads}", None))
    sides.append(("reelserve, 1 process, FFmpeg's threads", "reelserve:1:0", None))
    for label, binary in clis:
        for threads in (1, workers):
            for noref in (False, True):
                flags = f"-threads {threads}" + (" -skip_frame noref" if noref else "")
                sides.append((f"{label} {flags}", f"ffmpeg:{threads}:{'noref' if noref else ''}", binary))
    for threads in (1, workers):
        for noref in (False, True):
            flags = f"{threads} thread{'s' if threads > 1 else ''}" + (", NONREF" if noref else "")
            sides.append((f"PyAV one pass, {flags}", f"pyav:{threads}:{'noref' if noref else ''}", None))
    sides.append(("vLLM opencv loader, reelserve's picks", "vllm:picks", None))
    sides.append(("vLLM opencv loader (own sampling)", "vllm:opencv", None))
    sides.append(("vLLM qwen3_vl loader (own sampling)", "vllm:qwen3_vl", None))
    return sides


def bench_video(
    path: Path, counter: bool, sides: list[tuple[str, str, str | None]], tmp: Path, rounds: int
) -> list[Outcome]:
    """Every side `rounds` times, in alternating order (noise from other work hits all sides alike);
    each side's figures are its cheapest round."""
    settings = VideoSettings()
    info = probe(path, settings)
    plans = plans_for(info, settings)
    targets = sorted({round(t, 6) for plan in plans for t in plan.target_times()})
    spec = Spec(str(path), targets, plans[0].width, plans[0].height, (info.width, info.height), counter)
    spec_path = tmp / f"{path.stem}.spec.json"
    spec_path.write_text(json.dumps(spec.__dict__))
    print(
        f"\n== {path.name}: {info.codec} {info.width}x{info.height} {info.fps:.2f} fps {info.duration_s:.1f} s; "
        f"{len(plans)} chunks, {len(targets)} target times, out {spec.width}x{spec.height}",
        flush=True,
    )
    # reelserve first: its frames are the ones every other side must deliver.
    ref = measure(sides[0][1], spec_path, tmp, sides[0][2])
    spec.picked = ref["times"]
    spec_path.write_text(json.dumps(spec.__dict__))
    if counter:  # reelserve's own check: the counter shows the frame its reported time names
        error = max(abs(c - round(t * info.fps)) for c, t in zip(ref["counters"], ref["times"], strict=True))
        print(f"   reelserve's frames vs their reported times (counter): max error {error} source frames")
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in sides}
    for round_ in range(rounds):
        for label, side, binary in sides if round_ % 2 == 0 else sides[::-1]:
            runs[label].append(measure(side, spec_path, tmp, binary))
    outcomes = []
    for label, _, _ in sides:
        got = min(runs[label], key=lambda r: r["cpu_s"])
        same, check = compare(ref, got, counter)
        spread = "/".join(f"{r['cpu_s']:.2f}" for r in runs[label])
        o = Outcome(label, got["cpu_s"], got["wall_s"], got["import_cpu_s"], len(got["thumbs"]), same, check)
        outcomes.append(o)
        print(
            f"   {label:<48s} cpu {o.cpu_s:6.2f} s ({spread})  wall {o.wall_s:6.2f} s  "
            f"(imports {o.import_cpu_s:4.1f} s)  {'SAME' if same else 'DIFF'}: {check}",
            flush=True,
        )
    return outcomes


def make_screen_recording(path: Path, duration_s: float) -> None:
    write_screen_share(
        path,
        duration_s=duration_s,
        fps=30,
        width=1920,
        height=1080,
        seed=0,
        counter=True,
        gop=250,
        encoder_options={"threads": "2"},
    )


def cli_versions() -> list[tuple[str, str]]:
    """(label, binary) of the ffmpeg CLIs at hand, printing each one's version."""
    binaries = [b for b in (shutil.which("ffmpeg"),) if b]
    try:
        import imageio_ffmpeg

        binaries.append(imageio_ffmpeg.get_ffmpeg_exe())
    except ImportError:
        print("imageio-ffmpeg is not installed: its static ffmpeg build is not measured")
    clis = []
    for binary in binaries:
        line = subprocess.run([binary, "-version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        print(f"baseline CLI {binary}: {line}")
        clis.append(("ffmpeg " + line.split()[2].lstrip("n").split("-")[0], binary))
    return clis


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=90.0, help="length of the generated video (s)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes / threads of the parallel sides"
    )
    parser.add_argument("--no-shared", action="store_true", help="skip ../shared/media")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per side (the cheapest is kept)")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--binary", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return run_side(args)

    print(f"hardware: {hardware()}")
    print(f"PyAV's FFmpeg libraries: {av.library_versions}")
    clis = cli_versions()
    if not clis or not shutil.which("ffprobe"):
        print(
            "ffmpeg / ffprobe CLI NOT FOUND: install Debian's ffmpeg (`apt-get install -y ffmpeg`); nothing measured."
        )
        return 2
    try:
        import cv2

        ffmpeg_lines = [line.strip() for line in cv2.getBuildInformation().splitlines() if "avcodec" in line]
        print(f"OpenCV {cv2.__version__} (vLLM's loaders): {'; '.join(ffmpeg_lines)}")
    except ImportError:
        print("OpenCV NOT INSTALLED: vLLM's OpenCV loaders are not measured")
    sides = sides_for(clis, args.workers)

    generated = cached(f"screen-1080p30-{args.duration:g}s.mp4", lambda p: make_screen_recording(p, args.duration))
    videos = [(generated, True)]
    if not args.no_shared:
        for name in SHARED:
            if (SHARED_MEDIA / name).exists():
                videos.append((SHARED_MEDIA / name, False))
            else:
                print(f"(not measured: {name} is not in {SHARED_MEDIA})")
    results: dict[str, list[Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        for path, counter in videos:
            results[path.name] = bench_video(path, counter, sides, Path(tmp), args.rounds)

    print("\nCPU-seconds (wall) per video; x = reelserve's best CPU-seconds / that side's, >1: reelserve cheaper")
    ours = {name: min(o.cpu_s for o in outs if o.name.startswith("reelserve")) for name, outs in results.items()}
    for name, outs in results.items():
        print(f"  {name}")
        for o in outs:
            mark = "" if o.same else "  [other frames]"
            print(f"    {o.name:<48s} {o.cpu_s:6.2f} ({o.wall_s:5.2f})  x{o.cpu_s / ours[name]:5.2f}{mark}")
    head = results[generated.name]
    baselines = [o for o in head if not o.name.startswith("reelserve")]
    same = [o for o in baselines if o.same]
    fastest = min(baselines, key=lambda o: o.cpu_s)
    if fastest not in same:
        ratio = fastest.cpu_s / ours[generated.name]
        print(
            f"fastest baseline overall: {fastest.name} ({fastest.cpu_s:.2f} CPU-s, x{ratio:.2f}) "
            f"but with other frames: {fastest.check}"
        )
    if not same:
        print("NO baseline produced the same frames: no speedup is claimed")
        return 1
    best = min(same, key=lambda o: o.cpu_s)
    mine = min((o for o in head if o.name.startswith("reelserve")), key=lambda o: o.cpu_s)
    print(f"reelserve's cheapest configuration on {generated.name}: {mine.name} ({mine.cpu_s:.2f} CPU-s)")
    print(f"decode_cpu_speedup_vs_best={best.cpu_s / ours[generated.name]:.2f} best={best.name.replace(' ', '_')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
