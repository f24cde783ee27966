"""Ingress: the HTTP API (FastAPI). Parses requests, dispatches to the graph, shapes responses.

Per chunk, the Chunker's `DeploymentResponse` is handed straight to the VLM
call, so decoded frames travel replica to replica, never through here.
Every error leaves as `application/problem+json` (one mapper, below).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_app.analysis import check_custom_schema
from serve_app.auth import PUBLIC_PATHS, load_api_keys
from serve_app.config import Settings, job_store_uri
from serve_app.errors import (
    PROBLEM_BASE,
    BadRequest,
    EmptyUpload,
    EngineUnavailable,
    InvalidOptions,
    JobConflict,
    JobNotFound,
    Overloaded,
    PayloadTooLarge,
    ReelserveError,
)
from serve_app.fetch import UrlPolicy, fetch_url
from serve_app.jobs import JobStore, new_job_id
from serve_app.netguard import install_loopback_guard
from serve_app.schemas import (
    AnalyzeOptions,
    AnalyzeUrlRequest,
    ChunkTask,
    Job,
    JobList,
    Problem,
    VideoAnalysis,
)
from serve_app.upload import read_limited, receive_multipart

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_FORM_FIELDS = ("mode", "prompt", "schema", "fps", "sampling", "chunk_s", "overlap_s", "max_tokens", "aggregate")

_bearer = HTTPBearer(auto_error=False, description="An API key (REELSERVE_API_KEYS); not needed for health checks.")


async def _authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """Every route needs a valid key, except `auth.PUBLIC_PATHS` (and /docs, /openapi.json: not API routes)."""
    path = request.url.path.removeprefix(request.scope.get("root_path", "").rstrip("/")) or "/"
    api_keys = serve.get_replica_context().servable_object.api_keys
    if api_keys is None or path in PUBLIC_PATHS:
        return
    api_keys.check(request.headers.get("authorization"))


api = FastAPI(
    title="reelserve",
    version="0.1.0",
    description="Timestamped, structured understanding of long videos with Qwen3-VL on vLLM and Ray Serve.",
    dependencies=[Depends(_authenticate)],
)


def problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = Problem(type=PROBLEM_BASE + type_, title=title, status=status, detail=detail, **extra)
    headers = {"Retry-After": "5"} if status == 503 else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reelserve"'
    if status in (401, 413):
        # The body may not have been read (on purpose): close instead of draining it for keep-alive.
        headers["Connection"] = "close"
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


@api.exception_handler(ReelserveError)
async def _reelserve_error(_: Request, exc: ReelserveError) -> JSONResponse:
    # Errors raised in another replica arrive wrapped in a RayTaskError subclass; report the cause.
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, ReelserveError) else exc
    return problem(err.status, err.type, err.title, str(err.args[0]) if err.args else err.title)


@api.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return _invalid_options(exc.errors())


@api.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    return problem(exc.status_code, f"http-{exc.status_code}", str(exc.detail), str(exc.detail))


@api.exception_handler(BackPressureError)
async def _overloaded(_: Request, exc: BackPressureError) -> JSONResponse:
    return problem(503, "overloaded", "Service overloaded", "too many requests in flight; retry later")


def _invalid_options(errors: list[Any]) -> JSONResponse:
    safe = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in errors]
    detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in safe)
    return problem(422, InvalidOptions.type, InvalidOptions.title, detail, errors=safe)


_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": text}
    for code, text in {
        400: "Bad request (empty upload, malformed form, URL not allowed or unreachable)",
        401: "API key missing or not valid",
        413: "Video too large",
        415: "Unsupported codec",
        422: "Invalid video or options",
        503: "Engine unavailable or overloaded",
    }.items()
}

_ANALYZE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **{name: {"type": "string"} for name in _FORM_FIELDS},
                    },
                }
            },
            "application/json": {"schema": AnalyzeUrlRequest.model_json_schema(by_alias=True)},
        },
    }
}


class _OptionsError(Exception):
    def __init__(self, errors: list[Any]) -> None:
        super().__init__("invalid options")
        self.errors = errors


@api.exception_handler(_OptionsError)
async def _options_error(_: Request, exc: _OptionsError) -> JSONResponse:
    return _invalid_options(exc.errors)


def _options_from_form(fields: dict[str, Any]) -> AnalyzeOptions:
    unknown = sorted(set(fields) - set(_FORM_FIELDS))
    if unknown:
        raise _OptionsError([{"loc": [name], "msg": "unknown form field"} for name in unknown])
    data: dict[str, Any] = {k: v for k, v in fields.items() if isinstance(v, str) and v != ""}
    if "schema" in data:
        try:
            data["schema"] = json.loads(data["schema"])
        except json.JSONDecodeError as exc:
            raise _OptionsError([{"loc": ["schema"], "msg": f"not JSON: {exc.msg}"}]) from None
    try:
        return AnalyzeOptions.model_validate(data)
    except ValidationError as exc:
        raise _OptionsError(exc.errors()) from None


def sse(event: str, data: str, event_id: str | None = None) -> bytes:
    """One Server-Sent Event (data is one line of JSON)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n".encode()


def _links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "result": f"{base}/result", "events": f"{base}/events"}


# Helpers above are defined before the class: Serve serializes the class when decorated.
@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(
        self,
        chunker: DeploymentHandle,
        vlm: DeploymentHandle,
        aggregator: DeploymentHandle,
        runner: DeploymentHandle,
        settings: Settings,
    ) -> None:
        self.chunker = chunker
        self.vlm = vlm
        self.aggregator = aggregator
        self.runner = runner
        self.settings = settings
        if settings.security.loopback_only_egress:
            install_loopback_guard()
        self.api_keys = load_api_keys(settings.security)  # None only if auth is explicitly disabled
        self.url_policy = UrlPolicy.from_settings(settings.security)
        self.media_dir = settings.serve.store_dir / "media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.jobs = JobStore(job_store_uri(settings))
        self.submit_lock = asyncio.Lock()

    @api.get("/healthz", summary="Liveness: the HTTP ingress answers")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", summary="Readiness: the model engine is loaded and healthy", responses=_PROBLEM_RESPONSES)
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
        responses=_PROBLEM_RESPONSES,
        openapi_extra=_ANALYZE_BODY,
    )
    async def analyze(self, request: Request) -> VideoAnalysis:
        started = time.perf_counter()
        path = self.media_dir / uuid.uuid4().hex
        try:
            options = await self._receive(request, path)
            fetch_s = time.perf_counter() - started
            return await self._run(path, options, fetch_s, started)
        finally:
            path.unlink(missing_ok=True)

    # -- request parsing ---------------------------------------------------
    async def _receive(self, request: Request, dest: Path) -> AnalyzeOptions:
        """Store the video at `dest` and return the validated options."""
        limit = self.settings.video.max_upload_bytes
        options_limit = self.settings.security.max_options_bytes
        content_type = request.headers.get("content-type", "")
        declared = request.headers.get("content-length", "")
        if content_type.startswith("application/json"):
            raw = await read_limited(request.stream(), options_limit, "JSON body")
            try:
                body = AnalyzeUrlRequest.model_validate_json(raw)
            except ValidationError as exc:
                raise _OptionsError(exc.errors()) from None
            if body.json_schema is not None:
                check_custom_schema(body.json_schema)  # cheap checks before the download
            await fetch_url(
                body.video_url,
                dest,
                max_bytes=limit,
                timeout_s=self.settings.serve.url_timeout_s,
                policy=self.url_policy,
            )
            options = AnalyzeOptions.model_validate(body.model_dump(exclude={"video_url"}, by_alias=True))
        elif content_type.startswith("multipart/form-data"):
            # Refuse before reading when the size is declared; otherwise the parser stops at the limit.
            if declared.isdigit() and int(declared) > limit + options_limit * len(_FORM_FIELDS):
                raise PayloadTooLarge(f"upload is {declared} bytes; the limit is {limit}")
            form = await receive_multipart(
                request.stream(),
                content_type,
                dest,
                max_file_bytes=limit,
                max_field_bytes=options_limit,
                field_names=_FORM_FIELDS,
            )
            if form.file_name is None:
                raise BadRequest("multipart upload needs the video in the form field 'file'")
            options = _options_from_form(form.fields)
            if form.file_bytes == 0:
                raise EmptyUpload("the uploaded file is empty")
        else:
            raise BadRequest("send multipart/form-data with a 'file' field, or application/json with 'video_url'")
        if options.json_schema is not None:
            check_custom_schema(options.json_schema)
            await self.vlm.check_schema.remote(options.json_schema)
        return options

    # -- the graph -----------------------------------------------------------
    async def _run(self, path: Path, options: AnalyzeOptions, fetch_s: float, started: float) -> VideoAnalysis:
        probe_started = time.perf_counter()
        info, plans = await self.chunker.plan.remote(str(path), options)
        probe_s = time.perf_counter() - probe_started
        video_id = info.sha256[:16]
        task = ChunkTask(
            video_id=video_id,
            mode=options.mode,
            prompt=options.prompt,
            json_schema=options.json_schema,
            max_tokens=options.max_tokens or self.settings.model.max_tokens,
        )
        logger.info("video %s: %.1fs, %d chunks, mode %s", video_id, info.duration_s, len(plans), options.mode)
        # Frames go Chunker -> VLM directly: the DeploymentResponse is resolved in the VLM replica.
        results = await asyncio.gather(
            *(self.vlm.analyze_chunk.remote(self.chunker.decode.remote(str(path), plan), task) for plan in plans)
        )
        timings = {"fetch_s": fetch_s, "probe_s": probe_s}
        analysis: VideoAnalysis = await self.aggregator.aggregate.remote(
            video_id, info, options, plans, list(results), timings
        )
        analysis.stats.wall_s = time.perf_counter() - started
        return analysis

    # -- async jobs ------------------------------------------------------------
    @api.post(
        "/v1/jobs",
        status_code=202,
        summary="Submit an analysis job (same inputs as /v1/analyze); returns at once",
        response_model=Job,
        responses=_PROBLEM_RESPONSES,
        openapi_extra=_ANALYZE_BODY,
    )
    async def submit_job(
        self, request: Request, idempotency_key: str | None = Header(default=None, max_length=200)
    ) -> JSONResponse:
        if idempotency_key and (existing := self.jobs.job_for_key(idempotency_key)):
            job = self.jobs.get(existing)
            if job is not None:
                return JSONResponse(
                    job.model_dump(mode="json"), status_code=200, headers={"Location": job.links["self"]}
                )
        self._check_capacity()  # cheap refusal before reading the upload
        path = self.media_dir / uuid.uuid4().hex
        try:
            options = await self._receive(request, path)
            info, plans = await self.chunker.plan.remote(str(path), options)
            async with self.submit_lock:  # count and create together, so the bound holds
                self._check_capacity()
                job_id = new_job_id()
                self.jobs.put_media(job_id, path)
                self.jobs.save_plan(job_id, info, plans)
                now = time.time()
                source = "url" if request.headers.get("content-type", "").startswith("application/json") else "upload"
                job = self.jobs.save(
                    Job(
                        id=job_id,
                        status="queued",
                        created_at=now,
                        updated_at=now,
                        request=options,
                        source=source,
                        video=info,
                        links=_links(job_id),
                    )
                )
        finally:
            path.unlink(missing_ok=True)
        if idempotency_key:
            self.jobs.remember_key(idempotency_key, job_id)
        self.runner.wake.remote()
        logger.info("job %s queued: %.1fs of video, %d chunks", job_id, info.duration_s, len(plans))
        return JSONResponse(job.model_dump(mode="json"), status_code=202, headers={"Location": job.links["self"]})

    def _check_capacity(self) -> None:
        """Refuse when running + queued jobs fill the runner's slots and the durable queue."""
        jobs = self.settings.jobs
        capacity = jobs.max_running + jobs.max_queued
        active = sum(1 for j in self.jobs.list(limit=capacity + 200) if not j.terminal)
        if active >= capacity:
            raise Overloaded(f"{active} jobs are running or queued (capacity {capacity}); retry later")

    @api.get("/v1/jobs", summary="Recent jobs, newest first", response_model=JobList)
    async def list_jobs(self, limit: int = Query(default=50, ge=1, le=500)) -> JobList:
        return JobList(jobs=self.jobs.list(limit))

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id[:64]!r}")
        return job

    @api.get(
        "/v1/jobs/{job_id}", summary="A job's status and progress", response_model=Job, responses=_PROBLEM_RESPONSES
    )
    async def get_job(self, job_id: str) -> Job:
        return self._job(job_id)

    @api.get(
        "/v1/jobs/{job_id}/result",
        summary="The finished job's analysis",
        response_model=VideoAnalysis,
        responses=_PROBLEM_RESPONSES,
    )
    async def job_result(self, job_id: str) -> VideoAnalysis:
        job = self._job(job_id)
        result = self.jobs.load_result(job_id) if job.status == "succeeded" else None
        if result is None:
            raise JobConflict(f"job {job_id} is {job.status}" + (f": {job.error}" if job.error else ""))
        return result

    @api.delete("/v1/jobs/{job_id}", summary="Cancel a job", response_model=Job, responses=_PROBLEM_RESPONSES)
    async def cancel_job(self, job_id: str) -> Job:
        job = self._job(job_id)
        if job.terminal:
            raise JobConflict(f"job {job_id} is already {job.status}")
        return await self.runner.cancel.remote(job_id)

    @api.get(
        "/v1/jobs/{job_id}/events",
        summary="Server-Sent Events: `chunk` per finished chunk, `progress`, then `result` (or `end`)",
        responses={200: {"content": {"text/event-stream": {}}}, **_PROBLEM_RESPONSES},
    )
    async def job_events(self, job_id: str) -> StreamingResponse:
        self._job(job_id)
        return StreamingResponse(
            self._events(job_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _events(self, job_id: str):
        """Polls the durable store, so the stream survives runner restarts."""
        sent: set[str] = set()
        last_progress = None
        while True:
            job = self.jobs.get(job_id)
            for key in self.jobs.chunk_keys(job_id):
                if key not in sent:
                    stored = self.jobs.load_chunk(key)
                    sent.add(key)
                    yield sse("chunk", stored.result.model_dump_json(), f"chunk-{stored.result.index}")
            if job.progress != last_progress:
                last_progress = job.progress
                yield sse("progress", job.model_dump_json(include={"id", "status", "progress"}))
            if job.terminal:
                result = self.jobs.load_result(job_id) if job.status == "succeeded" else None
                if result is not None:
                    yield sse("result", result.model_dump_json(), "result")
                else:
                    yield sse("end", job.model_dump_json(include={"id", "status", "error"}), "end")
                return
            await asyncio.sleep(self.settings.jobs.events_poll_s)
