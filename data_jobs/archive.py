"""Bulk archive analysis: `python -m data_jobs.archive --input IN --output OUT [options]`.

Runs on the Ray cluster it finds (`ray job submit`, `RAY_ADDRESS`, `--address`)
or on a local one it starts. Chunks go to the VLM deployment of the running
reelserve Serve app, and each finished video to its Aggregator (the one flow's
finish step, as for `/v1/analyze` and jobs); with no app running, the job
deploys those two deployments from serve_config.yaml itself and removes them at
the end. Results stream back per chunk; each video is finished and written as
soon as its last chunk is in. Re-runs skip finished videos.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from data_jobs.inputs import list_inputs
from data_jobs.store import ArchiveStore
from serve_app.config import Settings
from serve_app.flow import Speech
from serve_app.schemas import AnalyzeOptions, ChunkPlan, ChunkResult, Transcript, VideoAnalysis, VideoInfo
from serve_app.search import archive_index

logger = logging.getLogger(__name__)


@dataclass
class Report:
    output: str
    inputs: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    video_s: float = 0.0
    chunks_inferred: int = 0
    chunks_failed: int = 0
    visual_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "videos": {"inputs": self.inputs, "ok": self.ok, "failed": self.failed, "skipped": self.skipped},
            "hours_of_video": round(self.video_s / 3600, 4),
            "wall_s": round(self.wall_s, 2),
            "throughput_video_s_per_s": round(self.video_s / self.wall_s, 3) if self.wall_s else 0.0,
            "chunks": {"inferred": self.chunks_inferred, "failed": self.chunks_failed},
            "tokens": {
                "visual": self.visual_tokens,
                "prompt": self.prompt_tokens,
                "completion": self.completion_tokens,
            },
            "failures": self.failures,
        }


@contextmanager
def vlm_app(settings: Settings) -> Iterator[str]:
    """The Serve app whose VLM and Aggregator the job uses; deploys (and later removes) them if none runs."""
    from ray import serve

    from serve_app.app import inference_graph

    running = serve.status().applications.get(settings.app_name)
    if running is not None and running.status == "RUNNING":
        logger.info("using the VLM and Aggregator deployments of the running app %r", settings.app_name)
        yield settings.app_name
        return
    name = settings.data.job_app_name
    logger.info("no running %r app: deploying VLM and Aggregator as %r", settings.app_name, name)
    _, aggregator = inference_graph(settings)
    serve.start(proxy_location="Disabled")  # no HTTP needed: the job talks to the replicas through handles
    serve.run(aggregator, name=name, route_prefix=None)
    try:
        yield name
    finally:
        serve.delete(name)


class Finisher:
    """Collects streamed chunk results; finishes (Aggregator) and writes each video when its last chunk arrives."""

    def __init__(self, store: ArchiveStore, aggregator: Any, report: Report, progress: tqdm) -> None:
        self.store = store
        self.aggregator = aggregator
        self.report = report
        self.progress = progress
        self.pending: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, item: dict[str, Any]) -> None:
        kind = item["kind"]
        if kind == "skipped":
            self.report.skipped += 1
            self._done(f"skipped {item['uri']}")
        elif kind == "failed":
            self.report.failed += 1
            self.report.failures.append({"path": item["uri"], "error": item["error"]})
            self.store.write_failure(item["result_key"], item["uri"], item["sha256"], "", item["error"])
            self._done(f"failed {item['uri']}")
        else:
            rows = self.pending[item["result_key"]]
            rows.append(item)
            if len(rows) == item["n_chunks"]:
                self._finish(self.pending.pop(item["result_key"]))

    def _done(self, note: str) -> None:
        self.progress.set_postfix_str(note[-60:])
        self.progress.update(1)

    def _finish(self, rows: list[dict[str, Any]]) -> None:
        first = rows[0]
        info = VideoInfo.model_validate_json(first["info_json"])
        options = AnalyzeOptions.model_validate_json(first["options_json"])
        plans = [ChunkPlan.model_validate_json(r["plan_json"]) for r in rows]
        results = [ChunkResult.model_validate_json(r["result_json"]) for r in rows]
        timings = json.loads(first["timings_json"])
        head = rows[[p.index for p in plans].index(0)]  # chunk 0's row carries the transcript
        said = head["transcript_json"]
        speech = Speech(
            transcript=Transcript.model_validate_json(said) if said else None, error=head["transcript_error"]
        )
        analysis: VideoAnalysis = self.aggregator.aggregate.remote(
            info, options, plans, results, timings, first["started_at"], speech
        ).result()
        self.store.write_success(first["result_key"], first["uri"], analysis)
        r, s = self.report, analysis.stats
        r.ok += 1
        r.video_s += info.duration_s
        r.chunks_inferred += s.chunks
        r.chunks_failed += s.chunks_failed
        r.visual_tokens += s.visual_tokens
        r.prompt_tokens += s.prompt_tokens
        r.completion_tokens += s.completion_tokens
        self._done(f"ok {first['uri']}")


def run(input_spec: str, output: str, settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    """Process an archive on the connected Ray cluster; returns (and writes) the report."""
    from ray import serve

    from data_jobs.pipeline import build_pipeline

    started = time.perf_counter()
    AnalyzeOptions.model_validate(options)  # fail fast on bad job-level options
    inputs = list_inputs(input_spec)
    store = ArchiveStore(output)
    report = Report(output=output, inputs=len(inputs))
    with vlm_app(settings) as app_name, tqdm(total=len(inputs), unit="video", desc="videos") as progress:
        finisher = Finisher(store, serve.get_deployment_handle("Aggregator", app_name=app_name), report, progress)
        for item in build_pipeline(inputs, settings, options, output, app_name).iter_rows():
            finisher.add(item)
        if finisher.pending:  # a video whose chunks never all came back must not look finished
            raise RuntimeError(f"incomplete videos after the pipeline ended: {sorted(finisher.pending)}")
    report.wall_s = time.perf_counter() - started
    result = report.as_dict()
    store.write_report(result)
    archive_index(output, settings.search.cache_dir).refresh()  # `reelserve search --index OUT` finds its videos
    return result


def print_report(report: dict[str, Any]) -> None:
    v = report["videos"]
    lines = [
        f"videos      {v['ok']} ok, {v['failed']} failed, {v['skipped']} skipped (of {v['inputs']})",
        f"video       {report['hours_of_video'] * 60:.2f} min in {report['wall_s']:.1f} s wall "
        f"({report['throughput_video_s_per_s']:.2f} video-s/s)",
        f"chunks      {report['chunks']['inferred']} inferred, {report['chunks']['failed']} failed",
        f"tokens      visual {report['tokens']['visual']}, prompt {report['tokens']['prompt']}, "
        f"completion {report['tokens']['completion']}",
        *(f"failed      {f['path']}: {f['error'][:120]}" for f in report["failures"]),
        f"output      {report['output']}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def connect(address: str | None, object_store_bytes: int | None) -> None:
    """Join the given or ambient cluster (ray job submit sets RAY_ADDRESS); else start a local one, with the
    embedded stack's object-store size (`serve.object_store_bytes`: the reason is at the setting)."""
    import ray

    from serve_app.cli.local_stack import LOCAL_NUM_CPUS

    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(
            address="local",
            num_cpus=LOCAL_NUM_CPUS,
            object_store_memory=object_store_bytes,
            include_dashboard=False,
            log_to_driver=False,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_jobs.archive", description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="folder, glob, URI (s3://, gs://, file://) or manifest")
    parser.add_argument("--output", required=True, help="output folder or URI")
    parser.add_argument("--mode", default="describe", help="analysis mode (a manifest may set it per video)")
    parser.add_argument("--prompt", help="instruction (custom mode) or focus hint")
    parser.add_argument("--fps", type=float, help="sampling rate")
    parser.add_argument("--chunk-s", type=float, help="chunk length in seconds")
    parser.add_argument("--no-aggregate", action="store_true", help="skip the per-video summary call")
    parser.add_argument("--config", type=Path, help="serve_config.yaml whose args are the settings")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a new local cluster)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from serve_app.config import ServeConfig

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = ServeConfig.load(args.config).settings()
    options = {"mode": args.mode, "prompt": args.prompt, "fps": args.fps, "chunk_s": args.chunk_s}
    options = {k: v for k, v in options.items() if v is not None} | {"aggregate": not args.no_aggregate}
    connect(args.address, settings.serve.object_store_bytes)
    import ray

    try:
        report = run(args.input, args.output, settings, options)
    finally:
        ray.shutdown()
    print_report(report)
    sys.stdout.write(json.dumps(report) + "\n")
    return report


if __name__ == "__main__":
    main()
