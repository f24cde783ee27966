"""The `reelserve` command: analyze, jobs, search, serve, archive, demo, k8s, make-tiny-model, fix-cpu-install."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from serve_app.cli.jobs import jobs_app
from serve_app.config import ConfigFileError, ServeConfig
from serve_app.kube import k8s_app
from serve_app.schemas import AnalyzeOptions, VideoAnalysis

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.add_typer(k8s_app, name="k8s")
app.add_typer(jobs_app, name="jobs")
console = Console(stderr=True)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_VIDEO = REPO_ROOT.parent / "shared" / "media" / "Megamind.avi"  # real speech over real pictures

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Serve config (default: $REELSERVE_CONFIG, else the packaged serve_config.yaml)."),
]


def _load_config(config: Path | None) -> ServeConfig:
    """The serve config `--config` (or REELSERVE_CONFIG, else the packaged one) names; a missing file exits 2."""
    try:
        return ServeConfig.load(config)
    except ConfigFileError as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _print_timed(lines: list[tuple[float, float, str]], what: str, shown: int = 8) -> None:
    for start, end, text in lines[:shown]:
        print(f"  [{start:6.1f}-{end:6.1f}s] {text[:90]}")
    if len(lines) > shown:
        print(f"  ... {len(lines) - shown} more {what}")


def print_summary(analysis: VideoAnalysis, out: Path | None) -> None:
    """A short human-readable report on stdout."""
    v, s = analysis.video, analysis.stats
    print(
        f"video      {v.container}/{v.codec} {v.width}x{v.height} {v.duration_s:.1f}s @ {v.fps:.2f} fps"
        f"{' +audio' if v.has_audio else ''}  sha256 {v.sha256[:12]}"
    )
    print(f"model      {analysis.model}   mode {analysis.request.mode}")
    print(
        f"chunks     {s.chunks} ({s.chunks_failed} failed)   frames decoded/kept {s.frames_decoded}/{s.frames_kept}"
        f"   visual tokens {s.visual_tokens}   prompt/completion tokens {s.prompt_tokens}/{s.completion_tokens}"
    )
    print(
        f"timings    wall {s.wall_s:.1f}s  probe {s.probe_s:.2f}s  decode {s.decode_s:.2f}s  infer {s.infer_s:.2f}s"
        f"  asr {s.asr_s:.2f}s  summary {s.summary_s:.2f}s"
    )
    _print_timed([(e.start_s, e.end_s, e.text) for e in analysis.timeline], "timeline entries")
    said = analysis.transcript
    if said is not None:
        print(
            f"speech     {len(said.segments)} segment(s), language {said.language}, {said.model}, "
            f"{said.speech_s:.1f}s of speech in {said.audio_s:.1f}s, asr {said.asr_s:.2f}s"
        )
        _print_timed([(g.start_s, g.end_s, f'"{g.text}"') for g in said.segments], "transcript segments")
    elif analysis.transcript_error:
        print(f"speech     none: {analysis.transcript_error[:120]}")
    if analysis.summary:
        print(f"summary    {analysis.summary.title[:80]!r}: {analysis.summary.summary[:160]!r}")
    if out:
        print(f"full JSON  {out.resolve()}")


EMBEDDED_OVERRIDES = {"security": {"auth": "disabled"}, "serve": {"host": "127.0.0.1"}}


def _run_analysis(
    source: str, options: AnalyzeOptions, server: str | None, config: Path | None, sheet: Path | None = None
) -> VideoAnalysis:
    if server:
        return _analyze_on(server, source, options, sheet)

    from serve_app.cli.local_stack import local_stack

    cfg = _load_config(config)
    # The embedded stack lives for one analysis on 127.0.0.1: no key, explicitly (the environment can still
    # require one; the client then sends REELSERVE_API_KEY).
    settings = cfg.settings(EMBEDDED_OVERRIDES)
    console.log(f"auth: {settings.security.auth} on the embedded local stack ({settings.serve.host} only)")
    started = time.perf_counter()
    with console.status("starting local Ray + Serve app (loading the model) ...") as status:
        with local_stack(settings, port=settings.serve.port, app_name=cfg.app_name) as base_url:
            console.log(f"local stack up in {time.perf_counter() - started:.1f}s at {base_url}")
            status.stop()
            analysis = _analyze_on(base_url, source, options, sheet)
            status.start()
            status.update("stopping local stack ...")
    return analysis


def _is_long(source: str, options: AnalyzeOptions) -> bool:
    """URLs and videos longer than two chunks go through a job (progress, streaming, survives restarts)."""
    from serve_app.cli import client
    from serve_app.config import VideoSettings
    from serve_app.errors import ReelserveError
    from serve_app.video import probe

    if client.is_url(source):
        return True
    try:
        duration = probe(source, VideoSettings(max_upload_bytes=2**62, max_duration_s=1e9)).duration_s
    except ReelserveError:
        return False  # let the server say what is wrong with it
    return duration > 2 * (options.chunk_s or VideoSettings().chunk_s)


def _analyze_on(server: str, source: str, options: AnalyzeOptions, sheet: Path | None = None) -> VideoAnalysis:
    """A contact sheet (`sheet`) needs a job: it is made from the thumbnails a job stores."""
    from serve_app.cli import client

    if sheet is None and not _is_long(source, options):
        with console.status(f"analyzing {source} on {server} ..."):
            return client.analyze(server, source, options)
    return _analyze_as_job(server, source, options, sheet)


def _analyze_as_job(server: str, source: str, options: AnalyzeOptions, sheet: Path | None = None) -> VideoAnalysis:
    """Submit a job and follow its events (resumed across streams) with a live progress bar and chunk lines;
    then fetch its contact sheet into `sheet`, if asked."""
    from serve_app.cli import client
    from serve_app.cli.jobs import JobDidNotSucceed, follow

    job = client.submit_job(server, source, options)
    console.log(f"job {job.id} queued ({server}/v1/jobs/{job.id})")
    try:
        analysis = follow(server, job.id, console=console)
    except JobDidNotSucceed as exc:
        problem = {"title": f"job {exc.data.get('status')}", "detail": exc.data.get("error") or ""}
        raise client.ApiError(409, problem) from None
    if sheet is not None:
        _write_bytes(sheet, client.job_file(server, job.id, "contact-sheet.jpg"))
    return analysis


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


#: `--chapters` formats, by the file's suffix.
CHAPTER_FORMATS = {".md": "Markdown ([mm:ss] title)", ".vtt": "WebVTT chapters"}


def write_chapters(analysis: VideoAnalysis, path: Path) -> None:
    from serve_app.analysis.chapters import chapters_from, to_markdown, to_webvtt_chapters

    chapters = chapters_from(analysis.timeline, analysis.video.duration_s)
    text = to_markdown(chapters) if path.suffix == ".md" else to_webvtt_chapters(chapters)
    _write_bytes(path, text.encode())


@app.command()
def analyze(
    source: Annotated[str, typer.Argument(help="Video file or http(s) URL.")],
    server: Annotated[
        str | None, typer.Option(help="Base URL of a running reelserve; default: embedded stack.")
    ] = None,
    mode: Annotated[str, typer.Option(help="describe, screen_share, meeting, app_demo, ui or custom.")] = "describe",
    prompt: Annotated[str | None, typer.Option(help="Instruction (custom mode) or focus hint.")] = None,
    schema: Annotated[Path | None, typer.Option(help="JSON schema file for custom mode.")] = None,
    fps: Annotated[float | None, typer.Option(help="Sampling rate.")] = None,
    chunk_s: Annotated[float | None, typer.Option("--chunk-s", help="Chunk length in seconds.")] = None,
    aggregate: Annotated[bool, typer.Option(help="Summarize the whole video.")] = True,
    audio: Annotated[str, typer.Option(help="auto (transcribe the audio track) or off.")] = "auto",
    language: Annotated[str | None, typer.Option(help="Spoken language (Whisper code); default: detected.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the full JSON here.")] = None,
    chapters: Annotated[
        Path | None, typer.Option("--chapters", help="Write the chapters here: .md (Markdown) or .vtt (WebVTT).")
    ] = None,
    contact_sheet: Annotated[
        Path | None,
        typer.Option("--contact-sheet", help="Write a JPEG of the kept frames with their times here (runs a job)."),
    ] = None,
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Analyze one video and print a summary (full JSON to -o, chapters to --chapters)."""
    from serve_app.cli.client import ApiError

    _setup_logging(verbose)
    if chapters is not None and chapters.suffix not in CHAPTER_FORMATS:
        formats = ", ".join(f"{suffix} ({what})" for suffix, what in CHAPTER_FORMATS.items())
        console.print(f"[red]error[/red] --chapters {chapters}: name a {formats} file")
        raise typer.Exit(2)
    options = AnalyzeOptions.model_validate(
        {
            "mode": mode,
            "prompt": prompt,
            "schema": json.loads(schema.read_text()) if schema else None,
            "fps": fps,
            "chunk_s": chunk_s,
            "aggregate": aggregate,
            "audio": audio,
            "language": language,
        }
    )
    try:
        analysis = _run_analysis(source, options, server, config, contact_sheet)
    except ApiError as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(analysis.model_dump_json(indent=2))
    if chapters:
        write_chapters(analysis, chapters)
    print_summary(analysis, output)
    for path, what in ((chapters, "chapters"), (contact_sheet, "contact sheet")):
        if path:
            print(f"{what:<11}{path.resolve()}")


@app.command()
def serve(config: ConfigOpt = None, verbose: Annotated[bool, typer.Option("-v", "--verbose")] = True) -> None:
    """Run the Serve app in the foreground on a local Ray cluster (Ctrl-C stops it)."""
    from serve_app.cli.local_stack import local_stack

    _setup_logging(verbose)
    cfg = _load_config(config)
    settings = cfg.settings()
    with local_stack(settings, app_name=cfg.app_name) as url:
        console.log(f"reelserve is serving at {url} (docs at {url}/docs); Ctrl-C to stop")
        console.log(
            "auth: required (Authorization: Bearer <one of REELSERVE_API_KEYS>)"
            if settings.security.auth == "required"
            else "auth: DISABLED (security.auth: disabled) — for local development only"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.log("stopping")


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output")] = REPO_ROOT / "out" / "demo.json",
    mode: Annotated[str, typer.Option()] = "meeting",
    config: ConfigOpt = None,
) -> None:
    """Analyze a sample recording with speech on the embedded local stack (CPU profile): the tiny model's
    fields next to a real transcript (Whisper base)."""
    from serve_app.devtools.meeting import write_sample_meeting

    video = DEMO_VIDEO
    if not video.is_file():
        video = Path(tempfile.mkdtemp(prefix="reelserve-demo-")) / "sample-meeting.mp4"
        console.log(f"{DEMO_VIDEO} not found; generating a spoken sample meeting at {video}")
        write_sample_meeting(video)
    analyze(
        str(video),
        mode=mode,
        output=output,
        chapters=None,
        contact_sheet=None,
        config=config,
        server=None,
        prompt=None,
        schema=None,
        fps=None,
        chunk_s=None,
        aggregate=True,
        audio="auto",
        language=None,
        verbose=False,
    )


@app.command()
def archive(
    input_spec: Annotated[str, typer.Argument(metavar="IN", help="Folder, glob, URI or manifest (.csv/.jsonl).")],
    output: Annotated[str, typer.Argument(metavar="OUT", help="Output folder or URI.")],
    mode: Annotated[str, typer.Option(help="Analysis mode (a manifest may set it per video).")] = "describe",
    prompt: Annotated[str | None, typer.Option(help="Instruction (custom mode) or focus hint.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address; default: a new local cluster.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Analyze a whole archive with Ray Data (resumable); see data_jobs/archive.py."""
    from data_jobs.archive import main as archive_main

    argv = ["--input", input_spec, "--output", output, "--mode", mode]
    argv += ["--prompt", prompt] if prompt else []
    argv += ["--address", address] if address else []
    argv += ["--config", str(config)] if config else []
    archive_main(argv)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help='Words (any may match; more of them rank first), "a phrase", prefix*.')],
    server: Annotated[str | None, typer.Option(help="Base URL of a running reelserve (GET /v1/search).")] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index",
            metavar="OUT",
            help="An archive output folder or URI to search here, no server (its index is refreshed first).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Most hits.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the SearchResults JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Search processed videos: a server's jobs (and the archives it is configured with), or one archive."""
    from serve_app.cli.client import ApiError
    from serve_app.cli.client import search as search_on
    from serve_app.errors import InvalidQuery

    if (server is None) == (index is None):
        console.print("[red]error[/red] give one of --server URL (a running reelserve) or --index OUT (an archive)")
        raise typer.Exit(2)
    try:
        if server is not None:
            found = search_on(server, query, limit)
        else:
            from serve_app.search import archive_index

            found = archive_index(index, _load_config(config).settings().search.cache_dir).search(query, limit)
    except (ApiError, InvalidQuery) as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        print(found.model_dump_json(indent=2))
        return
    for hit in found.hits:
        when = f"[{hit.start_s:6.1f}-{hit.end_s:6.1f}s]"
        print(f"{hit.score:6.2f}  {hit.video_id}  {when}  {hit.kind:<11}  {hit.snippet}")
        print(f"        {hit.link}")
    console.print(f"{len(found.hits)} hit(s) in {found.results_indexed} processed result(s) for {found.match}")


@app.command("make-tiny-model")
def make_tiny_model(
    directory: Annotated[Path, typer.Argument(help="Output folder.")],
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Build the tiny RANDOM-WEIGHT Qwen3-VL model (for development and tests; outputs are meaningless)."""
    from serve_app.devtools.tiny_model import LABEL, build_tiny_model

    path = build_tiny_model(directory, seed=seed)
    print(f"{LABEL}\n-> {path}")


@app.command("fix-cpu-install")
def fix_cpu_install() -> None:
    """Apply the CPU-profile post-install fixes (idempotent)."""
    from serve_app.devtools.cpu_profile import apply

    done = apply()
    print("; ".join(done) if done else "nothing to do")


def main() -> Any:
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    return app()
