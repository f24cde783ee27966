"""Decode stage: a chunk row → the same row with its sampled frames (pickled) attached."""

from __future__ import annotations

import pickle
from typing import Any

from serve_app.errors import ReelserveError
from serve_app.schemas import ChunkPlan
from serve_app.store.media import MediaCache, media_path
from serve_app.video import decode_chunk
from serve_app.video.packets import PacketParams


def decode_row(
    item: dict[str, Any], *, cache: MediaCache, threads: int = 0, packets: PacketParams | None = None
) -> dict[str, Any]:
    """`map` UDF (a CPU task, on any node). Input columns: kind, uri, plan_json. The task opens the URI
    itself, on its node (`serve_app.store.media`): no path from the probe task's node. `threads` and
    `packets` as the Chunker decodes (`decode_chunk`), so bulk keeps the frames online keeps."""
    if item["kind"] != "chunk":
        return item
    plan = ChunkPlan.model_validate_json(item["plan_json"])
    try:
        sampled = decode_chunk(media_path(item["uri"], cache), plan, threads, packets)
    except ReelserveError as exc:  # one bad chunk is reported in its result, not fatal
        return {**item, "error": f"decode failed: {exc.detail}"}
    # Pickle (protocol 5) keeps the uint8 frames compact and shape-agnostic in Arrow blocks.
    return {**item, "payload": pickle.dumps(sampled, protocol=5)}
