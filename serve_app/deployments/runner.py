"""JobRunner: runs queued jobs through the one flow (serve_app.flow) and keeps every step durable.

One replica (it is the only writer of job records after submission). On start
it picks up every job that is not finished — including those that were
running when the app or its replica died — and redoes only the chunks with no
stored result. Chunk calls are retried under the flow's one policy
(`FlowSettings`); a chunk that still fails is recorded as failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app.config import FlowSettings, JobSettings
from serve_app.flow import graph_chunk_call, infer_chunks
from serve_app.schemas import ChunkPlan, ChunkResult, Job, JobProgress
from serve_app.store.files import local_path
from serve_app.store.jobs import JobStore

logger = logging.getLogger(__name__)


def progress_of(plans: list[ChunkPlan], done: dict[int, ChunkResult], started: float, done_before: int) -> JobProgress:
    by_index = {p.index: p for p in plans}
    total_s = max((p.end_s for p in plans), default=0.0)
    done_s = sum(by_index[i].core_end_s - by_index[i].core_start_s for i in done if i in by_index)
    fresh = len(done) - done_before  # chunks finished by this run, the base of the ETA
    remaining = len(plans) - len(done)
    eta = (time.time() - started) / fresh * remaining if fresh > 0 else None
    return JobProgress(
        chunks_total=len(plans),
        chunks_done=len(done),
        chunks_failed=sum(not r.ok for r in done.values()),
        video_s_total=total_s,
        video_s_done=min(done_s, total_s),
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
        store_uri: str,
        jobs: JobSettings,
        flow: FlowSettings,
        default_max_tokens: int,
    ) -> None:
        self.chunker, self.vlm, self.aggregator = chunker, vlm, aggregator
        self.store = JobStore(store_uri)
        self.settings = jobs
        self.flow = flow
        self.default_max_tokens = default_max_tokens
        self.epoch = uuid.uuid4().hex[:12]  # names this incarnation in stored chunks
        self.tasks: dict[str, asyncio.Task] = {}
        self.finished: set[str] = set()  # terminal job ids seen by the scheduler
        self.wakeup = asyncio.Event()
        self.loop_task = asyncio.create_task(self._schedule_forever())

    # -- called by the ingress -------------------------------------------------
    def wake(self) -> None:
        self.wakeup.set()

    async def cancel(self, job_id: str) -> Job | None:
        job = self.store.get(job_id)
        if job is None or job.terminal:
            return job
        task = self.tasks.pop(job_id, None)
        if task is not None:
            task.cancel()  # in-flight chunk calls are cancelled, so vLLM aborts their requests
            await asyncio.gather(task, return_exceptions=True)
        job = self.store.get(job_id)
        now = time.time()
        return self.store.save(job.model_copy(update={"status": "cancelled", "finished_at": now, "updated_at": now}))

    # -- scheduling ------------------------------------------------------------
    async def _schedule_forever(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                self._start_queued()
                if time.time() - last_sweep > self.settings.sweep_interval_s:
                    self._sweep()
                    last_sweep = time.time()
            except Exception:  # keep scheduling whatever one pass hit; the next pass retries
                logger.exception("job scheduler pass failed")
            try:
                await asyncio.wait_for(self.wakeup.wait(), timeout=self.settings.scheduler_poll_s)
            except TimeoutError:
                pass
            self.wakeup.clear()

    def _start_queued(self) -> None:
        self.tasks = {k: t for k, t in self.tasks.items() if not t.done()}
        for job_id in self.store.list_ids():  # creation order
            if len(self.tasks) >= self.settings.max_running:
                return
            if job_id in self.tasks or job_id in self.finished:
                continue
            job = self.store.get(job_id)
            if job is None:
                continue
            if job.terminal:  # final: never read its record again on this once-a-second pass
                self.finished.add(job_id)
            elif job.status in ("queued", "running"):  # "running" without a task here: its runner died
                self.tasks[job_id] = asyncio.create_task(self._run(job))

    def _sweep(self) -> None:
        horizon = time.time() - self.settings.retention_s
        for job_id in self.store.list_ids():
            job = self.store.get(job_id)
            if job is not None and job.terminal and (job.finished_at or job.updated_at) < horizon:
                logger.info("job %s: retention expired, deleting", job_id)
                self.store.delete(job_id)
                self.finished.discard(job_id)

    # -- one job -----------------------------------------------------------------
    def _update(self, job: Job, **fields) -> Job:
        return self.store.save(job.model_copy(update={**fields, "updated_at": time.time()}))

    async def _run(self, job: Job) -> None:
        started = time.time()
        job = self._update(job, status="running", started_at=job.started_at or started, attempts=job.attempts + 1)
        try:
            info, plans, timings = self.store.load_plan(job.id)
            done = {c.result.index: c.result for c in self.store.load_chunks(job.id)}
            done_before = len(done)
            logger.info("job %s: %d/%d chunks already done (attempt %d)", job.id, len(done), len(plans), job.attempts)
            media = local_path(self.store.media_uri(job.id))
            task = job.request.to_chunk_task(info.video_id, self.default_max_tokens)

            async def stored(result: ChunkResult) -> None:
                nonlocal job
                self.store.save_chunk(job.id, result, self.epoch)
                done[result.index] = result
                job = self._update(job, progress=progress_of(plans, done, started, done_before))

            await infer_chunks(
                [p for p in plans if p.index not in done],
                graph_chunk_call(self.chunker, self.vlm, media, task),
                mode=job.request.mode,
                policy=self.flow,
                video_id=info.video_id,
                on_result=stored,
            )
            results = [done[p.index] for p in plans]
            failed = sum(not r.ok for r in results)
            if failed > self.settings.fail_ratio * len(results):
                self._update(
                    job,
                    status="failed",
                    finished_at=time.time(),
                    error=f"{failed} of {len(results)} chunks failed; first: {first_error(results)}",
                )
                return
            analysis = await self.aggregator.aggregate.remote(
                info, job.request, plans, results, timings, job.created_at
            )
            self.store.save_result(job.id, analysis)
            self._update(job, status="succeeded", finished_at=time.time())
            logger.info("job %s succeeded (%d chunks, %d failed)", job.id, len(results), failed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the job's own failure must not stop the runner
            logger.exception("job %s failed", job.id)
            self._update(job, status="failed", finished_at=time.time(), error=f"{type(exc).__name__}: {exc}"[:2000])
