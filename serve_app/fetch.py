"""Fetching a video by URL into the media store, with scheme, size and time limits.

httpx errors are translated here into `UrlFetchFailed` / `PayloadTooLarge`.
The size limit is enforced while streaming; the whole download must finish
within `timeout_s`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from serve_app.errors import PayloadTooLarge, UrlFetchFailed

ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES or not parts.hostname:
        raise UrlFetchFailed(f"only absolute http(s) URLs are accepted, got {url[:200]!r}")
    return url


async def fetch_url(url: str, dest: Path, *, max_bytes: int, timeout_s: float) -> int:
    """Download `url` to `dest`; returns the byte count. Removes `dest` on failure."""
    check_url(url)
    try:
        async with asyncio.timeout(timeout_s):
            return await _download(url, dest, max_bytes, timeout_s)
    except TimeoutError:
        dest.unlink(missing_ok=True)
        raise UrlFetchFailed(f"fetching {url[:200]} took longer than {timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise UrlFetchFailed(f"could not fetch {url[:200]}: {type(exc).__name__}: {exc}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


async def _download(url: str, dest: Path, max_bytes: int, timeout_s: float) -> int:
    async with (
        httpx.AsyncClient(follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout_s) as client,
        client.stream("GET", url) as response,
    ):
        # Redirect targets must stay http(s) too.
        check_url(str(response.url))
        if response.status_code != 200:
            raise UrlFetchFailed(f"{url[:200]} answered HTTP {response.status_code}")
        declared = int(response.headers.get("content-length") or 0)
        if declared > max_bytes:
            raise PayloadTooLarge(f"{url[:200]} is {declared} bytes; the limit is {max_bytes}")
        size = 0
        with dest.open("wb") as out:
            async for block in response.aiter_bytes(1 << 20):
                size += len(block)
                if size > max_bytes:
                    raise PayloadTooLarge(f"{url[:200]} is larger than the limit of {max_bytes} bytes")
                out.write(block)
        return size
