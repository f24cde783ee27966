"""serve_app's logs in Ray Serve's replica logs, and the request id they carry.

Serve configures only its own logger (`ray.serve`) in a replica: its file under the session's
`logs/serve/`, the deployment's `logging_config` (TEXT or JSON, `log_level`: settings `log_encoding`,
`log_level`) and, per record, the request's id. Records of the `serve_app` loggers would fall through to
Python's last-resort handler (WARNING and up, to stderr, no request id); `route_to_serve()` hands them,
and vLLM's, to Serve's logger instead, so they share its files, encoding, level and request ids.

vLLM's own logging setup is turned off in replicas (`VLLM_CONFIGURE_LOGGING=0`, unless set): it applies a
`logging.config.dictConfig`, which closes every handler of the process, and Serve's replica file handler
(a MemoryHandler) drops every record once closed: the VLM replica's log file went silent after the engine
started.

The request id is Serve's: its proxy takes the client's `X-Request-ID` (or makes one), and every handle
call made while serving the request carries it to the replica it calls, so a chunk's decode (Chunker)
and inference (VLM) log lines name the HTTP request they belong to. A job's chunks run after the submit
request ended, in the JobRunner: `use_request_id(job id)` makes the job's id theirs.
"""

from __future__ import annotations

import logging
import os

from ray.serve.context import _get_serve_request_context, _set_request_context

__all__ = ["ROUTED_LOGGERS", "route_to_serve", "serve_request_id", "use_request_id"]

#: Loggers whose records go through Serve's replica logger.
ROUTED_LOGGERS = ("serve_app", "vllm")
SERVE_LOGGER = "ray.serve"  # ray.serve._private.constants.SERVE_LOGGER_NAME


class _ToServeLogger(logging.Handler):
    """Passes each record to Serve's logger, at its level: its handlers (and their filters) as they are at
    the time of the record, so a reconfigured `logging_config` applies too."""

    def emit(self, record: logging.LogRecord) -> None:
        serve_logger = logging.getLogger(SERVE_LOGGER)
        if record.levelno >= serve_logger.getEffectiveLevel():
            serve_logger.handle(record)


def route_to_serve() -> None:
    """In a replica (its constructor, before vLLM is imported): serve_app's and vLLM's records go through
    Serve's replica logger. Idempotent."""
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    level = logging.getLogger(SERVE_LOGGER).getEffectiveLevel()  # the deployment's `log_level`
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        if not any(isinstance(h, _ToServeLogger) for h in routed.handlers):
            routed.addHandler(_ToServeLogger())
        routed.setLevel(level)
        routed.propagate = False  # not twice: the root logger has no business with these records here


def serve_request_id() -> str:
    """The id Serve gave the request being served here ('' outside a Serve request)."""
    return _get_serve_request_context().request_id


def use_request_id(request_id: str) -> None:
    """Serve work that no HTTP request carries (a job's chunks) under `request_id`, in the current task
    and the tasks it starts: their logs and the handle calls they make carry it."""
    _set_request_context(request_id=request_id)
