"""Playback tokens (pure): signed, job-scoped, expiring; and the asset routes a cookie may open."""

from __future__ import annotations

import pytest

from serve_app.http.auth import ApiKeys
from serve_app.http.media_token import MediaTokens, asset_job

KEYS = ApiKeys(["first-key-0123456789", "second-key-0123456789"])
JOB = "0190f3a2b4c5aabbccddeeff"


def tokens(keys: ApiKeys = KEYS, ttl_s: float = 60) -> MediaTokens:
    return MediaTokens(keys.derive_secret(b"media-token"), ttl_s)


def test_a_token_opens_its_own_job_until_it_expires() -> None:
    token = tokens().issue(JOB, now=1000.0)
    assert tokens().allows(token, JOB, now=1059.0), "another replica with the same keys accepts it"
    assert not tokens().allows(token, JOB, now=1060.0), "expired"
    assert not tokens().allows(token, "0190f3a2b4c5000000000000", now=1001.0), "another job"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace(JOB, "0190f3a2b4c5000000000000"),  # someone else's job, same mac
        lambda t: t.split(".")[0] + ".99999999999." + t.split(".")[2],  # a later expiry
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # a forged mac
        lambda t: "",
        lambda t: "a.b",
        lambda t: None,
    ],
)
def test_tampered_tokens_are_refused(tamper) -> None:
    token = tokens().issue(JOB, now=1000.0)
    assert not tokens().allows(tamper(token), JOB, now=1001.0)
    assert not tokens().allows(tamper(token), "0190f3a2b4c5000000000000", now=1001.0)


def test_rotated_keys_invalidate_tokens() -> None:
    token = tokens().issue(JOB, now=1000.0)
    rotated = ApiKeys(["second-key-0123456789", "third-key-0123456789"])
    assert not tokens(rotated).allows(token, JOB, now=1001.0)
    assert KEYS.derive_secret(b"media-token") != KEYS.derive_secret(b"other-purpose")


def test_only_a_jobs_video_and_images_are_asset_routes() -> None:
    assert asset_job(f"/v1/jobs/{JOB}/media") == JOB
    assert asset_job(f"/v1/jobs/{JOB}/thumbnails/1500.jpg") == JOB
    assert asset_job(f"/v1/jobs/{JOB}/contact-sheet.jpg") == JOB
    for path in (
        f"/v1/jobs/{JOB}/result",
        f"/v1/jobs/{JOB}",
        f"/v1/jobs/{JOB}/events",
        f"/v1/jobs/{JOB}/thumbnails",
        f"/v1/jobs/{JOB}/transcript.vtt",
        f"/v1/jobs/{JOB}/media/../result",
        "/v1/jobs",
        "/v1/search",
    ):
        assert asset_job(path) is None, path
