"""The OpenAI Chat Completions wire format, as vLLM's OpenAI-compatible server speaks it (the subset we serve).

Requests are validated strictly: a field this server does not implement is a 400 naming it, never silently
ignored (`extra="forbid"`). reelserve's own options — how a video is analysed before the question is
answered — arrive where the OpenAI SDK puts `extra_body`: as top-level fields (`mode`, `sampling`, `fps`,
`chunk_s`, `overlap_s`, `audio`, `language`), the names of `AnalyzeOptions`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_app.schemas import AnalysisMode, AudioMode, SamplingStrategy

__all__ = [
    "ANALYSIS_FIELDS",
    "ChatRequest",
    "Citation",
    "Message",
    "ResponseFormat",
    "TextPart",
    "VideoPart",
]

_STRICT = ConfigDict(extra="forbid")


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str = Field(max_length=32_000)


class VideoUrl(BaseModel):
    model_config = _STRICT
    url: str = Field(
        min_length=8,
        max_length=4096,
        description="http(s) URL (fetched with the same SSRF rules as /v1/analyze), `reelserve://jobs/<job id>` "
        "(a job's video and its analysis) or `reelserve://videos/<video id>` (a processed video by its "
        "content hash).",
    )


class VideoPart(BaseModel):
    model_config = _STRICT
    type: Literal["video_url"]
    video_url: VideoUrl


class Message(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart | VideoPart] = Field(description="Text, or text and video_url parts.")
    name: str | None = Field(default=None, max_length=64)

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def videos(self) -> list[str]:
        if isinstance(self.content, str):
            return []
        return [p.video_url.url for p in self.content if isinstance(p, VideoPart)]


class JsonSchemaFormat(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = _STRICT
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_json_schema(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("response_format.json_schema is required with type 'json_schema', and only then")
        return self


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool = False


#: The reelserve options a request may carry (the OpenAI SDK's `extra_body`), as `AnalyzeOptions` names them.
ANALYSIS_FIELDS = ("mode", "sampling", "fps", "chunk_s", "overlap_s", "audio", "language")


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions`. One video at most per conversation: a question about a video is answered
    from its whole analysis (every chunk), not from a handful of frames."""

    model_config = _STRICT

    model: str = Field(min_length=1, max_length=256, description="The served model's id (`GET /v1/models`).")
    messages: list[Message] = Field(min_length=1, max_length=64)
    max_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    user: str | None = Field(default=None, max_length=256, description="The end user's id, for the logs.")
    # reelserve's options (extra_body): how the video is analysed; None = the server's default.
    mode: AnalysisMode | None = None
    sampling: SamplingStrategy | None = None
    fps: float | None = Field(default=None, gt=0, le=8)
    chunk_s: float | None = Field(default=None, ge=2, le=600)
    overlap_s: float | None = Field(default=None, ge=0, le=30)
    audio: AudioMode | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")

    @model_validator(mode="after")
    def _one_limit(self) -> ChatRequest:
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("give max_tokens or max_completion_tokens, not both")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options needs stream: true")
        if self.mode == "custom":
            raise ValueError("mode 'custom' is not for questions: ask the question itself")
        return self

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def video_urls(self) -> list[str]:
        return [url for m in self.messages for url in m.videos()]

    def analysis_options(self) -> dict[str, Any]:
        """The reelserve options the request set (unset ones take the server's defaults)."""
        return {name: getattr(self, name) for name in ANALYSIS_FIELDS if getattr(self, name) is not None}


class Citation(BaseModel):
    """A moment the answer rests on: a used chunk's time range, or a `[mm:ss]` mark of the answer inside one."""

    model_config = ConfigDict(frozen=True)
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    chunk: int = Field(ge=0, description="The chunk (`VideoAnalysis.chunks[].index`) the moment lies in.")


# -- responses ------------------------------------------------------------------------------------
# Built as plain dicts in the SDK's shapes (`ChatCompletion`, `ChatCompletionChunk`); reelserve's additions
# are the top-level `citations` and `reelserve` fields, which the SDK keeps (its models allow extras).


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(
    *, id: str, created: int, model: str, content: str, finish_reason: str, usage: dict[str, int], extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
        **extra,
    }


def chunk(
    *,
    id: str,
    created: int,
    model: str,
    delta: dict[str, str] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One stream chunk; `delta=None` is the usage-only chunk (`stream_options.include_usage`: no choices)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return {**body, **(extra or {})}


#: OpenAI error `type`s by status, as the SDK and OpenAI's own API name them.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """The error body the OpenAI SDK parses (`{"error": {...}}`); `code` is reelserve's problem type."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
