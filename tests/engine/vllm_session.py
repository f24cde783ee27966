"""One session with the real vLLM engine, run by tests/engine/test_vllm.py in its own interpreter.

    python -m tests.engine.vllm_session WORK_DIR

Starts `create_engine(ModelSettings(), token_budget)` (the tiny model on CPU), analyses one chunk of a
generated clip, summarizes a small timeline, checks schemas and health, shuts down, and prints one line
`REPORT {json}` for the test to assert on (vLLM logs to the same stdout).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from serve_app.config import ModelSettings, VideoSettings
from serve_app.devtools.synthetic import write_video
from serve_app.engine import create_engine
from serve_app.errors import EngineUnavailable, InvalidOptions
from serve_app.schemas import AnalyzeOptions, TimelineEntry
from serve_app.video import chunking_options, decode_chunk, plan_chunks, probe
from tests.engine.subprocess_session import REPORT_PREFIX  # noqa: E402  (one prefix for every session)

TOKEN_BUDGET = 256
#: Arrays with uniqueItems: valid JSON schema, but xgrammar cannot enforce it (vLLM says so).
UNENFORCEABLE_SCHEMA = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
    "required": ["tags"],
}
ENFORCEABLE_SCHEMA = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
    "required": ["tags"],
}


async def session(work: Path) -> dict[str, Any]:
    clip = work / "clip.mp4"
    write_video(clip, duration_s=4.0, fps=8.0, width=320, height=192)
    video = VideoSettings(token_budget=TOKEN_BUDGET, min_frame_pixels=32 * 32, decode_threads=1)
    info = probe(clip, video)
    options = AnalyzeOptions(mode="screen_share", sampling="uniform", fps=1.0, chunk_s=4, overlap_s=0)
    plans = plan_chunks(info, chunking_options(options, video), video)
    chunk = decode_chunk(clip, plans[0], threads=1)
    model = ModelSettings()
    task = options.to_chunk_task(info.video_id, default_max_tokens=model.max_tokens)

    engine = create_engine(model, TOKEN_BUDGET)
    report: dict[str, Any] = {"engine_class": f"{type(engine).__module__}.{type(engine).__qualname__}"}
    await engine.start()
    try:
        report["model_id"] = engine.model_id
        await engine.check_health()
        report["healthy"] = True
        result = await engine.analyze_chunk(chunk, task)
        report["plans"] = [p.model_dump() for p in plans]
        report["chunk"] = {
            "frame_times_s": chunk.frame_times_s,
            "frames_shape": list(chunk.frames.shape),
            "stats": chunk.stats.model_dump(),
        }
        report["result"] = result.model_dump()
        report["result_ok"] = result.ok
        entries = [
            TimelineEntry(start_s=0.0, end_s=2.0, chunk_index=0, text="A slide titled Quarterly results."),
            TimelineEntry(start_s=2.0, end_s=4.0, chunk_index=0, text="The presenter opens the budget table."),
        ]
        summary = await engine.summarize(entries, "screen_share")
        report["summary"] = summary.model_dump()
        from vllm.v1.structured_output.backend_xgrammar import has_xgrammar_unsupported_json_features

        report["xgrammar_unsupported"] = {
            "unenforceable": has_xgrammar_unsupported_json_features(UNENFORCEABLE_SCHEMA),
            "enforceable": has_xgrammar_unsupported_json_features(ENFORCEABLE_SCHEMA),
        }
        try:
            engine.check_schema(UNENFORCEABLE_SCHEMA)
            report["unenforceable"] = "accepted"
        except InvalidOptions as exc:
            report["unenforceable"] = {"status": exc.status, "type": exc.type, "detail": exc.detail}
        engine.check_schema(ENFORCEABLE_SCHEMA)
        report["enforceable"] = "accepted"
    finally:
        engine.shutdown()
    report["shutdown"] = True
    try:
        await engine.check_health()
        report["health_after_shutdown"] = "healthy"
    except EngineUnavailable as exc:
        report["health_after_shutdown"] = {"status": exc.status, "type": exc.type}
    return report


def main() -> None:
    report = asyncio.run(session(Path(sys.argv[1])))
    sys.stdout.write(REPORT_PREFIX + json.dumps(report) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
