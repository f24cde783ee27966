"""The durable job store: job records, media, plans, per-chunk results and final results.

    <store>/jobs/<id>/job.json          the Job record (written by the ingress once, then only by the runner)
    <store>/jobs/<id>/media             the uploaded or fetched video: kept with a succeeded job's result for
                                        the player (`jobs.keep_media`), else deleted when the job is terminal
    <store>/jobs/<id>/plan.json         VideoInfo + ChunkPlans + intake timings (fetch_s, probe_s), at submission
    <store>/jobs/<id>/chunks/<n>.json   one StoredChunk per finished chunk (the unit of resumption), numbered
                                        0, 1, 2, ... in the order the chunks finished
    <store>/jobs/<id>/result.json       the VideoAnalysis
    <store>/jobs/<id>/thumbs/<ms>.jpg   a small JPEG of each frame the model was shown (written by the Chunker
                                        that decoded it), named by its time in milliseconds
    <store>/active/<id>                 the small index of jobs not finished yet (queued or running)
    <store>/slots/<k>                   capacity slot k (below max_running + max_queued): {job_id, since}
    <store>/idempotency/<principal>/<sha256(key)>   the claim of an Idempotency-Key: {job_id, claimed_at}
    <store>/uploads/<id>                a request's video while it is taken in (and, for /v1/analyze,
                                        analysed); moved to the job's media, or deleted when the request ends

Media is only ever handed on as a store URI (`media_uri`, `stage_upload`): the replica or task that
decodes it opens it on its own node (serve_app.store.media). So the store must be one every node
shares — an object store, or a folder mounted at the same path on every node.

Job ids start with the creation time in hex, so listing order is creation
order. Pure library (no Ray): the Serve deployments hold a `JobStore`.

Cheap reads for the hot paths:
- a job's event stream reads one small record a tick (`job.json`): `progress.chunks_done` says how many
  chunk files exist, and chunk `n` is read by its key — no LIST per client per tick; the event id of
  chunk file `n` is `n + 1`, stable across reconnects and ingress replicas;
- the capacity check LISTs `active/` (at most the capacity, not every job ever kept);
- a new job takes one of `capacity` slots, `<store>/slots/<k>` = {job_id, since}, with the store's
  create-if-absent: the bound holds across ingress replicas without a lock;
- the runner's scheduler reads `active/` instead of every record.

Atomic where it matters (`FileStore.create`, create-if-absent): an Idempotency-Key is claimed before the
job exists, so concurrent requests with one key make one job; a capacity slot is taken the same way.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import random
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from serve_app.config import JobSettings
from serve_app.errors import Overloaded
from serve_app.schemas import AnalyzeOptions, ChunkPlan, ChunkResult, Job, StoredChunk, VideoAnalysis, VideoInfo
from serve_app.store.files import FileStore

logger = logging.getLogger(__name__)
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: never a path from outside

RESERVE_TRIES = 8  # attempts at a free slot before a request full of races gives up (503, retried)


@dataclass(frozen=True)
class ThumbnailTarget:
    """Where the Chunker that decodes a job's chunk stores its thumbnails: on the store, by URI, never a path
    of the node that asked (it travels to whichever replica decodes)."""

    store_uri: str
    job_id: str


def new_job_id() -> str:
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:12]}"


class JobStore:
    def __init__(self, uri: str) -> None:
        self.files = FileStore(uri)

    @staticmethod
    def _key(job_id: str, name: str) -> str:
        if not job_id.isalnum():  # ids come from URLs: never let one walk the store
            raise KeyError(job_id)
        return f"jobs/{job_id}/{name}"

    # -- records -------------------------------------------------------------
    def save(self, job: Job) -> Job:
        self.files.write_bytes(self._key(job.id, "job.json"), job.model_dump_json().encode())
        return job

    def get(self, job_id: str) -> Job | None:
        try:
            key = self._key(job_id, "job.json")
        except KeyError:
            return None
        if not self.files.exists(key):
            return None
        return Job.model_validate_json(self.files.read_bytes(key))

    def list_ids(self) -> list[str]:
        return self.files.list_dirs("jobs")

    def list(self, limit: int = 50) -> list[Job]:
        """The newest `limit` jobs; reads only those records."""
        jobs = (self.get(job_id) for job_id in reversed(self.list_ids()))
        return list(itertools.islice((job for job in jobs if job is not None), limit))

    # -- the active index and capacity ------------------------------------------
    def active_ids(self) -> list[str]:
        """Ids of the jobs not finished yet (and reservations about to become jobs), oldest first."""
        return [key.rsplit("/", 1)[1] for key in self.files.list("active")]

    def check_capacity(self, settings: JobSettings) -> None:
        """Refuse (503) when running + queued jobs fill the runner's slots and the durable queue (one LIST of
        the active index)."""
        capacity = settings.max_running + settings.max_queued
        active = len(self.active_ids())
        if active >= capacity:
            raise Overloaded(f"{active} jobs are running or queued (capacity {capacity}); retry later")

    def reserve(self, settings: JobSettings) -> str:
        """A capacity slot and a place in the active index for a new job: its id, or `Overloaded`.

        Holds across ingress replicas without a lock: slots `slots/<k>` (k below the capacity) are taken
        with the store's create-if-absent, so two requests never get one slot.
        """
        capacity = settings.max_running + settings.max_queued
        job_id = new_job_id()
        for _ in range(RESERVE_TRIES):
            taken = {int(key.rsplit("/", 1)[1]) for key in self.files.list("slots") if key.rsplit("/", 1)[1].isdigit()}
            free = [k for k in range(capacity) if k not in taken]
            if not free:
                break
            slot = random.choice(free)  # concurrent requests rarely pick the same one
            if self.files.create(f"slots/{slot:06d}", json.dumps({"job_id": job_id, "since": time.time()}).encode()):
                self.mark_active(job_id, slot)
                return job_id
        raise Overloaded(f"all {capacity} job slots (running + queued) are taken; retry later")

    def mark_active(self, job_id: str, slot: int | None = None) -> None:
        marker = {"since": time.time(), "slot": slot}
        self.files.write_bytes(self._active_key(job_id), json.dumps(marker).encode())

    def _marker(self, job_id: str) -> dict | None:
        try:
            return json.loads(self.files.read_bytes(self._active_key(job_id)))
        except FileNotFoundError:
            return None

    def active_since(self, job_id: str) -> float | None:
        marker = self._marker(job_id)
        return None if marker is None else marker["since"]

    def release(self, job_id: str) -> None:
        """Free a job's slot and drop it from the active index (it finished, or its submission failed)."""
        marker = self._marker(job_id)
        if marker is not None and marker.get("slot") is not None:
            self._free_slot(marker["slot"], job_id)
        self.files.delete(self._active_key(job_id))

    def _free_slot(self, slot: int, job_id: str) -> None:
        key = f"slots/{slot:06d}"
        try:
            holder = json.loads(self.files.read_bytes(key))["job_id"]
        except FileNotFoundError:
            return
        if holder == job_id:  # never another job's slot
            self.files.delete(key)

    def free_orphan_slots(self, stale_after_s: float) -> int:
        """Free slots whose job finished or never appeared (a crash between two writes): for the runner's
        sweep. Returns how many were freed."""
        freed = 0
        for key in self.files.list("slots"):
            try:
                holder = json.loads(self.files.read_bytes(key))
            except FileNotFoundError:
                continue
            job = self.get(holder["job_id"])
            if (job is not None and job.terminal) or (job is None and time.time() - holder["since"] > stale_after_s):
                self.files.delete(key)
                freed += 1
        return freed

    def rebuild_active_index(self) -> int:
        """Index every unfinished job (a store written before the index existed, or a lost marker): a full
        scan, for the runner's start only. Returns how many were added."""
        active = set(self.active_ids())
        added = 0
        for job_id in self.list_ids():
            if job_id in active:
                continue
            job = self.get(job_id)
            if job is not None and not job.terminal:
                self.mark_active(job_id)
                added += 1
        return added

    def _active_key(self, job_id: str) -> str:
        self._key(job_id, "")  # the same id check as every other key
        return f"active/{job_id}"

    def create(
        self,
        upload: str,
        options: AnalyzeOptions,
        source: str,
        info: VideoInfo,
        plans: list[ChunkPlan],
        timings: dict[str, float],
        job_id: str | None = None,
    ) -> Job:
        """A new queued job: its media (the staged `upload`, moved), plan, and record (written last: it makes
        the job visible to the runner). `job_id`: the id `reserve` (and an Idempotency-Key claim) gave it."""
        job_id = job_id or new_job_id()
        self.files.move(self._upload_key(upload), self._key(job_id, "media"))
        self.save_plan(job_id, info, plans, timings)
        now = time.time()
        base = f"/v1/jobs/{job_id}"
        return self.save(
            Job(
                id=job_id,
                status="queued",
                created_at=now,
                updated_at=now,
                request=options,
                source=source,
                video=info,
                links={"self": base, "result": f"{base}/result", "events": f"{base}/events"},
            )
        )

    def delete(self, job_id: str) -> None:
        self.files.delete_dir(f"jobs/{job_id}")
        self.release(job_id)

    # -- inputs ----------------------------------------------------------------
    @staticmethod
    def _upload_key(upload: str) -> str:
        if not _UPLOAD_ID.fullmatch(upload):
            raise ValueError(f"bad upload id {upload!r}")
        return f"uploads/{upload}"

    def upload_dest(self, upload: str) -> Path:
        """Where a request's video is written as it streams in: in the store itself when the store is a
        folder (shared by every node, or one machine), else a node-local temporary file that
        `stage_upload` copies to the store."""
        if self.files.local:
            dest = Path(self.files.path(self._upload_key(upload)))
            dest.parent.mkdir(parents=True, exist_ok=True)
            return dest
        return Path(tempfile.gettempdir()) / f"reelserve-upload-{upload}"

    def stage_upload(self, upload: str, received: Path) -> str:
        """The store URI of the received upload (copied to an object store, then the local copy removed)."""
        key = self._upload_key(upload)
        if not self.files.local:
            try:
                self.files.put_file(key, received)
            finally:
                received.unlink(missing_ok=True)
        return self.files.uri_of(key)

    def delete_upload(self, upload: str) -> None:
        self.files.delete(self._upload_key(upload))
        if not self.files.local:
            self.upload_dest(upload).unlink(missing_ok=True)

    def delete_media(self, job_id: str) -> None:
        self.files.delete(self._key(job_id, "media"))

    def has_media(self, job_id: str) -> bool:
        return self.files.exists(self._key(job_id, "media"))

    def media_uri(self, job_id: str) -> str:
        return self.files.uri_of(self._key(job_id, "media"))

    def save_plan(self, job_id: str, info: VideoInfo, plans: list[ChunkPlan], timings: dict[str, float]) -> None:
        payload = {
            "video": info.model_dump(mode="json"),
            "plans": [p.model_dump(mode="json") for p in plans],
            "timings": timings,
        }
        self.files.write_bytes(self._key(job_id, "plan.json"), json.dumps(payload).encode())

    def load_plan(self, job_id: str) -> tuple[VideoInfo, list[ChunkPlan], dict[str, float]]:
        payload = json.loads(self.files.read_bytes(self._key(job_id, "plan.json")))
        plans = [ChunkPlan.model_validate(p) for p in payload["plans"]]
        return VideoInfo.model_validate(payload["video"]), plans, payload.get("timings", {})

    # -- results -----------------------------------------------------------------
    def save_chunk(self, job_id: str, seq: int, result: ChunkResult, epoch: str) -> None:
        """Store the `seq`-th finished chunk (0-based, in finishing order; the runner writes them one by one)."""
        record = StoredChunk(epoch=epoch, result=result)
        self.files.write_bytes(self._chunk_key(job_id, seq), record.model_dump_json().encode())

    def _chunk_key(self, job_id: str, seq: int) -> str:
        return self._key(job_id, f"chunks/{seq:06d}.json")

    def chunk_keys(self, job_id: str) -> list[str]:
        return self.files.list(self._key(job_id, "chunks"))

    def next_seq(self, job_id: str) -> int:
        """The number the next finished chunk gets (one LIST: for a runner starting a job)."""
        return max((int(key.rsplit("/", 1)[1].split(".")[0]) + 1 for key in self.chunk_keys(job_id)), default=0)

    def load_chunk(self, key: str) -> StoredChunk:
        return StoredChunk.model_validate_json(self.files.read_bytes(key))

    def load_chunk_at(self, job_id: str, seq: int) -> StoredChunk | None:
        """The `seq`-th finished chunk, read by its key (no LIST); None if it is not there."""
        try:
            return self.load_chunk(self._chunk_key(job_id, seq))
        except FileNotFoundError:
            return None

    def load_chunks(self, job_id: str) -> list[StoredChunk]:
        return [self.load_chunk(key) for key in self.chunk_keys(job_id)]

    def result_key(self, job_id: str) -> str:
        """The store key of a job's result (the search index stats these to see what is new)."""
        return self._key(job_id, "result.json")

    def save_result(self, job_id: str, analysis: VideoAnalysis) -> None:
        self.files.write_bytes(self.result_key(job_id), analysis.model_dump_json().encode())

    def load_result(self, job_id: str) -> VideoAnalysis | None:
        key = self.result_key(job_id)
        if not self.files.exists(key):
            return None
        return VideoAnalysis.model_validate_json(self.files.read_bytes(key))

    # -- thumbnails ----------------------------------------------------------------
    def thumbnail_key(self, job_id: str, millis: int) -> str:
        return self._key(job_id, f"thumbs/{millis:010d}.jpg")

    def save_thumbnail(self, job_id: str, time_s: float, jpeg: bytes) -> None:
        """Idempotent: a chunk decoded twice (a retry, a resumed job) writes the same keys again."""
        self.files.write_bytes(self.thumbnail_key(job_id, round(time_s * 1000)), jpeg)

    def thumbnail_times(self, job_id: str) -> list[int]:
        """The stored thumbnails' times in milliseconds, in time order (one LIST)."""
        names = (key.rsplit("/", 1)[1] for key in self.files.list(self._key(job_id, "thumbs")))
        return [int(name.removesuffix(".jpg")) for name in names if name.endswith(".jpg")]

    def load_thumbnail(self, job_id: str, millis: int) -> bytes | None:
        try:
            return self.files.read_bytes(self.thumbnail_key(job_id, millis))
        except FileNotFoundError:
            return None

    # -- idempotency ---------------------------------------------------------------
    @staticmethod
    def _idem_key(principal: str, key: str) -> str:
        if not principal.isalnum():
            raise ValueError(f"principal {principal!r} must be alphanumeric")
        return f"idempotency/{principal}/{hashlib.sha256(key.encode()).hexdigest()}"

    def claim_key(self, principal: str, key: str, stale_after_s: float) -> bool:
        """Claim `principal`'s Idempotency-Key `key`, atomically: True when this call claimed it (then create
        the job and `bind_key` it, or `release_key` if that fails); False when the key is taken — by a job
        (`job_for_key`) or by a request still being taken in. A claim older than `stale_after_s` whose job
        never appeared (its ingress died) is taken over.
        """
        idem = self._idem_key(principal, key)
        for _ in range(3):
            if self.files.create(idem, json.dumps({"job_id": None, "claimed_at": time.time()}).encode()):
                return True
            try:
                held = json.loads(self.files.read_bytes(idem))
            except FileNotFoundError:  # released between the two calls: try again
                continue
            if time.time() - held["claimed_at"] <= stale_after_s or (held["job_id"] and self.get(held["job_id"])):
                return False
            logger.warning("idempotency claim (job %s) is stale: no job appeared; taking it over", held["job_id"])
            self.files.delete(idem)
        return False

    def bind_key(self, principal: str, key: str, job_id: str) -> None:
        """Name the job a claimed key makes (before the job's record is written)."""
        claim = {"job_id": job_id, "claimed_at": time.time()}
        self.files.write_bytes(self._idem_key(principal, key), json.dumps(claim).encode())

    def release_key(self, principal: str, key: str) -> None:
        """Forget a claim whose job was never created (its request failed), so the key can be used again."""
        self.files.delete(self._idem_key(principal, key))

    def job_for_key(self, principal: str, key: str) -> Job | None:
        """The job `principal`'s Idempotency-Key created, if it exists (yet)."""
        try:
            held = json.loads(self.files.read_bytes(self._idem_key(principal, key)))
        except FileNotFoundError:
            return None
        return self.get(held["job_id"]) if held["job_id"] else None
