"""The durable job store: job records, media, plans, per-chunk results and final results.

    <store>/jobs/<id>/job.json          the Job record (written by the ingress once, then only by the runner)
    <store>/jobs/<id>/media             the uploaded or fetched video
    <store>/jobs/<id>/plan.json         VideoInfo + ChunkPlans + intake timings (fetch_s, probe_s), at submission
    <store>/jobs/<id>/chunks/<n>.json   one StoredChunk per finished chunk (the unit of resumption)
    <store>/jobs/<id>/result.json       the VideoAnalysis
    <store>/idempotency/<sha256(key)>   the job id created for an Idempotency-Key

Job ids start with the creation time in hex, so listing order is creation
order. Pure library (no Ray): the Serve deployments hold a `JobStore`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import uuid
from pathlib import Path

from serve_app.config import JobSettings
from serve_app.errors import Overloaded
from serve_app.schemas import AnalyzeOptions, ChunkPlan, ChunkResult, Job, StoredChunk, VideoAnalysis, VideoInfo
from serve_app.store.files import FileStore


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

    def check_capacity(self, settings: JobSettings) -> None:
        """Refuse (503) when running + queued jobs fill the runner's slots and the durable queue."""
        capacity = settings.max_running + settings.max_queued
        active = sum(1 for j in self.list(limit=capacity + 200) if not j.terminal)
        if active >= capacity:
            raise Overloaded(f"{active} jobs are running or queued (capacity {capacity}); retry later")

    def create(
        self,
        media: Path,
        options: AnalyzeOptions,
        source: str,
        info: VideoInfo,
        plans: list[ChunkPlan],
        timings: dict[str, float],
    ) -> Job:
        """A new queued job: its media (moved into the store), plan, and record (written last: it makes the
        job visible to the runner)."""
        job_id = new_job_id()
        self.put_media(job_id, media)
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

    # -- inputs ----------------------------------------------------------------
    def put_media(self, job_id: str, source: Path) -> None:
        self.files.put_file(self._key(job_id, "media"), source)

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
    def save_chunk(self, job_id: str, result: ChunkResult, epoch: str) -> None:
        record = StoredChunk(epoch=epoch, result=result)
        self.files.write_bytes(self._key(job_id, f"chunks/{result.index:06d}.json"), record.model_dump_json().encode())

    def chunk_keys(self, job_id: str) -> list[str]:
        return self.files.list(self._key(job_id, "chunks"))

    def load_chunk(self, key: str) -> StoredChunk:
        return StoredChunk.model_validate_json(self.files.read_bytes(key))

    def load_chunks(self, job_id: str) -> list[StoredChunk]:
        return [self.load_chunk(key) for key in self.chunk_keys(job_id)]

    def save_result(self, job_id: str, analysis: VideoAnalysis) -> None:
        self.files.write_bytes(self._key(job_id, "result.json"), analysis.model_dump_json().encode())

    def load_result(self, job_id: str) -> VideoAnalysis | None:
        key = self._key(job_id, "result.json")
        if not self.files.exists(key):
            return None
        return VideoAnalysis.model_validate_json(self.files.read_bytes(key))

    # -- idempotency ---------------------------------------------------------------
    @staticmethod
    def _idem_key(key: str) -> str:
        return "idempotency/" + hashlib.sha256(key.encode()).hexdigest()

    def job_for_key(self, key: str) -> Job | None:
        """The job an Idempotency-Key created, if it still exists."""
        idem = self._idem_key(key)
        return self.get(self.files.read_bytes(idem).decode()) if self.files.exists(idem) else None

    def remember_key(self, key: str, job_id: str) -> None:
        self.files.write_bytes(self._idem_key(key), job_id.encode())
