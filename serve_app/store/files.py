"""One small interface over local folders and object stores (pyarrow / fsspec filesystems).

Writes are atomic for readers: locally a file is written under a temporary
name and renamed; object stores publish an object only when its upload
completes. Used by the job store (serve_app.store.jobs) and the archive job's
outputs (data_jobs.store).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs

logger = logging.getLogger(__name__)


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or any URI pyarrow/fsspec knows."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    try:
        return pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid:  # a scheme pyarrow has no filesystem for
        import fsspec  # gs://, az://, ... through fsspec when pyarrow has no native support

        fs, path = fsspec.core.url_to_fs(uri)
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def to_uri(fs: pafs.FileSystem, path: str) -> str:
    return path if isinstance(fs, pafs.LocalFileSystem) else f"{fs.type_name}://{path}"


class FileStore:
    """Files under one root URI, addressed by relative keys like `jobs/<id>/job.json`."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.root = resolve(uri)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.fs.create_dir(self.root, recursive=True)

    def check_writable(self) -> None:
        """Write, read back and delete a probe file; raises with the reason when this process cannot (a
        replica starting against an unreachable or read-only store fails then, not on its first request)."""
        key = f"probes/{uuid.uuid4().hex}"
        try:
            self.write_bytes(key, b"ok")
            if self.read_bytes(key) != b"ok":
                raise OSError("a probe file read back different bytes")
            self.delete(key)
        except Exception as exc:
            raise RuntimeError(f"the store {self.uri} is not readable and writable from here: {exc}") from exc

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def uri_of(self, key: str) -> str:
        return to_uri(self.fs, self.path(key))

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self.path(key)).type == pafs.FileType.File

    def publish(self, key: str, write: Callable[[IO[bytes]], Any]) -> None:
        """Write `key` atomically with `write(stream)`."""
        path = self.path(key)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        target = f"{path}.tmp-{uuid.uuid4().hex}" if self.local else path
        with self.fs.open_output_stream(target) as out:
            write(out)
        if self.local:
            self.fs.move(target, path)

    def write_bytes(self, key: str, data: bytes) -> None:
        self.publish(key, lambda out: out.write(data))

    def create(self, key: str, data: bytes) -> bool:
        """Write `key` only if it does not exist yet: True when this call created it, False when it was there.

        Atomic where the filesystem offers it: a local folder or a shared volume (the data is written under a
        temporary name, then hard-linked to `key`, which fails if `key` exists), and fsspec filesystems with
        exclusive create (`mode="xb"`: s3fs sends `If-None-Match: *`). pyarrow's own object-store clients
        have no conditional write: there it is check-then-write, and a concurrent creator can win the race.
        """
        path = self.path(key)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        if self.local:
            partial = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(partial, "wb") as out:
                out.write(data)
            try:
                os.link(partial, path)
            except FileExistsError:
                return False
            finally:
                os.unlink(partial)
            return True
        handler = getattr(self.fs, "handler", None)
        fsspec_fs = getattr(handler, "fs", None)
        if fsspec_fs is not None:
            try:
                with fsspec_fs.open(path, "xb") as out:
                    out.write(data)
                return True
            except FileExistsError:
                return False
            except (ValueError, NotImplementedError):  # this fsspec backend has no exclusive create
                pass
        logger.warning("store %s has no conditional write: creating %s is check-then-write", self.uri, key)
        if self.exists(key):
            return False
        self.write_bytes(key, data)
        return True

    def read_bytes(self, key: str) -> bytes:
        with self.fs.open_input_stream(self.path(key)) as fh:
            return fh.read()

    def put_file(self, key: str, source: Path) -> None:
        """Store a local file under `key` (moved when the store is local)."""
        path = self.path(key)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        if self.local:
            shutil.move(source, path)
            return
        with source.open("rb") as src:
            self.publish(key, lambda out: shutil.copyfileobj(src, out, 1 << 20))

    def move(self, source: str, target: str) -> None:
        """Move `source` to `target` within the store (a rename locally; copy + delete on object stores)."""
        path = self.path(target)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        self.fs.move(self.path(source), path)

    def _entries(self, prefix: str) -> list[pafs.FileInfo]:
        try:
            return self.fs.get_file_info(pafs.FileSelector(self.path(prefix), allow_not_found=True))
        except FileNotFoundError:  # created by another process while pyarrow listed it: seen in CI
            return []

    def list(self, prefix: str) -> list[str]:
        """Keys of the files directly under `prefix` (no temporaries), sorted."""
        found = self._entries(prefix)
        return sorted(
            f"{prefix}/{f.base_name}" for f in found if f.type == pafs.FileType.File and ".tmp-" not in f.base_name
        )

    def list_dirs(self, prefix: str) -> list[str]:
        found = self._entries(prefix)
        return sorted(f.base_name for f in found if f.type == pafs.FileType.Directory)

    def delete(self, key: str) -> None:
        if self.exists(key):
            self.fs.delete_file(self.path(key))

    def delete_dir(self, prefix: str) -> None:
        if self.fs.get_file_info(self.path(prefix)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(prefix))
