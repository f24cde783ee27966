"""Media by URI: local paths opened where they are (or a clear StoreNotShared), object stores cached per node."""

from __future__ import annotations

import time
from pathlib import Path

import fsspec
import pytest

from serve_app.errors import StoreNotShared
from serve_app.store.media import MediaCache, media_path


def test_a_local_path_is_opened_as_it_is(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    cache = MediaCache(tmp_path / "cache", 10)
    assert media_path(str(video), cache) == str(video) == media_path(f"file://{video}", cache)
    assert not (tmp_path / "cache").exists()  # nothing copied


def test_a_path_this_node_cannot_see_is_a_clear_store_problem(tmp_path: Path) -> None:
    with pytest.raises(StoreNotShared, match="not a node-local folder") as caught:
        media_path(str(tmp_path / "written-on-another-node"), MediaCache(tmp_path / "cache", 10))
    assert caught.value.status == 503 and caught.value.type == "store-not-shared"


def test_object_store_media_is_cached_once_and_evicted_least_recently_used(tmp_path: Path) -> None:
    memory = fsspec.filesystem("memory")
    for name in ("a", "b", "c"):
        memory.pipe(f"/bucket/{name}.mp4", name.encode() * 400)  # 400 bytes each
    cache = MediaCache(tmp_path / "cache", max_bytes=1000)  # room for two
    first = media_path("memory://bucket/a.mp4", cache)
    assert Path(first).read_bytes() == b"a" * 400
    memory.pipe("/bucket/a.mp4", b"changed")  # a cached copy is reused, not downloaded again
    assert Path(media_path("memory://bucket/a.mp4", cache)).read_bytes() == b"a" * 400
    media_path("memory://bucket/b.mp4", cache)
    time.sleep(0.01)
    media_path("memory://bucket/a.mp4", cache)  # a is now the most recently used
    time.sleep(0.01)
    media_path("memory://bucket/c.mp4", cache)  # over the bound: b goes
    kept = sorted(p.read_bytes()[:1] for p in (tmp_path / "cache").iterdir())
    assert kept == [b"a", b"c"]
    cache.forget("memory://bucket/a.mp4")
    assert sorted(p.read_bytes()[:1] for p in (tmp_path / "cache").iterdir()) == [b"c"]


def test_a_store_that_cannot_be_written_is_found_out_at_once(tmp_path: Path) -> None:
    from serve_app.store.files import FileStore

    store = FileStore(str(tmp_path / "store"))
    store.check_writable()
    assert not list((tmp_path / "store" / "probes").iterdir())  # the probe is cleaned up
    (tmp_path / "store" / "probes").rmdir()
    (tmp_path / "store" / "probes").write_text("a file where the probes folder goes")  # fails even for root
    with pytest.raises(RuntimeError, match="not readable and writable from here"):
        store.check_writable()
