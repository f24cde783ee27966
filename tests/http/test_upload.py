"""Streaming multipart parsing: limits hit while streaming, the rest of the body is never pulled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from serve_app.errors import BadRequest, PayloadTooLarge
from serve_app.http.upload import read_limited, receive_multipart

BOUNDARY = "xYzBoundary42"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
FIELDS = ("mode", "prompt", "fps")


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def body(*parts: bytes, close: bool = True) -> bytes:
    return b"".join(parts) + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


class Stream:
    """An async body stream in fixed blocks that counts what was pulled."""

    def __init__(self, data: bytes, block: int = 1000, then_forever: bool = False) -> None:
        self.data, self.block, self.forever, self.pulled = data, block, then_forever, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        offset = 0
        while offset < len(self.data) or self.forever:
            chunk = self.data[offset : offset + self.block] or b"\0" * self.block
            offset += self.block
            self.pulled += len(chunk)
            yield chunk


def receive(stream: Stream, dest: Path, max_file: int = 10_000, max_field: int = 100):
    return asyncio.run(
        receive_multipart(
            stream.__aiter__(),
            CONTENT_TYPE,
            dest,
            max_file_bytes=max_file,
            max_field_bytes=max_field,
            field_names=FIELDS,
        )
    )


def test_fields_and_file(tmp_path: Path) -> None:
    video = bytes(range(256)) * 30  # 7680 bytes, boundary-like bytes included
    data = body(part("mode", b"ui"), part("file", video, "clip.mp4"), part("prompt", "héllo".encode()))
    form = receive(Stream(data, block=7), tmp_path / "v")
    assert form.fields == {"mode": "ui", "prompt": "héllo"}
    assert form.file_name == "clip.mp4" and form.file_bytes == len(video)
    assert (tmp_path / "v").read_bytes() == video


def test_file_over_the_limit_stops_reading(tmp_path: Path) -> None:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'.encode()
    stream = Stream(head, block=1000, then_forever=True)  # an endless upload
    with pytest.raises(PayloadTooLarge, match="limit of 10000"):
        receive(stream, tmp_path / "v")
    assert stream.pulled <= 10_000 + 2 * 1000  # stopped within a block of the limit
    assert (tmp_path / "v").stat().st_size <= 10_000


def test_field_over_the_limit(tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge, match="'prompt'"):
        receive(Stream(body(part("prompt", b"x" * 101))), tmp_path / "v")


def test_stray_file_part_is_reported_not_kept(tmp_path: Path) -> None:
    form = receive(Stream(body(part("video", b"\x00\xff" * 400, "x.mp4"))), tmp_path / "v")
    assert form.file_name is None and form.fields == {"video": ""}
    with pytest.raises(PayloadTooLarge):  # and it counts against the upload limit
        receive(Stream(body(part("video", b"v" * 20_000, "x.mp4"))), tmp_path / "v")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (body(part("file", b"abc", "a")), None),
        (body(part("file", b"abc", "a"), close=False), "before its closing boundary"),
        (body(part("file", b"a", "a"), part("file", b"b", "b")), "only one 'file'"),
        (body(part("mode", b"ui"), part("mode", b"ui")), "given twice"),
        (body(*(part(f"f{i}", b"1") for i in range(5))), "too many form parts"),
        (
            b"--" + BOUNDARY.encode() + b"\r\nContent-Type: text/plain\r\n\r\nx\r\n--" + BOUNDARY.encode() + b"--",
            "name=",
        ),
        (b"garbage without a boundary at all", "malformed"),
    ],
)
def test_malformed_bodies(tmp_path: Path, data: bytes, message: str | None) -> None:
    if message is None:
        assert receive(Stream(data), tmp_path / "v").file_bytes == 3
        return
    with pytest.raises(BadRequest, match=message):
        receive(Stream(data), tmp_path / "v")


def test_content_type_needs_a_boundary(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="boundary"):
        asyncio.run(
            receive_multipart(
                Stream(b"").__aiter__(),
                "multipart/form-data",
                tmp_path / "v",
                max_file_bytes=1,
                max_field_bytes=1,
                field_names=FIELDS,
            )
        )


def test_read_limited() -> None:
    assert asyncio.run(read_limited(Stream(b"x" * 5000).__aiter__(), 5000)) == b"x" * 5000
    endless = Stream(b"", then_forever=True)
    with pytest.raises(PayloadTooLarge, match="JSON body"):
        asyncio.run(read_limited(endless.__aiter__(), 5000, "JSON body"))
    assert endless.pulled == 6000
