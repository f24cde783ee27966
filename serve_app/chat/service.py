"""`POST /v1/chat/completions` end to end: the video a conversation is about, its analysis, the answer.

    prepare   validate; resolve the video (before any response starts, so bad input is a plain 4xx):
                http(s) URL        fetched (SSRF rules), hashed: its content-hash id (`VideoInfo.video_id`)
                reelserve://jobs/<id>    that job's video and analysis
                reelserve://videos/<id>  a processed video by content hash
              then its analysis: a stored one with compatible options (any succeeded job or archive
              output of that video — the search index knows them all), else a job that analyses it (one
              per video and options, however many questions arrive at once: a claim on the job store)
    run       wait for that job (events the caller turns into SSE keep-alives), then one text-only VLM
              call over the analysis's notes (serve_app.chat.answer), streamed as it is generated

A follow-up question about a processed video decodes nothing and runs no vision: the analysis is read
back from the store. A question whose job outlives `chat.wait_s` gets 503 analysis-pending with
Retry-After; the job carries on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from ray.serve.handle import DeploymentHandle

from serve_app.analysis import check_custom_schema
from serve_app.chat.answer import AnswerStream, ChatPrompt, ChunkNote, MarkFilter, answer_schema, citations_of
from serve_app.chat.wire import ChatRequest, Citation
from serve_app.config import Settings
from serve_app.engine import ChatDelta
from serve_app.errors import (
    AnalysisPending,
    BadRequest,
    JobConflict,
    JobNotFound,
    ModelNotFound,
    UrlForbidden,
    VideoNotFound,
)
from serve_app.flow import queue_job
from serve_app.http.admission import Admission
from serve_app.http.fetch import UrlPolicy, fetch_url
from serve_app.http.problems import OptionsError
from serve_app.schemas import AnalyzeOptions, Job, VideoAnalysis, video_id_of
from serve_app.search import online_index
from serve_app.store.jobs import JobStore
from serve_app.video.chunking import chunking_options
from serve_app.video.probe import file_sha256

__all__ = ["Answered", "ChatService", "Question", "Waiting"]

_PRINCIPAL = "chat"  # analyses made for questions are shared by every caller, like search results
_JOBS_URL = "reelserve://jobs/"
_VIDEOS_URL = "reelserve://videos/"


@dataclass
class Question:
    """A validated request, with its video's analysis or the job that makes it."""

    request: ChatRequest
    model: str
    conversation: list[tuple[str, str]]
    answer: dict[str, Any] | None  # the caller's answer schema (json_schema / json_object), else text
    video_id: str | None = None
    job_id: str | None = None
    analysis: VideoAnalysis | None = None
    reused: bool = False  # the analysis was there before the question
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def about_video(self) -> bool:
        return self.video_id is not None or self.job_id is not None


@dataclass
class Waiting:
    """The question's video is still being analysed: its job, as last read."""

    job: Job


@dataclass
class Answered:
    """The end of an answer: what it says, why it stopped, its citations and token counts."""

    content: str
    finish_reason: str
    citations: list[Citation]
    prompt_tokens: int
    completion_tokens: int


def _compatible(analysis: VideoAnalysis, wanted: dict[str, Any]) -> bool:
    return any(c.ok for c in analysis.chunks) and all(getattr(analysis.request, k) == v for k, v in wanted.items())


class ChatService:
    def __init__(
        self,
        *,
        jobs: JobStore,
        chunker: DeploymentHandle,
        vlm: DeploymentHandle,
        runner: DeploymentHandle,
        settings: Settings,
        url_policy: UrlPolicy,
        intakes: Admission,
    ) -> None:
        self.jobs = jobs
        self.intakes = intakes  # a URL fetch is an intake like an upload: the ingress's one bound
        self.chunker = chunker
        self.vlm = vlm
        self.runner = runner
        self.settings = settings
        self.url_policy = url_policy

    async def model_id(self) -> str:
        return await self.vlm.model_id.remote()

    # -- prepare -------------------------------------------------------------------
    async def prepare(self, body: bytes) -> Question:
        try:
            request = ChatRequest.model_validate_json(body)
        except ValidationError as exc:
            raise OptionsError(exc.errors()) from None
        model = await self.model_id()
        if request.model != model:
            raise ModelNotFound(f"the model {request.model[:100]!r} does not exist; this server serves {model!r}")
        answer = await self._answer_schema(request)
        conversation = [(m.role, m.text()) for m in request.messages if m.text().strip()]
        if not conversation:
            raise BadRequest("the conversation has no text: ask a question")
        question = Question(request, model, conversation, answer)
        urls = request.video_urls()
        if len(urls) > 1:
            raise BadRequest(f"one video per conversation; this one has {len(urls)} video_url parts")
        if urls:
            await self._resolve(question, urls[0])
        return question

    async def _answer_schema(self, request: ChatRequest) -> dict[str, Any] | None:
        fmt = request.response_format
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return {"type": "object"}
        assert fmt.json_schema is not None
        schema = fmt.json_schema.schema_
        check_custom_schema(schema)  # depth and size first: InvalidOptions
        await self.vlm.check_schema.remote(schema)
        return schema

    async def _resolve(self, question: Question, url: str) -> None:
        wanted = question.request.analysis_options()
        if url.startswith(_JOBS_URL):
            job = await asyncio.to_thread(self.jobs.get, url.removeprefix(_JOBS_URL))
            if job is None:
                raise JobNotFound(f"no job {url.removeprefix(_JOBS_URL)[:64]!r}")
            clash = {k: v for k, v in wanted.items() if getattr(job.request, k) != v}
            if clash:
                raise BadRequest(f"job {job.id} was analysed with other options than {sorted(clash)} asks for")
            question.job_id, question.reused = job.id, job.status == "succeeded"
            question.video_id = job.video.video_id if job.video else None
            return
        if url.startswith(_VIDEOS_URL):
            video_id = url.removeprefix(_VIDEOS_URL)
            question.analysis = await self._stored(video_id, wanted)
            if question.analysis is None:
                raise VideoNotFound(f"no processed video {video_id[:64]!r} with these options; send its URL")
            question.video_id, question.reused = video_id, True
            return
        if url.startswith("data:"):
            raise UrlForbidden("data: URLs are not taken; send an http(s) URL or reelserve://jobs/<id>")
        await self._from_url(question, url, wanted)

    async def _stored(self, video_id: str, wanted: dict[str, Any]) -> VideoAnalysis | None:
        analyses = await asyncio.to_thread(online_index(self.settings).analyses_of, video_id)
        return next((a for a in analyses if _compatible(a, wanted)), None)

    async def _from_url(self, question: Question, url: str, wanted: dict[str, Any]) -> None:
        try:
            options = AnalyzeOptions.model_validate(wanted)
        except ValidationError as exc:
            raise OptionsError(exc.errors()) from None
        chunking_options(options, self.settings.video)  # InvalidOptions before the download
        upload = uuid.uuid4().hex
        with self.intakes.slot():  # refused before anything is fetched
            try:
                dest = self.jobs.upload_dest(upload)
                started = time.perf_counter()
                await fetch_url(
                    url,
                    dest,
                    max_bytes=self.settings.video.max_upload_bytes,
                    timeout_s=self.settings.serve.url_timeout_s,
                    policy=self.url_policy,
                )
                fetch_s = time.perf_counter() - started
                question.video_id = video_id_of(await asyncio.to_thread(file_sha256, dest))
                question.analysis = await self._stored(question.video_id, wanted)
                if question.analysis is not None:
                    question.reused = True
                    return
                media = await asyncio.to_thread(self.jobs.stage_upload, upload, dest)
                question.job_id = await self._job_for(question.video_id, options, upload, media, url, fetch_s)
            finally:
                await asyncio.to_thread(self.jobs.delete_upload, upload)  # moved into a job, or not needed

    async def _job_for(
        self, video_id: str, options: AnalyzeOptions, upload: str, media: str, source: str, fetch_s: float
    ) -> str:
        """The job analysing this video with these options: joined when one runs, else queued (claimed
        first, so concurrent questions make one job)."""
        store, key = self.jobs, f"{video_id}:{options.model_dump_json()}"
        for _ in range(3):
            if await asyncio.to_thread(store.claim_key, _PRINCIPAL, key, self.settings.jobs.claim_timeout_s):
                try:
                    job = await queue_job(
                        store,
                        self.chunker,
                        self.runner,
                        self.settings.jobs,
                        upload=upload,
                        media=media,
                        options=options,
                        source=source,
                        fetch_s=fetch_s,
                        bind=lambda job_id: store.bind_key(_PRINCIPAL, key, job_id),
                    )
                except BaseException:
                    await asyncio.to_thread(store.release_key, _PRINCIPAL, key)
                    raise
                return job.id
            job = await asyncio.to_thread(store.job_for_key, _PRINCIPAL, key)
            if job is not None and job.status not in ("failed", "cancelled"):
                return job.id
            if job is not None:  # a failed analysis is not the answer to a new question: try again
                await asyncio.to_thread(store.release_key, _PRINCIPAL, key)
            else:  # another question is taking the video in
                await asyncio.sleep(self.settings.chat.poll_s)
        raise AnalysisPending("another question is taking this video in; ask again shortly")

    # -- run -------------------------------------------------------------------------
    async def run(self, question: Question) -> AsyncIterator[Waiting | str | Answered]:
        """`Waiting` while the analysis runs, then the answer's new text as it comes, then `Answered`."""
        notes: list[ChunkNote] = []
        if question.about_video:
            if question.analysis is None:
                async for job in self._wait(question):
                    yield Waiting(job)
            analysis = question.analysis
            assert analysis is not None
            prompt = ChatPrompt.about(question.conversation, analysis)
            notes = list(prompt.notes or ())
            if not notes:
                failed = sum(1 for c in analysis.chunks if not c.ok)
                raise JobConflict(f"the video's analysis has nothing to answer from ({failed} chunk(s) failed)")
            schema: dict[str, Any] | None = answer_schema(
                [n.chunk for n in notes],
                question.answer,
                self.settings.chat.max_citations,
                self.settings.chat.max_answer_chars,
            )
        else:
            prompt, schema = ChatPrompt(tuple(question.conversation)), question.answer
        request = question.request
        sampling = {
            "max_tokens": request.completion_limit or self.settings.chat.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        deltas = self.vlm.options(stream=True).chat.remote(prompt, schema, sampling)
        if not question.about_video:
            sent = ""
            async for delta in deltas:
                if delta.text[len(sent) :]:
                    yield delta.text[len(sent) :]
                    sent = delta.text
                if delta.finish_reason is not None:
                    yield _answered(delta, delta.text, [])
            return
        async for item in _answer_with_citations(deltas, question, notes):
            yield item

    async def _wait(self, question: Question) -> AsyncIterator[Job]:
        assert question.job_id is not None
        deadline = time.monotonic() + self.settings.chat.wait_s
        while True:
            job = await asyncio.to_thread(self.jobs.get, question.job_id)
            if job is None:
                raise JobNotFound(f"the video's job {question.job_id} is gone")
            if job.terminal:
                break
            if time.monotonic() > deadline:
                done, total = job.progress.chunks_done, job.progress.chunks_total
                raise AnalysisPending(
                    f"the video is still being analysed (job {job.id}, {done}/{total} chunks); ask again later"
                )
            yield job
            await asyncio.sleep(self.settings.chat.poll_s)
        result = await asyncio.to_thread(self.jobs.load_result, job.id) if job.status == "succeeded" else None
        if result is None:
            raise JobConflict(
                f"the video's analysis (job {job.id}) {job.status}" + (f": {job.error}" if job.error else "")
            )
        question.analysis = result


def _answered(delta: ChatDelta, content: str, citations: list[Citation]) -> Answered:
    return Answered(
        content=content,
        finish_reason="length" if delta.finish_reason == "length" else "stop",
        citations=citations,
        prompt_tokens=delta.prompt_tokens,
        completion_tokens=delta.completion_tokens,
    )


async def _answer_with_citations(
    deltas: AsyncIterator[ChatDelta], question: Question, notes: list[ChunkNote]
) -> AsyncIterator[str | Answered]:
    """The answer's text out of the generated JSON as it grows; text answers pass the mark filter, and the
    cited chunks that no mark points into get one at the end."""
    assert question.analysis is not None
    text_answer = question.answer is None
    follow = AnswerStream(text_answer)
    marks = MarkFilter(notes, question.analysis.video.duration_s)
    content = ""
    async for delta in deltas:
        new = follow.feed(delta.text)
        done = delta.finish_reason is not None
        out = marks.feed(new, final=done) if text_answer else new
        if done and text_answer:
            out += marks.closing_marks(follow.chunks or [])
        if out:
            content += out
            yield out
        if done:
            yield _answered(delta, content, citations_of(follow.chunks or [], notes, marks.citations))
