"""The web page at `/`: submit a video, follow the job, then watch it with its chapters, frames and words.

Plain HTML, CSS and JavaScript in `static/` (shipped as package data), no build step: the page is one
form, a list and a result view, and every part of it is standard DOM. The page is public (it holds no
data); everything it shows comes from the API with the key it asks for on a 401 (kept in sessionStorage,
sent as `Authorization`, never put in a URL). The video and images, which the browser loads by URL, go
with a playback cookie (serve_app.http.media_token).

`job_files` serves what the page plays and shows, from the job store: the kept video (HTTP range
requests), the thumbnails, the contact sheet, the chapters.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["PAGE_HEADERS", "STATIC_DIR", "page", "static_files"]

STATIC_DIR = Path(__file__).parent / "static"

#: The page loads only its own script, styles, media and images: injected markup cannot load or run more.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: "
    "data:; media-src 'self'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def static_files() -> StaticFiles:
    """The page's script and stylesheet, mounted at `/web` (outside the API's auth dependency: public)."""
    return StaticFiles(directory=STATIC_DIR)
