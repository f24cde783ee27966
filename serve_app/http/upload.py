"""Reading request bodies under a size limit, while they stream in.

`receive_multipart` parses `multipart/form-data` incrementally
(python-multipart's `MultipartParser`): the file part is written to its
destination as it arrives, the small option fields are kept in memory, and
the moment the file crosses `max_file_bytes` (or a field `max_field_bytes`)
it raises `PayloadTooLarge` and stops pulling from the stream, so the rest
of the body is never read. `read_limited` does the same for a plain body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from serve_app.errors import BadRequest, PayloadTooLarge

__all__ = ["MultipartForm", "read_limited", "receive_multipart"]


@dataclass
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None  # the client's file name; None = no file part arrived
    file_bytes: int = 0  # size of the kept file part


async def read_limited(stream: AsyncIterator[bytes], max_bytes: int, what: str = "request body") -> bytes:
    """The whole body, or `PayloadTooLarge` as soon as it exceeds `max_bytes`."""
    body = bytearray()
    async for block in stream:
        body += block
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"{what} is larger than the limit of {max_bytes} bytes")
    return bytes(body)


class _Parser:
    """python-multipart callbacks that route the file part to disk and fields to memory."""

    def __init__(
        self, out: BinaryIO, file_field: str, max_file_bytes: int, max_field_bytes: int, max_parts: int
    ) -> None:
        self.out = out
        self.file_field = file_field
        self.max_file_bytes = max_file_bytes
        self.max_field_bytes = max_field_bytes
        self.max_parts = max_parts
        self.form = MultipartForm()
        self.parts = 0
        self.file_part_bytes = 0  # the kept file and any stray file parts: all count against the limit
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name: str | None = None
        self._value = bytearray()
        self._to_file = False
        self._skip = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.max_parts:
            raise BadRequest(f"too many form parts (at most {self.max_parts})")
        self._disposition = b""
        self._name = None
        self._value.clear()
        self._to_file = False
        self._skip = False

    def header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        kind, params = parse_options_header(self._disposition)
        name = params.get(b"name")
        if kind != b"form-data" or name is None:
            raise BadRequest("every form part needs 'Content-Disposition: form-data; name=...'")
        self._name = name.decode("utf-8", "replace")
        if self._name == self.file_field:
            if self.form.file_name is not None:
                raise BadRequest(f"only one '{self.file_field}' part is accepted")
            self.form.file_name = params.get(b"filename", b"").decode("utf-8", "replace")
            self._to_file = True
        elif self._name in self.form.fields:
            raise BadRequest(f"form field {self._name!r} is given twice")
        elif b"filename" in params:  # a file under another name: reported as an unknown field, not kept
            self._skip = True

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._to_file or self._skip:
            self.file_part_bytes += end - start
            if self.file_part_bytes > self.max_file_bytes:
                raise PayloadTooLarge(f"upload is larger than the limit of {self.max_file_bytes} bytes")
            if self._to_file:
                self.form.file_bytes += end - start
                self.out.write(data[start:end])
        else:
            self._value.extend(data[start:end])
            if len(self._value) > self.max_field_bytes:
                raise PayloadTooLarge(f"form field {self._name!r} is larger than {self.max_field_bytes} bytes")

    def part_end(self) -> None:
        if not self._to_file and self._name is not None:
            self.form.fields[self._name] = self._value.decode("utf-8", "replace")

    def end(self) -> None:
        self.ended = True


async def receive_multipart(
    stream: AsyncIterator[bytes],
    content_type: str,
    dest: Path,
    *,
    max_file_bytes: int,
    max_field_bytes: int,
    field_names: Collection[str],
    file_field: str = "file",
) -> MultipartForm:
    """Stream a multipart body: part `file_field` to `dest`, up to `len(field_names)` text fields to memory.

    Raises `PayloadTooLarge` the moment a limit is crossed (the stream is not read further) and
    `BadRequest` for a malformed body. Unknown field names are returned for the caller to judge.
    """
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadRequest("multipart/form-data needs a boundary parameter")
    with dest.open("wb") as out:
        handler = _Parser(out, file_field, max_file_bytes, max_field_bytes, max_parts=len(field_names) + 1)
        parser = MultipartParser(boundary, handler.callbacks())  # type: ignore[arg-type]
        try:
            async for block in stream:
                parser.write(block)
                if handler.ended:
                    break
            parser.finalize()
        except MultipartParseError as exc:
            raise BadRequest(f"malformed multipart body: {exc}") from None
    if not handler.ended:
        raise BadRequest("the multipart body ended before its closing boundary")
    return handler.form
