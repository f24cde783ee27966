"""JobRunner: runs queued jobs through the one flow (serve_app.flow) and keeps every step durable.

One replica (it is the only writer of job records after submission). On start
it picks up every job that is not finished — including those that were
running when the app or its replica died — and redoes only the chunks with no
stored result. Chunk calls are retried under the flow's one policy
(`FlowSettings`); a chunk that still fails is recorded as failed.

Store I/O runs in threads (`asyncio.to_thread`), never on the event loop: the
store may be an object store a round trip away. Each finished chunk costs one
chunk write and one record write (progress kept incrementally, `Progress`);
the jobs to look at come from the store's small active index, not from every
record ever kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.config import FlowSettings, JobSettings
from serve_app.flow import (
    Speech,
    cancel_on_exit,
    graph_chunk_call,
    infer_chunks,
    start_transcript,
)
from serve_app.memory import freeze_startup
from serve_app.observability.logs import route_to_serve, use_request_id
from serve_app.observability.metrics import record_video, set_jobs
from serve_app.schemas import ChunkPlan, ChunkResult, Job, JobProgress
from serve_app.store.jobs import JobStore, ThumbnailTarget

logger = logging.getLogger(__name__)


class Progress:
    """A job's progress, kept incrementally: each finished chunk is O(1), whatever the chunk count."""

    def __init__(self, plans: list[ChunkPlan], done: list[ChunkResult], started: float) -> None:
        self.owned_s = {p.index: p.core_end_s - p.core_start_s for p in plans}
        self.total = len(plans)
        self.total_s = max((p.end_s for p in plans), default=0.0)
        self.started = started
        self.done = self.failed = self.fresh = 0  # fresh: finished by this run, the base of the ETA
        self.done_s = 0.0
        for result in done:
            self._count(result)

    def _count(self, result: ChunkResult) -> None:
        self.done += 1
        self.failed += not result.ok
        self.done_s += self.owned_s.get(result.index, 0.0)

    def add(self, result: ChunkResult) -> JobProgress:
        self._count(result)
        self.fresh += 1
        return self.snapshot()

    def snapshot(self) -> JobProgress:
        eta = (time.time() - self.started) / self.fresh * (self.total - self.done) if self.fresh else None
        return JobProgress(
            chunks_total=self.total,
            chunks_done=self.done,
            chunks_failed=self.failed,
            video_s_total=self.total_s,
            video_s_done=min(self.done_s, self.total_s),
            eta_s=eta,
        )


def first_error(results: list[ChunkResult]) -> str | None:
    return next((r.error for r in results if not r.ok), None)


# One replica: the single writer of job records. It mostly awaits other replicas, hence 0.1 CPU.
@serve.deployment(name="JobRunner", num_replicas=1, ray_actor_options={"num_cpus": 0.1})
class JobRunner:
    async def __init__(
        self,
        chunker: DeploymentHandle,
        vlm: DeploymentHandle,
        aggregator: DeploymentHandle,
        asr: DeploymentHandle | None,
        store_uri: str,
        jobs: JobSettings,
        flow: FlowSettings,
        default_max_tokens: int,
    ) -> None:
        route_to_serve()
        self.chunker, self.vlm, self.aggregator, self.asr = chunker, vlm, aggregator, asr
        self.store = JobStore(store_uri)
        self.store.files.check_writable()  # an unreachable or read-only store fails the replica at start
        self.settings = jobs
        self.flow = flow
        self.default_max_tokens = default_max_tokens
        self.epoch = uuid.uuid4().hex[:12]  # names this incarnation in stored chunks
        self.tasks: dict[str, asyncio.Task] = {}
        self.writes: dict[str, asyncio.Lock] = {}  # per job: chunk + record writes, one at a time
        self.cancelling: set[str] = set()
        self.indexed = False  # the active index is rebuilt once, on the first scheduling pass
        self.wakeup = asyncio.Event()
        self.loop_task = asyncio.create_task(self._schedule_forever())
        freeze_startup()  # cheap collections of what Serve leaves in cycles (serve_app.memory.GC_EVERY_S)

    # -- called by the ingress -------------------------------------------------
    def wake(self) -> None:
        self.wakeup.set()

    async def cancel(self, job_id: str) -> Job | None:
        job = await asyncio.to_thread(self.store.get, job_id)
        if job is None or job.terminal:
            return job
        self.cancelling.add(job_id)  # the scheduler must not restart it meanwhile
        try:
            lock = self._writes(job_id)
            task = self.tasks.pop(job_id, None)
            if task is not None:
                task.cancel()  # in-flight chunk calls are cancelled, so vLLM aborts their requests
                await asyncio.gather(task, return_exceptions=True)
            async with lock:  # a record or chunk being written finishes first (its write is shielded)
                job = await asyncio.to_thread(self.store.get, job_id)
                if job is None or job.terminal:  # it finished (or failed) before the cancel took effect
                    return job
                now = time.time()
                update = {"status": "cancelled", "finished_at": now, "updated_at": now}
                return await self._save(job.model_copy(update=update))
        finally:
            self.cancelling.discard(job_id)
            self.writes.pop(job_id, None)

    # -- scheduling ------------------------------------------------------------
    async def _schedule_forever(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                if not self.indexed:
                    added = await asyncio.to_thread(self.store.rebuild_active_index)
                    self.indexed = True
                    if added:
                        logger.info("active job index: %d unfinished job(s) indexed", added)
                await self._start_queued()
                if time.time() - last_sweep > self.settings.sweep_interval_s:
                    await asyncio.to_thread(self._sweep)
                    last_sweep = time.time()
            except Exception:  # keep scheduling whatever one pass hit; the next pass retries
                logger.exception("job scheduler pass failed")
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.settings.scheduler_poll_s)
            except TimeoutError:
                pass
            self.wakeup.clear()

    async def _start_queued(self) -> None:
        """Start the oldest unfinished jobs of the active index while slots are free (records are read only
        then: a full runner reads nothing but the index)."""
        self.tasks = {k: t for k, t in self.tasks.items() if not t.done()}
        active = await asyncio.to_thread(self.store.active_ids)  # creation order
        try:
            await self._start_from(active)
        finally:  # the queue depth as this pass leaves it (an index entry not yet a job counts as queued)
            set_jobs(queued=sum(job_id not in self.tasks for job_id in active), running=len(self.tasks))

    async def _start_from(self, active: list[str]) -> None:
        for job_id in active:
            if len(self.tasks) >= self.settings.max_running:
                return
            if job_id in self.tasks or job_id in self.cancelling:
                continue
            job = await asyncio.to_thread(self.store.get, job_id)
            if job is None:  # reserved, not created yet; or its ingress died before creating it
                since = await asyncio.to_thread(self.store.active_since, job_id)
                if since is None or time.time() - since > self.settings.claim_timeout_s:
                    logger.info("job %s: reservation never became a job, released", job_id)
                    await asyncio.to_thread(self.store.release, job_id)
            elif job.terminal:  # finished, but its index entry outlived it (a crash in between)
                await asyncio.to_thread(self.store.release, job_id)
            else:  # queued, or "running" without a task here: its runner died
                self.tasks[job_id] = asyncio.create_task(self._run(job))

    def _sweep(self) -> None:
        """In a thread: a full scan, every `sweep_interval_s`."""
        horizon = time.time() - self.settings.retention_s
        for job_id in self.store.list_ids():
            job = self.store.get(job_id)
            if job is not None and job.terminal and (job.finished_at or job.updated_at) < horizon:
                logger.info("job %s: retention expired, deleting", job_id)
                self.store.delete(job_id)
        if freed := self.store.free_orphan_slots(self.settings.claim_timeout_s):
            logger.info("freed %d capacity slot(s) whose job had finished or never appeared", freed)

    # -- one job -----------------------------------------------------------------
    def _writes(self, job_id: str) -> asyncio.Lock:
        return self.writes.setdefault(job_id, asyncio.Lock())

    async def _save(self, job: Job) -> Job:
        await asyncio.to_thread(self.store.save, job)
        if job.terminal:
            await asyncio.to_thread(self.store.release, job.id)
            # A succeeded job's media stays with its result for the retention, for the web page's player
            # (`jobs.keep_media`); the sweep deletes both. Failed or cancelled jobs have nothing to play:
            # their uploads must not fill the store for days.
            if not (job.status == "succeeded" and self.settings.keep_media):
                await asyncio.to_thread(self.store.delete_media, job.id)
        return job

    async def _update(self, job: Job, **fields) -> Job:
        return await self._save(job.model_copy(update={**fields, "updated_at": time.time()}))

    async def _settle(self, job: Job, **fields) -> Job:
        """`_update` under the job's lock, shielded: a write cancelled mid-way would go on in its thread and
        could land after a cancel's "cancelled"; this way the cancel waits for it, then writes last."""

        async def locked() -> Job:
            async with self._writes(job.id):
                return await self._update(job, **fields)

        return await asyncio.shield(locked())

    async def _begin(self, job: Job, **fields) -> Job | None:
        """Mark the job running, from its current record: None if it is finished or being cancelled (the
        scheduler read it before a cancel wrote "cancelled": it must not come back to life)."""

        async def locked() -> Job | None:
            async with self._writes(job.id):
                current = await asyncio.to_thread(self.store.get, job.id)
                if current is None or current.terminal or job.id in self.cancelling:
                    return None
                return await self._update(current, **fields)

        return await asyncio.shield(locked())

    async def _run(self, job: Job) -> None:
        started = time.time()
        speech: asyncio.Task[Speech] | None = None
        cancelled = False
        use_request_id(job.id)  # this job's chunk logs, on every replica, name it (serve_app.observability.logs)
        try:
            info, plans, timings = await asyncio.to_thread(self.store.load_plan, job.id)
            stored_chunks = await asyncio.to_thread(self.store.load_chunks, job.id)
            next_seq = await asyncio.to_thread(self.store.next_seq, job.id)
            done = {c.result.index: c.result for c in stored_chunks}
            progress = Progress(plans, list(done.values()), started)
            begun = await self._begin(
                job,
                status="running",
                started_at=job.started_at or started,
                attempts=job.attempts + 1,
                progress=progress.snapshot(),  # also counts a chunk stored just before a crash
            )
            if begun is None:
                logger.info("job %s: finished or cancelled before it started; not run", job.id)
                return
            job = begun
            logger.info("job %s: %d/%d chunks already done (attempt %d)", job.id, len(done), len(plans), job.attempts)
            media = self.store.media_uri(job.id)  # opened by the Chunker / ASR replica, on its own node
            task = job.request.to_chunk_task(info.video_id, self.default_max_tokens)
            speech = start_transcript(self.asr, media, info, job.request, self.flow)
            lock = self._writes(job.id)

            async def write(result: ChunkResult) -> None:
                nonlocal job, next_seq
                async with lock:  # chunk n is on the store before the record counts it (events read by count)
                    if cancelled or job.id in self.cancelling:  # nothing is recorded once a cancel began
                        return
                    await asyncio.to_thread(self.store.save_chunk, job.id, next_seq, result, self.epoch)
                    next_seq += 1
                    done[result.index] = result
                    job = await self._update(job, progress=progress.add(result))

            async def stored(result: ChunkResult) -> None:
                await asyncio.shield(write(result))  # a cancel never leaves a chunk written but uncounted

            await infer_chunks(
                [p for p in plans if p.index not in done],
                graph_chunk_call(
                    self.chunker, self.vlm, media, task, speech, ThumbnailTarget(self.store.files.uri, job.id)
                ),
                mode=job.request.mode,
                policy=self.flow,
                video_id=info.video_id,
                on_result=stored,
            )
            results = [done[p.index] for p in plans]
            failed = sum(not r.ok for r in results)
            if failed > self.settings.fail_ratio * len(results):
                record_video("failed")
                await self._settle(
                    job,
                    status="failed",
                    finished_at=time.time(),
                    error=f"{failed} of {len(results)} chunks failed; first: {first_error(results)}",
                )
                return
            heard = await speech
            analysis = await cancel_on_exit(
                self.aggregator.aggregate.remote(info, job.request, plans, results, timings, job.created_at, heard)
            )
            await asyncio.to_thread(self.store.save_result, job.id, analysis)
            await self._settle(job, status="succeeded", finished_at=time.time())
            logger.info("job %s succeeded (%d chunks, %d failed)", job.id, len(results), failed)
        except asyncio.CancelledError:
            cancelled = True  # `cancel` holds the job's lock, and drops it
            raise
        except Exception as exc:  # the job's own failure must not stop the runner
            logger.exception("job %s failed", job.id)
            record_video("failed")
            error = f"{type(exc).__name__}: {exc}"[:2000]
            await self._settle(job, status="failed", finished_at=time.time(), error=error)
        finally:
            if speech is not None:
                speech.cancel()  # a failed or cancelled job leaves no transcription running
            if not cancelled:
                self.writes.pop(job.id, None)
