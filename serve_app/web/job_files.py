"""A job's files for the page and the exports: its kept video, thumbnails, contact sheet and chapters, and
the playback cookie that lets a browser load the video and images by URL (serve_app.http.media_token).

The video is served by Starlette's `FileResponse`, which answers `Range` requests (206 with
`Content-Range`, `Accept-Ranges: bytes`, `If-Range`, 416 past the end): a player seeks a long recording
without downloading it. On a folder store the file is served where it is; on an object store it is copied
once into this node's media cache (serve_app.store.media) and served from there.

The functions that touch the store block: the ingress runs them in a thread.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from serve_app.analysis.chapters import chapters_from, to_markdown, to_webvtt_chapters
from serve_app.config import SecuritySettings
from serve_app.errors import JobAssetMissing
from serve_app.http.auth import ApiKeys
from serve_app.http.media_token import COOKIE, MediaTokens, asset_job
from serve_app.schemas import Job, Thumbnail, VideoAnalysis
from serve_app.store.jobs import JobStore
from serve_app.store.media import MediaCache, media_path
from serve_app.video.thumbnails import contact_sheet, sheet_tiles

__all__ = [
    "IMMUTABLE_HEADERS",
    "Playback",
    "Thumbnail",
    "chapters_response",
    "contact_sheet_jpeg",
    "cookie_opens",
    "load_thumbnail",
    "media_response",
    "media_tokens",
    "media_type",
    "playback_response",
    "thumbnails",
]

#: FFmpeg's container names (`VideoInfo.container`) to the MIME type a browser decides playability by.
_MIME = {
    "mov,mp4,m4a,3gp,3g2,mj2": "video/mp4",
    "matroska,webm": "video/webm",
    "avi": "video/x-msvideo",
    "mpegts": "video/mp2t",
    "ogg": "video/ogg",
}
#: A job's stored video and thumbnails never change: a browser may keep them (privately).
IMMUTABLE_HEADERS = {"Cache-Control": "private, max-age=86400, immutable", "X-Content-Type-Options": "nosniff"}


class Playback(BaseModel):
    expires_in_s: float | None = Field(
        description="Seconds the playback cookie is valid (renew before); null when the API needs no key."
    )


# -- the playback cookie --------------------------------------------------------------
def media_tokens(api_keys: ApiKeys | None, security: SecuritySettings) -> MediaTokens | None:
    """The ingress's token issuer: None when auth is disabled (the files are as open as the API)."""
    if api_keys is None:
        return None
    return MediaTokens(api_keys.derive_secret(b"media-token"), security.media_token_ttl_s)


def cookie_opens(tokens: MediaTokens | None, request: Request, path: str) -> bool:
    """A GET/HEAD of a job's video or images that carries that job's valid playback cookie."""
    job_id = asset_job(path)
    return (
        tokens is not None
        and job_id is not None
        and request.method in ("GET", "HEAD")
        and tokens.allows(request.cookies.get(COOKIE), job_id)
    )


def playback_response(tokens: MediaTokens | None, request: Request, job_id: str) -> Response:
    if tokens is None:
        return JSONResponse(Playback(expires_in_s=None).model_dump())
    response = JSONResponse(Playback(expires_in_s=tokens.ttl_s).model_dump())
    root = request.scope.get("root_path", "").rstrip("/")
    https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        COOKIE,
        tokens.issue(job_id),
        max_age=int(tokens.ttl_s),
        path=f"{root}/v1/jobs/{job_id}/",  # this job's files only
        httponly=True,  # no script reads it: an injected one cannot take it elsewhere
        samesite="strict",  # never sent by another site's page
        secure=https,
    )
    return response


# -- the video ------------------------------------------------------------------------
def media_type(container: str) -> str:
    return _MIME.get(container, "application/octet-stream")


def media_response(store: JobStore, job: Job, cache: MediaCache) -> FileResponse:
    if not store.has_media(job.id):
        why = "it is not kept (jobs.keep_media)" if job.status == "succeeded" else f"the job is {job.status}"
        raise JobAssetMissing(f"job {job.id} has no video to play: {why}")
    path = media_path(store.media_uri(job.id), cache)
    return FileResponse(
        path, media_type=media_type(job.video.container if job.video else ""), headers=IMMUTABLE_HEADERS
    )


# -- thumbnails and the contact sheet ---------------------------------------------------
def thumbnails(store: JobStore, job_id: str, base: str) -> list[Thumbnail]:
    return [
        Thumbnail(time_s=millis / 1000, url=f"{base}/thumbnails/{millis}.jpg")
        for millis in store.thumbnail_times(job_id)
    ]


def load_thumbnail(store: JobStore, job_id: str, millis: int) -> bytes:
    data = store.load_thumbnail(job_id, millis)
    if data is None:
        raise JobAssetMissing(f"job {job_id} has no thumbnail at {millis} ms")
    return data


def contact_sheet_jpeg(store: JobStore, job: Job) -> bytes:
    """The job's kept frames in one image, each with its time (only the tiles shown are read)."""
    picked = sheet_tiles(store.thumbnail_times(job.id))
    if not picked:
        raise JobAssetMissing(f"job {job.id} has no thumbnails (no chunk of it was decoded yet)")
    tiles = [(millis / 1000, load_thumbnail(store, job.id, millis)) for millis in picked]
    duration = f", {job.video.duration_s:.1f} s" if job.video else ""
    return contact_sheet(tiles, title=f"{job.source}{duration}")


# -- chapters ---------------------------------------------------------------------------
def chapters_response(result: VideoAnalysis, fmt: str) -> Response:
    chapters = chapters_from(result.timeline, result.video.duration_s)
    if fmt == "json":
        return JSONResponse([c.model_dump(mode="json") for c in chapters])
    if fmt == "vtt":
        return Response(to_webvtt_chapters(chapters), media_type="text/vtt; charset=utf-8")
    return Response(to_markdown(chapters), media_type="text/markdown; charset=utf-8")
