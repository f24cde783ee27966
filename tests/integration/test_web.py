"""The web page in a real headless browser (Debian's chromium, driven by Playwright), and the job files it
uses over real HTTP: the kept video with range requests, thumbnails, contact sheet, chapter exports, and
the playback cookie that opens them to <video>/<img> without the API key in a URL.

The module's job is submitted through the page (a file upload, as a user does it); the HTTP tests read the
same job. The screenshot of the result view is written under pytest's temporary folder (its path is in
the test's log) and, when REELSERVE_TEST_ARTIFACTS names a folder (CI), there too.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import webvtt
from PIL import Image

from serve_app.analysis.chapters import chapters_from
from serve_app.config import Settings, job_store_uri
from serve_app.http.media_token import COOKIE
from serve_app.schemas import VideoAnalysis
from serve_app.store.jobs import JobStore
from tests.conftest import Meeting
from tests.integration.jobs_client import submit, wait_for

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

CHROMIUM = shutil.which("chromium")
ARTIFACTS_ENV = "REELSERVE_TEST_ARTIFACTS"


@dataclass
class PageJob:
    job_id: str
    chapters: list[tuple[float, str]]  # (data-start, text) of the rendered chapter buttons
    thumbs: int  # thumbnails rendered and loaded
    frame_t: float  # where the player was before the chapter click (the last thumbnail's time)
    seeked_to: float  # the player's currentTime after clicking the last chapter
    highlighted: str | None  # the transcript line marked current after clicking the second line
    duration: float  # the player's duration: the video loaded through the media route
    screenshot: Path


def wait_until(page, expression: str, timeout_s: float = 60) -> None:
    """Poll `expression` in the page until it is true. Not `page.wait_for_function`: that evaluates a string
    in the page with eval(), which the page's own Content-Security-Policy forbids (as it should)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"never true in the page: {expression}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def page_job(
    server: str, api_key: str, meeting: Meeting, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PageJob]:
    """Upload the generated meeting (40 s, speech, two chunks) through the page in `meeting` mode, wait for the
    result view, click the last chapter, then the second transcript line."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make setup installs it with apt-get as root)")
    from playwright.sync_api import expect, sync_playwright

    shot = tmp_path_factory.mktemp("web") / "result-view.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server}/")
            # The app requires a key: the page asks for it (the jobs list got a 401).
            dialog = page.get_by_role("dialog", name="API key")
            expect(dialog).to_be_visible(timeout=30_000)
            page.get_by_label("Key", exact=True).fill(api_key)
            page.get_by_role("button", name="Use this key").click()
            expect(dialog).to_be_hidden()

            page.get_by_label("Video file").set_input_files(meeting.path)
            page.get_by_label("Mode", exact=True).select_option("meeting")
            page.get_by_role("button", name="Analyze", exact=True).click()
            expect(page.locator("#progress")).to_be_visible()
            expect(page.locator("#result")).to_be_visible(timeout=300_000)
            job_id = page.locator("#result").get_attribute("data-job")

            buttons = page.locator("#chapters button")
            expect(buttons.first).to_be_visible()
            chapters = [
                (float(b.get_attribute("data-start")), b.inner_text()) for b in buttons.all()
            ]  # fmt: skip
            thumbs = page.locator("#thumbs img")
            expect(thumbs.first).to_be_visible()
            wait_until(
                page, "[...document.querySelectorAll('#thumbs img')].every(i => i.complete && i.naturalWidth > 0)"
            )
            wait_until(page, "document.getElementById('player').readyState >= 1")
            duration = page.evaluate("document.getElementById('player').duration")

            # First move the player away with the last frame of the strip (frames seek too), so the chapter
            # click below must move it, whatever the chapter's start (the tiny model's may all be at 0).
            frame = page.locator("#thumbs button").last
            frame_t = float(frame.get_attribute("data-time"))
            frame.click()
            wait_until(page, f"Math.abs(document.getElementById('player').currentTime - {frame_t}) < 0.25")
            last = buttons.last
            target = float(last.get_attribute("data-start"))
            last.focus()
            page.keyboard.press("Enter")  # keyboard, as a keyboard user does it
            wait_until(page, f"Math.abs(document.getElementById('player').currentTime - {target}) < 0.25")
            seeked = page.evaluate("document.getElementById('player').currentTime")

            line = page.locator("#transcript li").nth(1)
            line.get_by_role("button").click()
            wait_until(
                page, "document.querySelector('#transcript li:nth-child(2)').getAttribute('aria-current') === 'true'"
            )
            highlighted = line.inner_text()
            page.screenshot(path=shot, full_page=True)
            if os.environ.get(ARTIFACTS_ENV):
                Path(os.environ[ARTIFACTS_ENV]).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(os.environ[ARTIFACTS_ENV]) / shot.name)
            logger.info("screenshot of the result view: %s", shot)
            assert errors == [], f"the page raised: {errors}"
            yield PageJob(job_id, chapters, thumbs.count(), frame_t, seeked, highlighted, duration, shot)
        finally:
            browser.close()


def test_the_page_uploads_follows_and_shows_a_seekable_result(page_job: PageJob, http: httpx.Client) -> None:
    result = VideoAnalysis.model_validate(http.get(f"/v1/jobs/{page_job.job_id}/result").json())
    expected = chapters_from(result.timeline, result.video.duration_s)
    assert [start for start, _ in page_job.chapters] == [c.start_s for c in expected]
    assert all(c.title in text for (_, text), c in zip(page_job.chapters, expected, strict=True))
    assert abs(page_job.frame_t - expected[-1].start_s) > 1, "the chapter click had to move the player"
    assert page_job.seeked_to == pytest.approx(expected[-1].start_s, abs=0.25)
    assert page_job.duration == pytest.approx(result.video.duration_s, abs=0.5)
    listed = http.get(f"/v1/jobs/{page_job.job_id}/thumbnails").json()
    assert page_job.thumbs == len(listed) >= 3
    second = result.transcript.segments[1]
    assert page_job.highlighted is not None and second.text.strip() in page_job.highlighted
    with Image.open(page_job.screenshot) as shot:
        assert shot.format == "PNG" and shot.width == 1280


def test_media_range_requests_return_the_right_bytes(page_job: PageJob, http: httpx.Client, meeting: Meeting) -> None:
    original = meeting.path.read_bytes()
    url = f"/v1/jobs/{page_job.job_id}/media"
    whole = http.get(url)
    assert whole.status_code == 200 and whole.content == original, "the kept video is the upload"
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "video/mp4"
    part = http.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == original[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(original)}"
    tail = http.get(url, headers={"Range": "bytes=-64"})
    assert tail.status_code == 206 and tail.content == original[-64:]
    beyond = http.get(url, headers={"Range": f"bytes={len(original) + 10}-"})
    assert beyond.status_code == 416


def test_the_playback_cookie_opens_only_its_jobs_video_and_images(
    page_job: PageJob, http: httpx.Client, server: str, settings: Settings
) -> None:
    job_id = page_job.job_id
    media, result = f"/v1/jobs/{job_id}/media", f"/v1/jobs/{job_id}/result"
    thumb = http.get(f"/v1/jobs/{job_id}/thumbnails").json()[0]["url"]
    with httpx.Client(base_url=server, timeout=60) as anonymous:
        refused = anonymous.get(media, headers={"Range": "bytes=0-9"})
        assert refused.status_code == 401 and refused.json()["type"].endswith("/unauthorized")
        assert anonymous.post(f"/v1/jobs/{job_id}/playback").status_code == 401, "a cookie needs the key"

    playback = http.post(f"/v1/jobs/{job_id}/playback")
    assert playback.status_code == 200
    assert playback.json() == {"expires_in_s": settings.security.media_token_ttl_s}
    set_cookie = playback.headers["set-cookie"]
    assert f"Path=/v1/jobs/{job_id}/" in set_cookie and "HttpOnly" in set_cookie
    assert "samesite=strict" in set_cookie.lower()
    token = playback.cookies[COOKIE]
    assert token.startswith(f"{job_id}.") and settings.security.api_keys.get_secret_value() not in set_cookie

    with httpx.Client(base_url=server, timeout=60, cookies={COOKIE: token}) as browser_like:
        assert browser_like.get(media, headers={"Range": "bytes=0-9"}).status_code == 206
        image = browser_like.get(thumb)
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert browser_like.get(f"/v1/jobs/{job_id}/contact-sheet.jpg").status_code == 200
        assert browser_like.get(result).status_code == 401, "no JSON with a playback cookie"
        assert browser_like.get(f"/v1/jobs/{job_id}/events").status_code == 401
        assert browser_like.get("/v1/jobs/ffffffffffff000000000000/media").status_code == 401, "another job's"
    with httpx.Client(base_url=server, timeout=60, cookies={COOKIE: token[:-2] + "xx"}) as forged:
        assert forged.get(media).status_code == 401


def test_thumbnails_are_the_kept_frames_on_the_store(page_job: PageJob, http: httpx.Client, settings: Settings) -> None:
    job_id = page_job.job_id
    result = VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job_id}/result").json())
    store = JobStore(job_store_uri(settings))
    _, plans, _ = store.load_plan(job_id)
    core = {p.index: (p.core_start_s, p.core_end_s) for p in plans}
    expected = sorted(
        {
            round(t * 1000)
            for chunk in result.chunks
            for t in chunk.frame_times_s[:: 2 if chunk.decode and chunk.decode.sampling == "adaptive" else 1]
            if core[chunk.index][0] <= t < core[chunk.index][1]
        }
    )
    listed = http.get(f"/v1/jobs/{job_id}/thumbnails").json()
    assert [round(t["time_s"] * 1000) for t in listed] == expected
    assert store.has_media(job_id), "a succeeded job keeps its video for the player (jobs.keep_media)"
    one = http.get(listed[1]["url"])
    assert one.status_code == 200 and one.headers["cache-control"].startswith("private")
    with Image.open(io.BytesIO(one.content)) as image:
        assert image.format == "JPEG" and max(image.size) <= 160
    missing = http.get(f"/v1/jobs/{job_id}/thumbnails/999999999.jpg")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/asset-not-found")
    sheet = http.get(f"/v1/jobs/{job_id}/contact-sheet.jpg")
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(sheet.content)) as image:
        columns = min(6, len(listed))
        assert image.width == columns * (160 + 6) + 6


def test_chapter_exports(page_job: PageJob, http: httpx.Client) -> None:
    job_id = page_job.job_id
    result = VideoAnalysis.model_validate(http.get(f"/v1/jobs/{job_id}/result").json())
    expected = chapters_from(result.timeline, result.video.duration_s)
    as_json = http.get(f"/v1/jobs/{job_id}/chapters.json")
    assert as_json.status_code == 200 and as_json.json() == [c.model_dump(mode="json") for c in expected]
    vtt = http.get(f"/v1/jobs/{job_id}/chapters.vtt")
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    cues = webvtt.from_buffer(io.StringIO(vtt.text)).captions
    assert [(round(c.start_in_seconds, 1), c.text) for c in cues] == [
        (round(c.start_s, 1), c.title) for c in expected
    ]  # fmt: skip
    md = http.get(f"/v1/jobs/{job_id}/chapters.md")
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert len(md.text.splitlines()) == len(expected)
    assert all(re.fullmatch(r"- \[\d\d:\d\d\] .+", line) for line in md.text.splitlines())
    assert http.get(f"/v1/jobs/{job_id}/chapters.txt").status_code == 422


def test_the_page_and_its_assets_are_public_and_locked_down(server: str) -> None:
    with httpx.Client(base_url=server, timeout=60) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert 'src="web/app.js"' in page.text
        for asset, kind in (("/web/app.js", "javascript"), ("/web/app.css", "text/css")):
            response = anonymous.get(asset)
            assert response.status_code == 200 and kind in response.headers["content-type"], asset
        assert anonymous.get("/v1/jobs").status_code == 401, "the page is public, the API is not"


def test_a_running_jobs_files_and_a_cancelled_jobs_video(http: httpx.Client, clip_280s_mp4: Path) -> None:
    """While it runs: thumbnails and the video, no chapters yet. Once cancelled: no video (not kept)."""
    missing = http.get("/v1/jobs/ffffffffffff000000000000/media")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/job-not-found")
    response = submit(http, clip_280s_mp4, mode="ui", chunk_s=2, overlap_s=0, aggregate="false")
    job_id = response.json()["id"]
    try:
        wait_for(http, job_id, lambda j: j["progress"]["chunks_done"] >= 1)
        early = http.get(f"/v1/jobs/{job_id}/chapters.md")
        assert early.status_code == 409 and early.json()["type"].endswith("/job-conflict")
        assert http.get(f"/v1/jobs/{job_id}/thumbnails").json(), "thumbnails arrive with the chunks"
        assert http.get(f"/v1/jobs/{job_id}/media", headers={"Range": "bytes=0-9"}).status_code == 206
    finally:
        http.delete(f"/v1/jobs/{job_id}")
    gone = http.get(f"/v1/jobs/{job_id}/media")
    assert gone.status_code == 404 and gone.json()["type"].endswith("/asset-not-found")
