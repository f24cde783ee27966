"""Media by URI, opened by the process that decodes it, on whatever node it runs.

Media (uploads, job media, archive inputs) travels between replicas and tasks as a URI on the shared
store, never as a path one process wrote for another. Where the URI is a local path (the store is a
folder: on one machine, or an RWX volume mounted at the same path on every node) it is opened as it
is, and a path this node cannot see means the store is not shared: `StoreNotShared`, a clear problem
instead of a FileNotFoundError deep in a replica. Object-store URIs are copied once per node into a
bounded cache (least recently used files go first), so the chunks of one video decoded on one node
download it once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import uuid
from pathlib import Path

from serve_app.errors import StoreNotShared
from serve_app.store.files import resolve

logger = logging.getLogger(__name__)


class MediaCache:
    """Object-store media copied to one node's disk, at most `max_bytes` of it."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def fetch(self, uri: str) -> str:
        target = self.root / hashlib.sha256(uri.encode()).hexdigest()
        if target.exists():
            os.utime(target)  # recently used: evicted last
            return str(target)
        self.root.mkdir(parents=True, exist_ok=True)
        fs, path = resolve(uri)
        partial = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
        try:
            with fs.open_input_stream(path) as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            partial.rename(target)  # atomic: other processes of this node see all of it or nothing
        finally:
            partial.unlink(missing_ok=True)
        self.evict(keep=target)
        return str(target)

    def evict(self, keep: Path | None = None) -> None:
        """Delete least recently used files until the cache fits (never `keep`; a reader that has a file
        open keeps reading it after the unlink)."""
        files = [p for p in self.root.iterdir() if p.is_file() and not p.name.endswith(".part")]
        files.sort(key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for old in files:
            if total <= self.max_bytes:
                break
            if old == keep:
                continue
            total -= old.stat().st_size
            old.unlink(missing_ok=True)
            logger.info("media cache: evicted %s", old.name)

    def forget(self, uri: str) -> None:
        """Drop this node's copy of `uri` (its job is over)."""
        (self.root / hashlib.sha256(uri.encode()).hexdigest()).unlink(missing_ok=True)


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def media_path(uri: str, cache: MediaCache) -> str:
    """A path PyAV can open on this node for the media at `uri`."""
    if not is_local(uri):
        return cache.fetch(uri)
    path = uri.removeprefix("file://")
    if not os.path.exists(path):
        raise StoreNotShared(
            f"media {path} does not exist on node {socket.gethostname()}: media must be on a store every node "
            "shares — an object store (s3://, gs://) or a volume mounted at the same path on every node; for "
            "the service that is jobs.store_uri — not a node-local folder"
        )
    return path
