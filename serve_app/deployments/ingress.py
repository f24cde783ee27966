"""Ingress: the HTTP API (FastAPI). Each route parses, dispatches to the graph and shapes the response.

Intake (upload / URL + options) is `serve_app.http.intake`, errors are `serve_app.http.problems`, job
events are `serve_app.http.events`, the analysis itself is `serve_app.flow` — the same flow the job runner
and the archive job run.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app import web
from serve_app.chat import ChatService, chat_completion, chat_stream
from serve_app.config import Settings, job_store_uri
from serve_app.devtools.netguard import install_loopback_guard
from serve_app.errors import EngineUnavailable, JobConflict, JobNotFound, NoTranscript
from serve_app.fair_share import FairShare
from serve_app.flow import (
    Speech,
    cancel_on_exit,
    check_sync_limit,
    graph_chunk_call,
    infer_chunks,
    plan_video,
    queue_job,
    start_transcript,
)
from serve_app.http import events
from serve_app.http.admission import Admission
from serve_app.http.auth import PUBLIC_PATHS, load_api_keys
from serve_app.http.fetch import UrlPolicy
from serve_app.http.intake import ANALYZE_BODY, Intake, receive_video
from serve_app.http.openai_errors import OpenAIErrors
from serve_app.http.problems import PROBLEM_RESPONSES, install_problem_handlers
from serve_app.http.upload import read_limited
from serve_app.memory import freeze_startup
from serve_app.observability.logs import route_to_serve
from serve_app.observability.metrics import record_video
from serve_app.schemas import Job, JobList, SearchResults, VideoAnalysis
from serve_app.search import DEFAULT_LIMIT, MAX_LIMIT, QUERY_HELP, online_index
from serve_app.speech.transcript import to_srt, to_webvtt
from serve_app.store.jobs import JobStore
from serve_app.store.media import MediaCache
from serve_app.web import job_files

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="An API key (REELSERVE_API_KEYS); not needed for health checks.")


def _replica() -> Ingress:
    return serve.get_replica_context().servable_object


async def _authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Every route needs a valid key, except `auth.PUBLIC_PATHS` (and /docs, /openapi.json: not API routes)."""
    path = request.url.path.removeprefix(request.scope.get("root_path", "").rstrip("/")) or "/"
    replica = _replica()
    api_keys = replica.api_keys
    if api_keys is None or path in PUBLIC_PATHS or job_files.cookie_opens(replica.media_tokens, request, path):
        return
    api_keys.check(request.headers.get("authorization"))


api = FastAPI(
    title="reelserve",
    version="0.1.0",
    description="Timestamped, structured understanding of long videos with Qwen3-VL on vLLM and Ray Serve.",
    dependencies=[Depends(_authenticate)],
)
install_problem_handlers(api, retry_after_s=lambda: _replica().settings.serve.ingress.retry_after_s)
api.add_middleware(OpenAIErrors)  # outside the problem handlers: it rewrites their bodies on the OpenAI routes
api.mount("/web", web.static_files(), name="web")  # the page's script and styles: public, like the page


# Helpers above are defined before the class: Serve serializes the class when decorated.
@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(
        self,
        chunker: DeploymentHandle,
        vlm: DeploymentHandle,
        aggregator: DeploymentHandle,
        asr: DeploymentHandle | None,
        runner: DeploymentHandle,
        settings: Settings,
    ) -> None:
        route_to_serve()
        self.chunker = chunker
        self.vlm = vlm
        self.aggregator = aggregator
        self.asr = asr
        self.runner = runner
        self.settings = settings
        if settings.security.loopback_only_egress:
            install_loopback_guard()
        self.api_keys = load_api_keys(settings.security)  # None only if auth is explicitly disabled
        self.url_policy = UrlPolicy.from_settings(settings.security)
        self.jobs = JobStore(job_store_uri(settings))
        self.jobs.files.check_writable()  # an unreachable or read-only store fails the replica at start
        # The bounds on expensive work (Serve's own queue limits on this deployment never bind).
        self.analyses = Admission(settings.serve.max_analyses, "synchronous analyses")
        self.intakes = Admission(settings.serve.max_intakes, "uploads or URL fetches being taken in")
        self.chat = ChatService(
            jobs=self.jobs,
            chunker=chunker,
            vlm=vlm,
            runner=runner,
            settings=settings,
            url_policy=self.url_policy,
            intakes=self.intakes,
        )
        self.sync_share = FairShare(settings.flow.sync_chunks_in_flight)  # every /v1/analyze of this replica
        self.media_cache = MediaCache(settings.serve.media_cache_dir, settings.serve.media_cache_bytes)
        self.media_tokens = job_files.media_tokens(self.api_keys, settings.security)
        freeze_startup()  # cheap collections of what Serve leaves in cycles (serve_app.memory.GC_EVERY_S)

    async def _check_schema(self, schema: dict[str, Any]) -> None:
        await self.vlm.check_schema.remote(schema)

    async def _stage(self, request: Request, upload: str) -> tuple[Intake, float, str]:
        """Take the request's video in, onto the shared store: (intake, fetch_s, its store URI). Every
        replica it is handed to opens that URI on its own node; nothing gets a path on this one."""
        with self.intakes.slot():  # refused before the body is read
            dest = self.jobs.upload_dest(upload)
            intake, fetch_s = await self._intake(request, dest)
            return intake, fetch_s, await asyncio.to_thread(self.jobs.stage_upload, upload, dest)

    async def _intake(self, request: Request, dest: Any) -> tuple[Intake, float]:
        started = time.perf_counter()
        intake = await receive_video(request, dest, self.settings, self.url_policy, self._check_schema)
        if intake.options.language and intake.options.audio == "auto" and self.asr is not None:
            await self.asr.check_language.remote(intake.options.language)  # 422 before any work
        return intake, time.perf_counter() - started

    @api.get("/healthz", summary="Liveness: the HTTP ingress answers")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", summary="Readiness: the model engine is loaded and healthy", responses=PROBLEM_RESPONSES)
    async def readyz(self) -> dict[str, str]:
        try:
            async with asyncio.timeout(self.settings.serve.ready_timeout_s):
                await self.vlm.check_health.remote()
                model = await self.vlm.model_id.remote()
        except TimeoutError:
            raise EngineUnavailable("engine did not answer the health check in time") from None
        return {"status": "ready", "model": model}

    @api.post(
        "/v1/analyze",
        summary="Analyze a video (multipart upload in field `file`, or JSON with `video_url`)",
        response_model=VideoAnalysis,
        responses=PROBLEM_RESPONSES,
        openapi_extra=ANALYZE_BODY,
    )
    async def analyze(self, request: Request) -> VideoAnalysis:
        with self.analyses.slot():  # refused at once, before the upload is read
            return await self._analyze(request)

    async def _analyze(self, request: Request) -> VideoAnalysis:
        started_at = time.time()
        upload = uuid.uuid4().hex
        speech: asyncio.Task[Speech] | None = None
        try:
            intake, fetch_s, media = await self._stage(request, upload)
            options = intake.options
            info, plans, probe_s = await plan_video(self.chunker, media, options)
            check_sync_limit(plans, self.settings.flow)
            task = options.to_chunk_task(info.video_id, self.settings.model.max_tokens)
            logger.info("video %s: %.1fs, %d chunks, mode %s", info.video_id, info.duration_s, len(plans), options.mode)
            speech = start_transcript(self.asr, media, info, options, self.settings.flow)
            results = await infer_chunks(
                plans,
                graph_chunk_call(self.chunker, self.vlm, media, task, speech),
                mode=options.mode,
                policy=self.settings.flow,
                video_id=info.video_id,
                share=self.sync_share,
            )
            timings = {"fetch_s": fetch_s, "probe_s": probe_s}
            return await cancel_on_exit(
                self.aggregator.aggregate.remote(info, options, plans, results, timings, started_at, await speech)
            )
        except Exception:
            if speech is not None:  # planned, so a video that failed (bad input is a problem, not counted here)
                record_video("failed")
            raise
        finally:
            if speech is not None:
                speech.cancel()  # the client went away or the request failed: stop transcribing
            await asyncio.to_thread(self.jobs.delete_upload, upload)

    # -- async jobs ------------------------------------------------------------
    @api.post(
        "/v1/jobs",
        status_code=202,
        summary="Submit an analysis job (same inputs as /v1/analyze); returns at once",
        response_model=Job,
        responses=PROBLEM_RESPONSES,
        openapi_extra=ANALYZE_BODY,
    )
    async def submit_job(
        self, request: Request, idempotency_key: str | None = Header(default=None, max_length=200)
    ) -> JSONResponse:
        """An Idempotency-Key is the caller's (scoped by API key) and claimed atomically before anything else:
        concurrent requests with one key make one job; the others get it (200) or, while it is still being
        taken in, 409. Store I/O runs in threads: the store may be a round trip away."""
        principal = self.api_keys.principal(request.headers.get("authorization")) if self.api_keys else "anonymous"
        store, jobs = self.jobs, self.settings.jobs
        if idempotency_key and not await asyncio.to_thread(
            store.claim_key, principal, idempotency_key, jobs.claim_timeout_s
        ):
            job = await asyncio.to_thread(store.job_for_key, principal, idempotency_key)
            if job is None:
                raise JobConflict("a request with this Idempotency-Key is still being taken in; retry later")
            return JSONResponse(job.model_dump(mode="json"), status_code=200, headers={"Location": job.links["self"]})
        upload = uuid.uuid4().hex
        try:
            await asyncio.to_thread(store.check_capacity, jobs)  # cheap refusal before reading the upload
            intake, fetch_s, media = await self._stage(request, upload)
            job = await queue_job(
                store,
                self.chunker,
                self.runner,
                jobs,
                upload=upload,
                media=media,
                options=intake.options,
                source=intake.source,
                fetch_s=fetch_s,
                bind=(lambda job_id: store.bind_key(principal, idempotency_key, job_id)) if idempotency_key else None,
            )
        except BaseException:
            if idempotency_key:  # nothing was made: the key may be used again
                await asyncio.to_thread(store.release_key, principal, idempotency_key)
            raise
        finally:
            await asyncio.to_thread(store.delete_upload, upload)  # moved into the job, or a failed intake
        return JSONResponse(job.model_dump(mode="json"), status_code=202, headers={"Location": job.links["self"]})

    @api.get("/v1/jobs", summary="Recent jobs, newest first", response_model=JobList)
    async def list_jobs(self, limit: int = Query(default=50, ge=1, le=500)) -> JobList:
        return JobList(jobs=await asyncio.to_thread(self.jobs.list, limit))

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id[:64]!r}")
        return job

    async def _load_job(self, job_id: str) -> Job:
        """`_job` off the event loop."""
        return await asyncio.to_thread(self._job, job_id)

    @api.get(
        "/v1/jobs/{job_id}", summary="A job's status and progress", response_model=Job, responses=PROBLEM_RESPONSES
    )
    async def get_job(self, job_id: str) -> Job:
        return await self._load_job(job_id)

    @api.get(
        "/v1/jobs/{job_id}/result",
        summary="The finished job's analysis",
        response_model=VideoAnalysis,
        responses=PROBLEM_RESPONSES,
    )
    async def job_result(self, job_id: str) -> VideoAnalysis:
        job = await self._load_job(job_id)
        result = await asyncio.to_thread(self.jobs.load_result, job_id) if job.status == "succeeded" else None
        if result is None:
            raise JobConflict(f"job {job_id} is {job.status}" + (f": {job.error}" if job.error else ""))
        return result

    @api.get(
        "/v1/jobs/{job_id}/transcript.{fmt}",
        summary="The finished job's transcript as WebVTT (`vtt`), SubRip (`srt`) or JSON (`json`)",
        responses={200: {"content": {"text/vtt": {}, "application/x-subrip": {}}}, **PROBLEM_RESPONSES},
    )
    async def job_transcript(self, job_id: str, fmt: Literal["vtt", "srt", "json"]) -> Response:
        result = await self.job_result(job_id)
        if result.transcript is None:
            why = result.transcript_error or (
                "audio was off" if result.request.audio == "off" else "the video has no audio track"
            )
            raise NoTranscript(f"job {job_id} has no transcript: {why}")
        if fmt == "json":
            return JSONResponse(result.transcript.model_dump(mode="json"))
        text, media_type = (
            (to_webvtt(result.transcript), "text/vtt")
            if fmt == "vtt"
            else (to_srt(result.transcript), "application/x-subrip")
        )
        return Response(text, media_type=f"{media_type}; charset=utf-8")

    @api.delete("/v1/jobs/{job_id}", summary="Cancel a job", response_model=Job, responses=PROBLEM_RESPONSES)
    async def cancel_job(self, job_id: str) -> Job:
        job = await self._load_job(job_id)
        if job.terminal:
            raise JobConflict(f"job {job_id} is already {job.status}")
        return await self.runner.cancel.remote(job_id)

    @api.get(
        "/v1/jobs/{job_id}/events",
        summary="Server-Sent Events: `chunk` per finished chunk (id: its place in finishing order), `progress`, "
        "then `result` (or `end`). A stream without either ended its window: reconnect with Last-Event-ID "
        "(serve_app.http.events has the contract).",
        responses={200: {"content": {"text/event-stream": {}}}, **PROBLEM_RESPONSES},
    )
    async def job_events(
        self,
        job_id: str,
        last_event_id: str | None = Header(default=None, max_length=64),
        x_request_timeout_seconds: str | None = Header(default=None, max_length=32),
    ) -> StreamingResponse:
        await self._load_job(job_id)
        return StreamingResponse(
            events.job_events(
                self.jobs,
                job_id,
                self.settings.jobs,
                after=events.resume_point(last_event_id),
                window_s=events.stream_window_s(self.settings.jobs, x_request_timeout_seconds),
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- the web page, and a job's files (serve_app.web.job_files) ---------------------
    @api.get("/", include_in_schema=False)
    async def web_page(self) -> Response:
        return web.page()

    @api.post(
        "/v1/jobs/{job_id}/playback",
        summary="A short-lived cookie that lets the browser load this job's video and images by URL",
        response_model=job_files.Playback,
        responses=PROBLEM_RESPONSES,
    )
    async def playback(self, request: Request, job_id: str) -> Response:
        job = await self._load_job(job_id)
        return job_files.playback_response(self.media_tokens, request, job.id)

    @api.get(
        "/v1/jobs/{job_id}/media",
        summary="The job's video, kept with a succeeded result (HTTP range requests: 206)",
        response_class=Response,
        responses={200: {"content": {"video/*": {}}}, 206: {"description": "Partial content"}, **PROBLEM_RESPONSES},
    )
    async def job_media(self, job_id: str) -> Response:
        job = await self._load_job(job_id)
        return await asyncio.to_thread(job_files.media_response, self.jobs, job, self.media_cache)

    @api.get(
        "/v1/jobs/{job_id}/thumbnails",
        summary="The kept frames' thumbnails, in time order",
        response_model=list[job_files.Thumbnail],
        responses=PROBLEM_RESPONSES,
    )
    async def job_thumbnails(self, job_id: str) -> list[job_files.Thumbnail]:
        job = await self._load_job(job_id)
        return await asyncio.to_thread(job_files.thumbnails, self.jobs, job.id, job.links["self"])

    @api.get(
        "/v1/jobs/{job_id}/thumbnails/{millis}.jpg",
        summary="One thumbnail (JPEG), named by its time in milliseconds",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, **PROBLEM_RESPONSES},
    )
    async def job_thumbnail(self, job_id: str, millis: int) -> Response:
        job = await self._load_job(job_id)
        data = await asyncio.to_thread(job_files.load_thumbnail, self.jobs, job.id, millis)
        return Response(data, media_type="image/jpeg", headers=job_files.IMMUTABLE_HEADERS)

    @api.get(
        "/v1/jobs/{job_id}/contact-sheet.jpg",
        summary="The kept frames in one image, each with its time",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, **PROBLEM_RESPONSES},
    )
    async def job_contact_sheet(self, job_id: str) -> Response:
        job = await self._load_job(job_id)
        data = await asyncio.to_thread(job_files.contact_sheet_jpeg, self.jobs, job)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-cache"})

    @api.get(
        "/v1/jobs/{job_id}/chapters.{fmt}",
        summary="The finished job's chapters (from the timeline) as WebVTT chapters (`vtt`), Markdown (`md`) or "
        "JSON (`json`)",
        responses={200: {"content": {"text/vtt": {}, "text/markdown": {}}}, **PROBLEM_RESPONSES},
    )
    async def job_chapters(self, job_id: str, fmt: Literal["vtt", "md", "json"]) -> Response:
        return job_files.chapters_response(await self.job_result(job_id), fmt)

    # -- search ------------------------------------------------------------------
    @api.get(
        "/v1/search",
        summary="Search the processed videos (timelines, screen text, chunk answers, transcripts), best first",
        response_model=SearchResults,
        responses=PROBLEM_RESPONSES,
    )
    async def search(
        self,
        q: str = Query(default="", description=QUERY_HELP),
        limit: int = Query(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    ) -> SearchResults:
        """serve_app.search has the syntax and the index; a bad query is a 422 (invalid-query). In a thread:
        the index (opened on first use) first takes in the results that are new in the store."""
        return await asyncio.to_thread(lambda: online_index(self.settings).search(q, limit))

    # -- OpenAI-compatible chat --------------------------------------------------------
    @api.get("/v1/models", summary="The served model (OpenAI `models.list`)")
    async def models(self) -> dict[str, Any]:
        model = await self.chat.model_id()
        return {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "reelserve"}]}

    @api.post(
        "/v1/chat/completions",
        summary="OpenAI Chat Completions with `video_url` parts: a question about a whole video, answered "
        "with cited times (serve_app.chat has the contract)",
        responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
    )
    async def chat_completions(self, request: Request) -> Response:
        body = await read_limited(request.stream(), self.settings.chat.max_request_bytes, "JSON body")
        question = await self.chat.prepare(body)  # errors before any answer: a plain status and body
        if question.request.stream:
            return StreamingResponse(
                chat_stream(self.chat, question, self.settings.jobs.events_keepalive_s),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return JSONResponse(await chat_completion(self.chat, question))
