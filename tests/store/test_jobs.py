"""The durable job store (pure; local filesystem)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serve_app.config import JobSettings
from serve_app.errors import Overloaded
from serve_app.schemas import AnalyzeOptions, ChunkResult, Job
from serve_app.store.files import FileStore
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
    assert store.job_for_key("p1", "k-1") is None
    assert store.claim_key("p1", "k-1", stale_after_s=900)
    assert store.job_for_key("p1", "k-1") is None  # claimed, no job yet
    job = make_job(store)
    store.bind_key("p1", "k-1", job.id)
    assert store.job_for_key("p1", "k-1") == job
    assert not store.claim_key("p1", "k-1", stale_after_s=900)


def test_idempotency_keys_are_scoped_per_principal(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    assert store.claim_key("alice", "same-key", stale_after_s=900)
    assert store.claim_key("bob", "same-key", stale_after_s=900), "another caller's key is not ours"
    with pytest.raises(ValueError):
        store.claim_key("../alice", "same-key", stale_after_s=900)


def test_a_key_claimed_by_concurrent_clients_is_won_once(tmp_path: Path) -> None:
    stores = [JobStore(str(tmp_path / "store")) for _ in range(16)]  # as if on 16 ingress replicas
    barrier = threading.Barrier(len(stores))

    def claim(store: JobStore) -> bool:
        barrier.wait()
        return store.claim_key("p1", "retried-upload", stale_after_s=900)

    with ThreadPoolExecutor(len(stores)) as pool:
        won = list(pool.map(claim, stores))
    assert won.count(True) == 1


def test_released_and_stale_claims_can_be_claimed_again(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    assert store.claim_key("p1", "k", stale_after_s=900)
    store.release_key("p1", "k")  # the request failed: nothing was made
    assert store.claim_key("p1", "k", stale_after_s=900)
    assert not store.claim_key("p1", "k", stale_after_s=900)
    time.sleep(0.05)
    assert store.claim_key("p1", "k", stale_after_s=0.01), "its ingress died mid-intake: the claim is taken over"
    job = make_job(store)
    store.bind_key("p1", "k", job.id)
    time.sleep(0.05)
    assert not store.claim_key("p1", "k", stale_after_s=0.01), "a claim whose job exists never goes stale"


def test_create_if_absent_is_atomic(tmp_path: Path) -> None:
    files = FileStore(str(tmp_path / "files"))
    barrier = threading.Barrier(12)

    def create(n: int) -> bool:
        barrier.wait()
        return files.create("claims/one", f"writer {n}".encode())

    with ThreadPoolExecutor(12) as pool:
        won = list(pool.map(create, range(12)))
    assert won.count(True) == 1
    assert files.read_bytes("claims/one") == f"writer {won.index(True)}".encode()
    assert files.list("claims") == ["claims/one"], "no temporaries left behind"


def test_reservations_hold_the_capacity_under_concurrency(tmp_path: Path) -> None:
    settings = JobSettings(max_running=1, max_queued=2)
    stores = [JobStore(str(tmp_path / "store")) for _ in range(10)]
    barrier = threading.Barrier(len(stores))

    def reserve(store: JobStore) -> str | None:
        barrier.wait()
        try:
            return store.reserve(settings)
        except Overloaded:
            return None

    with ThreadPoolExecutor(len(stores)) as pool:
        got = [job_id for job_id in pool.map(reserve, stores) if job_id]
    assert len(got) == 3 and sorted(got) == stores[0].active_ids()
    with pytest.raises(Overloaded):
        stores[0].check_capacity(settings)
    stores[0].release(got[0])
    stores[0].check_capacity(settings)
    assert stores[0].reserve(settings) not in got


def test_capacity_check_reads_the_active_index_not_the_records(tmp_path: Path, monkeypatch) -> None:
    store = JobStore(str(tmp_path / "store"))
    for _ in range(40):  # finished jobs the check must not read
        make_job(store, status="succeeded")
    queued = make_job(store)
    assert store.rebuild_active_index() == 1 and store.active_ids() == [queued.id]

    def no_record_reads(job_id: str) -> None:
        raise AssertionError("the capacity check read a job record")

    monkeypatch.setattr(store, "get", no_record_reads)
    store.check_capacity(JobSettings(max_running=1, max_queued=1))
    with pytest.raises(Overloaded):
        store.check_capacity(JobSettings(max_running=1, max_queued=0))


def test_chunks_are_numbered_in_finishing_order_and_read_by_number(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    job = make_job(store)
    assert store.next_seq(job.id) == 0 and store.load_chunk_at(job.id, 0) is None
    for seq, index in enumerate([2, 0, 1]):  # chunks finish out of plan order
        result = ChunkResult(index=index, start_s=index, end_s=index + 1, mode="ui", frame_times_s=[])
        store.save_chunk(job.id, seq, result, epoch="e1")
    assert store.next_seq(job.id) == 3
    assert [store.load_chunk_at(job.id, n).result.index for n in range(3)] == [2, 0, 1]
    assert sorted(c.result.index for c in store.load_chunks(job.id)) == [0, 1, 2]
    store.delete(job.id)
    assert store.get(job.id) is None


def test_slots_of_jobs_that_never_appeared_are_freed_by_the_sweep(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    settings = JobSettings(max_running=1, max_queued=0)
    orphan = store.reserve(settings)  # its ingress died before creating the job
    with pytest.raises(Overloaded):
        store.reserve(settings)
    assert store.free_orphan_slots(stale_after_s=900) == 0, "young: its job may still be on its way"
    time.sleep(0.05)
    assert store.free_orphan_slots(stale_after_s=0.01) == 1
    assert store.reserve(settings) != orphan


def test_thumbnails_are_stored_by_time_and_listed_in_order(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "store"))
    job = make_job(store)
    for t in (12.5, 0.0, 3.25, 3.25):  # a retried chunk writes its thumbnails again: same keys
        store.save_thumbnail(job.id, t, f"jpeg@{t}".encode())
    assert store.thumbnail_times(job.id) == [0, 3250, 12500]
    assert store.load_thumbnail(job.id, 3250) == b"jpeg@3.25"
    assert store.load_thumbnail(job.id, 1) is None
    assert store.thumbnail_times(new_job_id()) == []
    store.delete(job.id)  # retention: the thumbnails go with the job
    assert store.thumbnail_times(job.id) == []
