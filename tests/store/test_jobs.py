"""The durable job store (pure; local filesystem)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from serve_app.schemas import AnalyzeOptions, Job
from serve_app.store.jobs import JobStore, new_job_id


def make_job(store: JobStore, status: str = "queued") -> Job:
    now = time.time()
    job = Job(id=new_job_id(), status=status, created_at=now, updated_at=now, request=AnalyzeOptions(), source="upload")
    time.sleep(0.002)  # ids start with the creation time in ms
    return store.save(job)


def test_list_is_newest_first_and_bounded(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    jobs = [make_job(store) for _ in range(5)]
    assert [j.id for j in store.list(limit=2)] == [jobs[4].id, jobs[3].id]
    assert [j.id for j in store.list()] == [j.id for j in reversed(jobs)]


def test_ids_from_urls_cannot_walk_the_store(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    assert store.get("../../etc") is None
    with pytest.raises(KeyError):
        store.load_result("..")


def test_idempotency_keys_map_to_job_ids(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    job = make_job(store)
    assert store.job_for_key("k-1") is None
    store.remember_key("k-1", job.id)
    assert store.job_for_key("k-1") == job
