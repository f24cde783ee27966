"""The engine seam: what the VLM deployment needs from a vision-language engine, and the one that exists.

    Engine (this interface)  ◄── deployments/vlm.py depends on this only
      └── VLMEngine          serve_app/engine/vllm.py: vLLM AsyncLLM + Qwen3-VL (CPU build or CUDA)

`create_engine` is the only place that picks the implementation; vLLM is imported there lazily, so the
interface can be imported (and the deployments unit-tested) where vLLM is absent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from serve_app.config import ModelSettings
from serve_app.schemas import ChunkResult, ChunkTask, Summary, TimelineEntry, TranscriptSegment

if TYPE_CHECKING:
    from serve_app.chat.answer import ChatPrompt
    from serve_app.video.decode import SampledChunk

__all__ = ["ChatDelta", "Engine", "create_engine"]


@dataclass
class ChatDelta:
    """A conversation's answer as it grows (`VLMEngine.chat`): the whole text so far; the last one has
    `finish_reason` and the token counts."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Engine(Protocol):
    model_id: str

    async def start(self) -> None:
        """Load the model; raises if it cannot."""

    async def analyze_chunk(
        self, chunk: SampledChunk, task: ChunkTask, speech: Sequence[TranscriptSegment] = ()
    ) -> ChunkResult:
        """One chunk (with the transcript segments it overlaps); a bad answer is `ChunkResult.error`, a
        dead engine raises EngineUnavailable."""

    async def summarize(
        self, entries: list[TimelineEntry], mode: str, speech: Sequence[TranscriptSegment] = ()
    ) -> Summary:
        """One text-only call over the timeline and transcript; raises OutputError on an unusable answer."""

    def chat(
        self, prompt: ChatPrompt, schema: dict[str, Any] | None, sampling: dict[str, Any]
    ) -> AsyncIterator[ChatDelta]:
        """One text-only answer to a conversation, streamed: the whole text so far, then a last delta with
        the token counts. `sampling`: max_tokens (required), temperature, top_p, seed."""

    def check_schema(self, schema: dict[str, Any]) -> None:
        """Raise InvalidOptions if a custom answer schema cannot be enforced."""

    async def check_health(self) -> None:
        """Raise EngineUnavailable if the engine cannot serve."""

    def shutdown(self) -> None: ...


def create_engine(model: ModelSettings, token_budget: int) -> Engine:
    from serve_app.engine.vllm import VLMEngine

    return VLMEngine(model, token_budget)
