"""Playback cookies: short-lived, signed and scoped to one job, for what a browser loads by URL.

`<video src>` and `<img src>` cannot send an `Authorization` header, and the API key must never be put in a
URL (it would land in access logs, history and Referer headers). So the web page, which holds the key and
sends it as a header, asks `POST /v1/jobs/<id>/playback` for a cookie:

    reelserve_media=<job id>.<expires>.<mac>; Path=<root>/v1/jobs/<id>/; Max-Age=<ttl>; HttpOnly;
    SameSite=Strict (+ Secure over https)

`mac` is HMAC-SHA256 of "<job id>.<expires>" under a secret derived from the configured API keys
(`ApiKeys.derive_secret`): every ingress replica has the same keys, so any replica checks what another
issued, there is nothing new to configure, and rotating the keys invalidates the cookies. A cookie opens
only GET/HEAD of its own job's media and images (`asset_job`) until it expires: nothing that changes
state, no JSON. The page renews it while the player is open (`security.media_token_ttl_s`).

The alternative, fetch() → Blob → object URL, needs no cookie, but holds the whole video in the page's
memory before it plays, and an object URL has no range requests: seeking a long recording would wait for
all of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time

__all__ = ["COOKIE", "MediaTokens", "asset_job"]

COOKIE = "reelserve_media"
#: The routes a playback cookie opens: a job's video, its thumbnails and its contact sheet.
_ASSET = re.compile(r"/v1/jobs/(?P<job>[0-9A-Za-z]{1,64})/(?:media|thumbnails/\d{1,12}\.jpg|contact-sheet\.jpg)")


def asset_job(path: str) -> str | None:
    """The job whose asset `path` (without the root path) is, or None when it is not an asset route."""
    match = _ASSET.fullmatch(path)
    return match["job"] if match else None


class MediaTokens:
    """Issues and checks playback tokens under one secret."""

    def __init__(self, secret: bytes, ttl_s: float) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, job_id: str, expires: int) -> str:
        digest = hmac.new(self._secret, f"{job_id}.{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, job_id: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_s)
        return f"{job_id}.{expires}.{self._mac(job_id, expires)}"

    def allows(self, token: str | None, job_id: str, now: float | None = None) -> bool:
        """True when `token` was issued for `job_id` under this secret and has not expired."""
        parts = (token or "").split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        job, expires, mac = parts[0], int(parts[1]), parts[2]
        if not hmac.compare_digest(mac, self._mac(job, expires)):
            return False
        return job == job_id and (time.time() if now is None else now) < expires
