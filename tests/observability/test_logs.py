"""serve_app.observability.logs: our and vLLM's records go through Serve's replica logger, at its level,
with what its filters add; the request id handle calls carry is the one set for the work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from ray.serve.context import _get_serve_request_context, _unset_request_context

from serve_app.observability.logs import ROUTED_LOGGERS, SERVE_LOGGER, route_to_serve, serve_request_id, use_request_id


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class TagRequest(logging.Filter):
    """Stands in for Serve's ServeContextFilter: the request id of the current Serve request context."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _get_serve_request_context().request_id
        return True


@pytest.fixture()
def serve_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collect]:
    """Serve's logger as a replica has it (a handler with a filter, a level, no propagation); restored after."""
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    loggers = [logging.getLogger(n) for n in (SERVE_LOGGER, *ROUTED_LOGGERS)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    serve = logging.getLogger(SERVE_LOGGER)
    collect = Collect()
    collect.addFilter(TagRequest())
    serve.handlers = [collect]
    serve.setLevel(logging.INFO)
    serve.propagate = False
    yield collect
    for lg, handlers, level, propagate in saved:
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate
    _unset_request_context()


def test_our_and_vllms_records_go_through_serves_logger_at_its_level(serve_logger: Collect) -> None:
    route_to_serve()
    route_to_serve()  # idempotent: one handler, so one copy of each record
    logging.getLogger("serve_app.flow").info("video %s chunk %d", "abc", 3)
    logging.getLogger("serve_app.flow").debug("below the deployment's log_level")
    logging.getLogger("vllm.v1.engine").warning("from the engine")
    assert [(r.name, r.getMessage()) for r in serve_logger.records] == [
        ("serve_app.flow", "video abc chunk 3"),
        ("vllm.v1.engine", "from the engine"),
    ]
    assert not logging.getLogger("serve_app").propagate  # not a second time through the root logger


def test_vllm_is_kept_from_closing_serves_handlers(serve_logger: Collect, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    route_to_serve()
    assert os.environ["VLLM_CONFIGURE_LOGGING"] == "0"
    monkeypatch.setenv("VLLM_CONFIGURE_LOGGING", "1")  # an operator's explicit choice stands
    route_to_serve()
    assert os.environ["VLLM_CONFIGURE_LOGGING"] == "1"


def test_a_jobs_id_is_carried_by_the_work_of_its_task_only(serve_logger: Collect) -> None:
    route_to_serve()
    log = logging.getLogger("serve_app.deployments.runner")

    async def job(job_id: str) -> str:
        use_request_id(job_id)
        await asyncio.sleep(0)
        child = asyncio.create_task(asyncio.sleep(0, result=serve_request_id()))  # e.g. a chunk's handle call
        log.info("job %s chunk", job_id)
        return await child

    async def main() -> tuple[list[str], str]:
        carried = await asyncio.gather(job("job-a"), job("job-b"))
        return list(carried), serve_request_id()

    carried, outside = asyncio.run(main())
    assert carried == ["job-a", "job-b"] and outside == ""
    assert sorted((r.getMessage(), r.request_id) for r in serve_logger.records) == [
        ("job job-a chunk", "job-a"),
        ("job job-b chunk", "job-b"),
    ]
