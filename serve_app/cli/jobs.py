"""`reelserve jobs list|status|follow|cancel|result`: the async jobs of a running reelserve.

The server is `--server` (or `REELSERVE_SERVER`), the key `REELSERVE_API_KEY`. Problems exit with code 2
(as `reelserve analyze` does); `follow` and `result` exit with 1 when the job failed or was cancelled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from serve_app.schemas import VideoAnalysis

jobs_app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)

ServerOpt = Annotated[str, typer.Option("--server", envvar="REELSERVE_SERVER", help="Base URL of a running reelserve.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON the API answered.")]
OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="Write the full analysis JSON here.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


class JobDidNotSucceed(Exception):
    """The followed job ended failed, cancelled or deleted."""

    def __init__(self, data: dict) -> None:
        error = f": {data['error']}" if data.get("error") else ""
        super().__init__(f"job {data.get('id')} {data.get('status')}{error}")
        self.data = data


def follow(
    server: str, job_id: str, *, request_timeout_s: float | None = None, console: Console = console
) -> VideoAnalysis:
    """Follow a job to its end with a live progress bar and a line per chunk (on `console`); its analysis,
    or `JobDidNotSucceed`. Streams that end (windows, proxies, networks) are resumed transparently."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from serve_app.cli import client
    from serve_app.schemas import ChunkResult

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("chunks", total=None)
        for item in client.follow_job(server, job_id, request_timeout_s=request_timeout_s):
            if item.event == "chunk":
                chunk = ChunkResult.model_validate(item.data)
                note = chunk.error or (chunk.text or "")[:70]
                progress.console.log(f"chunk {chunk.index:4d} [{chunk.start_s:7.1f}-{chunk.end_s:7.1f}s] {note!r}")
            elif item.event == "progress":
                p = item.data["progress"]
                progress.update(bar, total=p["chunks_total"] or None, completed=p["chunks_done"])
            elif item.event == "result":
                return VideoAnalysis.model_validate(item.data)
            else:
                raise JobDidNotSucceed(item.data)
    raise AssertionError("follow_job ends with a result or an end event")  # pragma: no cover


def _write(analysis: VideoAnalysis, output: Path | None) -> None:
    from serve_app.cli import print_summary

    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(analysis.model_dump_json(indent=2))
    print_summary(analysis, output)


def _problem_exit(exc: Exception) -> typer.Exit:
    console.print(f"[red]error[/red] {exc}")
    return typer.Exit(2)


@jobs_app.command("list")
def list_(server: ServerOpt = DEFAULT_SERVER, limit: Annotated[int, typer.Option()] = 20, as_json: JsonOpt = False):
    """Recent jobs, newest first."""
    from serve_app.cli import client

    try:
        jobs = client.list_jobs(server, limit)
    except client.ApiError as exc:
        raise _problem_exit(exc) from None
    if as_json:
        print(json.dumps([j.model_dump(mode="json") for j in jobs], indent=2))
        return
    for job in jobs:
        p = job.progress
        counts = f"{p.chunks_done:4d}/{p.chunks_total:<4d}"
        print(f"{job.id}  {job.status:9s}  {counts}  {job.request.mode:12s}  {job.source}")


@jobs_app.command()
def status(job_id: str, server: ServerOpt = DEFAULT_SERVER, as_json: JsonOpt = False) -> None:
    """A job's status and progress."""
    from serve_app.cli import client

    try:
        job = client.get_job(server, job_id)
    except client.ApiError as exc:
        raise _problem_exit(exc) from None
    if as_json:
        print(job.model_dump_json(indent=2))
        return
    p = job.progress
    print(f"job        {job.id}   {job.status}   attempts {job.attempts}")
    print(f"source     {job.source}   mode {job.request.mode}")
    print(
        f"progress   {p.chunks_done}/{p.chunks_total} chunks ({p.chunks_failed} failed)"
        f"   {p.video_s_done:.1f}/{p.video_s_total:.1f}s of video"
        + (f"   eta {p.eta_s:.0f}s" if p.eta_s is not None else "")
    )
    if job.error:
        print(f"error      {job.error}")


@jobs_app.command("follow")
def follow_command(
    job_id: str,
    server: ServerOpt = DEFAULT_SERVER,
    output: OutputOpt = None,
    request_timeout_s: Annotated[
        float | None,
        typer.Option(
            "--request-timeout-s",
            help="Ask Serve for this timeout per event stream (x-request-timeout-seconds), e.g. behind a proxy "
            "that cuts long responses; the stream closes before it and is resumed.",
        ),
    ] = None,
) -> None:
    """Follow a job's events (chunks, progress) to its end, then print its analysis."""
    from serve_app.cli import client

    try:
        analysis = follow(server, job_id, request_timeout_s=request_timeout_s)
    except client.ApiError as exc:
        raise _problem_exit(exc) from None
    except JobDidNotSucceed as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    _write(analysis, output)


@jobs_app.command()
def cancel(job_id: str, server: ServerOpt = DEFAULT_SERVER) -> None:
    """Cancel a queued or running job."""
    from serve_app.cli import client

    try:
        job = client.cancel_job(server, job_id)
    except client.ApiError as exc:
        raise _problem_exit(exc) from None
    print(f"{job.id}  {job.status}  {job.progress.chunks_done}/{job.progress.chunks_total} chunks done")


@jobs_app.command()
def result(job_id: str, server: ServerOpt = DEFAULT_SERVER, output: OutputOpt = None) -> None:
    """A finished job's analysis (summary on stdout, full JSON to -o)."""
    from serve_app.cli import client

    try:
        analysis = client.job_result(server, job_id)
    except client.ApiError as exc:
        if exc.status == 409:  # not finished, failed or cancelled
            console.print(f"[red]error[/red] {exc}")
            raise typer.Exit(1) from None
        raise _problem_exit(exc) from None
    _write(analysis, output)
