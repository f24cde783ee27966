"""Errors in the OpenAI shape on the OpenAI-compatible routes (`/v1/chat/completions`, `/v1/models`).

Every error of the app is rendered once, as problem+json (serve_app.http.problems). The OpenAI SDK parses
`{"error": {"message", "type", "param", "code"}}` instead, so on these routes this middleware rewrites a
problem body into that shape: same headers (Retry-After, WWW-Authenticate), `code` the problem's type,
`param` the first invalid field, and the same status except 422, which is 400 here: OpenAI's API and vLLM's
server answer every invalid request with 400 (`openai.BadRequestError`).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.chat.wire import error
from serve_app.errors import PROBLEM_BASE

__all__ = ["OPENAI_PATHS", "OpenAIErrors", "openai_error", "openai_status"]

OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})
_PROBLEM_JSON = b"application/problem+json"


def openai_error(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem body as the OpenAI error body."""
    errors = problem.get("errors") or []
    loc = errors[0].get("loc") if errors and isinstance(errors[0], dict) else None
    param = ".".join(str(p) for p in loc if p != "body") if loc else None
    code = str(problem.get("type", "")).removeprefix(PROBLEM_BASE) or "internal"
    return error(openai_status(int(problem.get("status", 500))), code, str(problem.get("detail", "")), param or None)


def openai_status(status: int) -> int:
    return 400 if status == 422 else status


class OpenAIErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").removeprefix(scope.get("root_path", "").rstrip("/"))
        if scope["type"] != "http" or path not in OPENAI_PATHS:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def rewrite(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(_PROBLEM_JSON):
                    start = message  # held until the body is complete
                    return
            elif start is not None and message["type"] == "http.response.body":
                body += message.get("body", b"")
                if message.get("more_body"):
                    return
                out = json.dumps(openai_error(json.loads(body))).encode()
                headers = [
                    (k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type", b"content-length")
                ]
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]
                await send({**start, "status": openai_status(start["status"]), "headers": headers})
                await send({"type": "http.response.body", "body": out})
                return
            await send(message)

        await self.app(scope, receive, rewrite)
