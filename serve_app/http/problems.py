"""Every error leaves as `application/problem+json` (RFC 9457): one renderer, one set of handlers.

    ReelserveError (serve_app.errors)   its status and type; the cause when it crossed a replica
    RequestValidationError, OptionsError 422 invalid-options, with the field errors
    Starlette HTTPException              its status (404 unknown route, 405, ...)
    BackPressureError (Serve)            503 overloaded, with Retry-After
    DeploymentUnavailableError (Serve)   503 unavailable, with Retry-After (a deployment has no replica yet)
    anything else                        500 internal, with the request id (the traceback is logged with it)

Each request gets an id (`X-Request-ID` if the client sent a sane one, else a new one), returned in the
`X-Request-ID` header and, on errors, in the problem's `instance`. Under Serve it is Serve's request id,
the one the logs of the request's chunks carry (serve_app.observability.logs). Every problem is counted
(`reelserve_http_problems_total`, by status and type).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.errors import PROBLEM_BASE, InvalidOptions, ReelserveError
from serve_app.observability.logs import serve_request_id, use_request_id
from serve_app.observability.metrics import record_problem
from serve_app.schemas import Problem

logger = logging.getLogger(__name__)

__all__ = ["PROBLEM_JSON", "PROBLEM_RESPONSES", "OptionsError", "install_problem_handlers", "problem"]

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class OptionsError(Exception):
    """Invalid analysis options found while parsing a request (form fields, JSON body)."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("invalid options")
        self.errors = errors


def request_id(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    retry_after_s: float | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(type=PROBLEM_BASE + type_, title=title, status=status, detail=detail, instance=instance, **extra)
    record_problem(status, type_)
    headers = {"Retry-After": str(round(retry_after_s))} if status == 503 and retry_after_s is not None else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reelserve"'
    if status in (401, 413):
        # The body may not have been read (on purpose): close instead of draining it for keep-alive.
        headers["Connection"] = "close"
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def invalid_options(errors: list[Any], instance: str | None) -> JSONResponse:
    safe = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in errors]
    detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in safe)
    return problem(422, InvalidOptions.type, InvalidOptions.title, detail, instance=instance, errors=safe)


def _instance(request: Request) -> str | None:
    rid = request_id(request.scope)
    return f"urn:reelserve:request:{rid}" if rid else None


class RequestIdMiddleware:
    """Names every request and turns an exception no handler took into a 500 problem (never text/plain)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        rid = sent if _SANE_ID.match(sent) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        # Under Serve the header is Serve's request id (the client's or its own), which its proxy echoes
        # and its logs and handle calls carry; an id not sane enough for a problem's `instance` is
        # replaced there too, so the logs of the request's chunks name the id the client is told.
        serve_rid = serve_request_id()
        if serve_rid and serve_rid != rid:
            use_request_id(rid)
        echo = serve_rid != rid  # Serve's proxy adds the header itself: never twice
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if echo:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (REQUEST_ID_HEADER.encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("request %s: unhandled error", rid)
            if started:  # a streamed body broke mid-way: nothing sane can be sent any more
                raise
            response = problem(
                500,
                "internal",
                "Internal error",
                f"an unexpected error occurred; quote request id {rid} when reporting it",
                instance=f"urn:reelserve:request:{rid}",
            )
            await response(scope, receive, send_with_id)


def install_problem_handlers(api: FastAPI, retry_after_s: Callable[[], float]) -> None:
    """Register the handlers and the request-id middleware on `api`; `retry_after_s()` is read per error
    (settings live in the replica, not at import time)."""

    @api.exception_handler(ReelserveError)
    async def _reelserve_error(request: Request, exc: ReelserveError) -> JSONResponse:
        # Errors raised in another replica arrive wrapped in a RayTaskError subclass; report the cause.
        cause = getattr(exc, "cause", None)
        err = cause if isinstance(cause, ReelserveError) else exc
        detail = str(err.args[0]) if err.args else err.title
        root = request.scope.get("root_path", "").rstrip("/")
        return problem(
            err.status,
            err.type,
            err.title,
            detail,
            instance=_instance(request),
            retry_after_s=retry_after_s(),
            alternate=root + err.alternate if err.alternate else None,
        )

    @api.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return invalid_options(list(exc.errors()), _instance(request))

    @api.exception_handler(OptionsError)
    async def _options_error(request: Request, exc: OptionsError) -> JSONResponse:
        return invalid_options(exc.errors, _instance(request))

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        response = problem(exc.status_code, f"http-{exc.status_code}", detail, detail, instance=_instance(request))
        if exc.headers:  # e.g. 405's Allow
            response.headers.update(exc.headers)
        return response

    @api.exception_handler(BackPressureError)
    async def _overloaded(request: Request, exc: BackPressureError) -> JSONResponse:
        return problem(
            503,
            "overloaded",
            "Service overloaded",
            "too many requests in flight; retry later",
            instance=_instance(request),
            retry_after_s=retry_after_s(),
        )

    @api.exception_handler(DeploymentUnavailableError)
    async def _unavailable(request: Request, exc: DeploymentUnavailableError) -> JSONResponse:
        return problem(
            503,
            "unavailable",
            "Service unavailable",
            "a part of the service has no running replica yet; retry later",
            instance=_instance(request),
            retry_after_s=retry_after_s(),
        )

    _keep_serve_from_replacing(api, (BackPressureError, DeploymentUnavailableError))
    api.add_middleware(RequestIdMiddleware)


def _keep_serve_from_replacing(api: FastAPI, classes: tuple[type[Exception], ...]) -> None:
    """Keep our handlers for Serve's own exceptions: Serve would answer them in plain text.

    When a replica starts, Ray Serve registers its handlers for these classes on the ingress app
    (ray 2.60, `serve/_private/replica.py`: `app.add_exception_handler(exc, ...)` for BackPressureError
    and DeploymentUnavailableError), replacing ours with a text/plain 503. Later registrations for
    these classes are ignored (logged), so every 503 stays a problem with Retry-After.
    """
    register = api.add_exception_handler

    def add_exception_handler(key: Any, handler: Any) -> None:
        if key in classes:
            logger.debug("keeping the problem+json handler for %s", getattr(key, "__name__", key))
            return
        register(key, handler)

    api.add_exception_handler = add_exception_handler  # type: ignore[method-assign]


#: OpenAPI `responses` of the API routes.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": text}
    for code, text in {
        400: "Bad request (empty upload, malformed form, URL not allowed or unreachable)",
        401: "API key missing or not valid",
        404: "No such job",
        409: "Job not in the right state",
        413: "Video too large",
        415: "Unsupported codec",
        422: "Invalid video or options",
        500: "Unexpected error (the problem names the request id)",
        503: "Engine unavailable or overloaded (Retry-After)",
    }.items()
}
