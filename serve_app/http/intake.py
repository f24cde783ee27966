"""Request intake for `/v1/analyze` and `/v1/jobs`: the video (multipart upload or URL fetch) and its options.

The video is written to a given path as it streams in, within `video.max_upload_bytes`; options are
validated (as a whole, with the cheap custom-schema checks) before the model is ever asked.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import Request
from pydantic import ValidationError

from serve_app.analysis import check_custom_schema
from serve_app.analysis.modes import MAX_CUSTOM_SCHEMA_DEPTH, json_nesting, schema_depth_message
from serve_app.config import Settings
from serve_app.errors import BadRequest, EmptyUpload, PayloadTooLarge
from serve_app.http.fetch import UrlPolicy, fetch_url
from serve_app.http.problems import OptionsError
from serve_app.http.upload import read_limited, receive_multipart
from serve_app.schemas import AnalyzeOptions, AnalyzeUrlRequest
from serve_app.video.chunking import chunking_options

__all__ = ["ANALYZE_BODY", "FORM_FIELDS", "Intake", "options_from_form", "receive_video"]

FORM_FIELDS = (
    "mode",
    "prompt",
    "schema",
    "fps",
    "sampling",
    "chunk_s",
    "overlap_s",
    "max_tokens",
    "aggregate",
    "audio",
    "language",
)


@dataclass(frozen=True)
class Intake:
    options: AnalyzeOptions
    source: Literal["upload", "url"]


def options_from_form(fields: dict[str, Any]) -> AnalyzeOptions:
    unknown = sorted(set(fields) - set(FORM_FIELDS))
    if unknown:
        raise OptionsError([{"loc": [name], "msg": "unknown form field"} for name in unknown])
    data: dict[str, Any] = {k: v for k, v in fields.items() if isinstance(v, str) and v != ""}
    if "schema" in data:
        depth, _ = json_nesting(data["schema"])  # before json.loads: a deep text would recurse in it
        if depth > MAX_CUSTOM_SCHEMA_DEPTH:
            raise OptionsError([{"loc": ["schema"], "msg": schema_depth_message(depth)}])
        try:
            data["schema"] = json.loads(data["schema"])
        except json.JSONDecodeError as exc:
            raise OptionsError([{"loc": ["schema"], "msg": f"not JSON: {exc.msg}"}]) from None
    try:
        return AnalyzeOptions.model_validate(data)
    except ValidationError as exc:
        raise OptionsError(exc.errors()) from None


def _bound_body_nesting(raw: bytes) -> None:
    """Refuse a JSON body nested deeper than a custom schema may be, before the (recursive) parser sees it.

    The body is one object, so its members sit one level below it: a schema of the maximal depth fits.
    """
    depth, key = json_nesting(raw.decode("utf-8", "replace"))
    if depth - 1 > MAX_CUSTOM_SCHEMA_DEPTH:
        loc = [key] if key is not None else []
        msg = (
            schema_depth_message(depth - 1)
            if key == "schema"
            else f"nests {depth - 1} levels deep; only 'schema' may nest (at most {MAX_CUSTOM_SCHEMA_DEPTH} levels)"
        )
        raise OptionsError([{"loc": loc, "msg": msg}])


async def receive_video(
    request: Request,
    dest: Path,
    settings: Settings,
    url_policy: UrlPolicy,
    check_schema: Callable[[dict[str, Any]], Awaitable[None]],
) -> Intake:
    """Store the request's video at `dest` and return its validated options.

    `check_schema` asks the engine whether it can enforce a custom schema (after the cheap local checks).
    """
    limit = settings.video.max_upload_bytes
    options_limit = settings.security.max_options_bytes
    content_type = request.headers.get("content-type", "")
    declared = request.headers.get("content-length", "")
    if content_type.startswith("application/json"):
        raw = await read_limited(request.stream(), options_limit, "JSON body")
        _bound_body_nesting(raw)
        try:
            body = AnalyzeUrlRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise OptionsError(exc.errors()) from None
        chunking_options(body, settings.video)  # chunk length and overlap together, before the download
        if body.json_schema is not None:
            check_custom_schema(body.json_schema)  # cheap checks before the download
        await fetch_url(
            body.video_url, dest, max_bytes=limit, timeout_s=settings.serve.url_timeout_s, policy=url_policy
        )
        options = AnalyzeOptions.model_validate(body.model_dump(exclude={"video_url"}, by_alias=True))
        source: Literal["upload", "url"] = "url"
    elif content_type.startswith("multipart/form-data"):
        # Refuse before reading when the size is declared; otherwise the parser stops at the limit.
        if declared.isdigit() and int(declared) > limit + options_limit * len(FORM_FIELDS):
            raise PayloadTooLarge(f"upload is {declared} bytes; the limit is {limit}")
        form = await receive_multipart(
            request.stream(),
            content_type,
            dest,
            max_file_bytes=limit,
            max_field_bytes=options_limit,
            field_names=FORM_FIELDS,
        )
        if form.file_name is None:
            raise BadRequest("multipart upload needs the video in the form field 'file'")
        options = options_from_form(form.fields)
        if form.file_bytes == 0:
            raise EmptyUpload("the uploaded file is empty")
        source = "upload"
    else:
        raise BadRequest("send multipart/form-data with a 'file' field, or application/json with 'video_url'")
    chunking_options(options, settings.video)  # InvalidOptions (422) when chunk length and overlap clash
    if options.json_schema is not None:
        check_custom_schema(options.json_schema)
        await check_schema(options.json_schema)
    return Intake(options=options, source=source)


#: OpenAPI request body of `/v1/analyze` and `/v1/jobs` (the route reads the body itself, as it streams).
ANALYZE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **{name: {"type": "string"} for name in FORM_FIELDS},
                    },
                }
            },
            "application/json": {"schema": AnalyzeUrlRequest.model_json_schema(by_alias=True)},
        },
    }
}
