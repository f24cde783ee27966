"""The vLLM implementation of `serve_app.engine.Engine`: Qwen3-VL prompts with one pre-sampled video,
forced JSON answers, over one vLLM `AsyncLLM`. Frames arrive already
decoded, sampled and resized to the planned size, with their true source
timestamps; the video metadata handed to vLLM (`fps`, `frames_indices`) makes
the `<t seconds>` markers in the prompt equal those timestamps. Processor
settings are fixed here by the operator; nothing from a request reaches
vLLM's multimodal processor (see CVE-2026-105758 in the notes).

Completion budgets: a chunk's first attempt gets its mode's `answer_token_budget`
(the longest valid answer), or the request's smaller max_tokens; free text gets
max_tokens. An answer cut off there is generated once more with twice the
budget (capped by max_model_len); cut off again, it is a chunk error (a summary:
OutputError) that says so, and completion_tokens counts both attempts.

vLLM is imported lazily so the module can be imported where vLLM is absent.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serve_app.analysis import (
    OutputError,
    answer_schema,
    build_instruction,
    parse_answer,
    parse_summary,
    summary_instruction,
    summary_schema,
    thin_lines,
    timeline_text,
)
from serve_app.analysis.modes import answer_token_budget, summary_token_budget
from serve_app.config import GPU_DEFAULT_MODEL, ModelSettings
from serve_app.devtools.tiny_model import ensure_tiny_model, is_tiny_model
from serve_app.engine import ChatDelta
from serve_app.errors import BadRequest, EngineUnavailable, InvalidOptions
from serve_app.schemas import ChunkResult, ChunkTask, Summary, TimelineEntry, TranscriptSegment
from serve_app.speech.transcript import fit_lines, prompt_line
from serve_app.video.tokens import PIXELS_PER_TOKEN

if TYPE_CHECKING:
    from serve_app.chat.answer import ChatPrompt
    from serve_app.video.decode import SampledChunk

logger = logging.getLogger(__name__)

# Qwen3-VL's video processor keeps T*H*W under this many pixels by default
# (12k visual tokens); bigger chunk budgets raise it explicitly.
_DEFAULT_VIDEO_PIXELS = 12_288 * PIXELS_PER_TOKEN


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_model(settings: ModelSettings) -> str:
    """The model path or id to load ('auto' picks the GPU model or the tiny one)."""
    if settings.model != "auto":
        return settings.model
    if gpu_available():
        return GPU_DEFAULT_MODEL
    return str(ensure_tiny_model(settings.tiny_model_dir))


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    visual_tokens: int
    completion_tokens: int  # of every attempt (`_generate_fitted`: the cut-off one and its retry)
    finish_reason: str | None
    seconds: float
    attempts: list[int]  # max_tokens of each attempt
    cut_off: str | None = None  # why the answer is incomplete (cut off again after the retry), if it is


def first_max_tokens(requested: int, budget: int | None) -> int:
    """Completion budget of the first attempt: the schema's bound on the longest valid answer
    (`answer_token_budget`), never more than `requested` (the request's max_tokens, else
    `model.max_tokens`); `requested` alone when the answer is unbounded (free text)."""
    return requested if budget is None else min(requested, budget)


def retry_max_tokens(first: int, prompt_tokens: int, max_model_len: int) -> int:
    """Budget of the one retry after a cut-off answer: twice the first, capped so prompt + answer fit
    the context. Not above `first` means there is no room to retry."""
    return min(2 * first, max_model_len - prompt_tokens)


def _complete(gen: Generation, schema: dict[str, Any] | None) -> bool:
    """Whether the answer is whole: not stopped by a length limit, or stopped right after the grammar's
    last character (the JSON parses)."""
    if gen.finish_reason != "length":
        return True
    if schema is None:
        return False
    try:
        json.loads(gen.text, strict=False)
    except json.JSONDecodeError:
        return False
    return True


class VLMEngine:
    def __init__(self, settings: ModelSettings, token_budget: int) -> None:
        self.settings = settings
        self.token_budget = token_budget
        self.model = resolve_model(settings)
        self.model_id = settings.served_model_name or (
            "reelserve-tiny-qwen3-vl (random weights)" if is_tiny_model(Path(self.model)) else self.model
        )
        self._engine: Any = None
        self._video_token_id: int | None = None

    # -- lifecycle ---------------------------------------------------------
    def engine_args(self) -> Any:
        from vllm import AsyncEngineArgs
        from vllm.config import StructuredOutputsConfig

        s = self.settings
        dtype = s.dtype
        if dtype == "auto" and is_tiny_model(Path(self.model)):
            dtype = "float32"  # the tiny model is float32; matches transformers token for token
        kwargs: dict[str, Any] = {}
        if s.kv_cache_memory_bytes and not gpu_available():
            kwargs["kv_cache_memory_bytes"] = s.kv_cache_memory_bytes
        else:
            kwargs["gpu_memory_utilization"] = s.gpu_memory_utilization
        video_pixels = self.token_budget * PIXELS_PER_TOKEN
        if video_pixels > _DEFAULT_VIDEO_PIXELS:
            # Operator-set (never per request): lets big chunk budgets through unresized.
            kwargs["mm_processor_kwargs"] = {
                "size": {"shortest_edge": 2 * PIXELS_PER_TOKEN, "longest_edge": video_pixels}
            }
        return AsyncEngineArgs(
            model=self.model,
            served_model_name=[self.model_id],
            dtype=dtype,
            max_model_len=s.max_model_len,
            max_num_seqs=s.max_num_seqs,
            enforce_eager=s.enforce_eager,
            trust_remote_code=s.trust_remote_code,
            seed=s.seed,
            limit_mm_per_prompt={"video": 1, "image": 0},
            mm_processor_cache_gb=s.mm_processor_cache_gb,
            # Engine-level: the per-request whitespace switch is ignored by vLLM 0.32.
            structured_outputs_config=StructuredOutputsConfig(backend="xgrammar", disable_any_whitespace=True),
            **kwargs,
        )

    async def start(self) -> None:
        from vllm.v1.engine.async_llm import AsyncLLM

        started = time.perf_counter()
        self._engine = AsyncLLM.from_engine_args(self.engine_args(), stat_loggers=stat_loggers())
        tokenizer = self._engine.get_tokenizer()
        self._video_token_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
        logger.info("engine for %s ready in %.1fs", self.model_id, time.perf_counter() - started)

    def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    async def check_health(self) -> None:
        if self._engine is None:
            raise EngineUnavailable("engine not started")
        await self._engine.check_health()

    def check_schema(self, schema: dict[str, Any]) -> None:
        """Raise InvalidOptions if the structured-output backend cannot enforce `schema`."""
        from vllm.v1.structured_output.backend_xgrammar import has_xgrammar_unsupported_json_features

        if has_xgrammar_unsupported_json_features(schema):
            raise InvalidOptions("schema uses JSON-schema features the structured-output backend cannot enforce")

    # -- requests ----------------------------------------------------------
    async def chat(
        self, prompt: ChatPrompt, schema: dict[str, Any] | None, sampling: dict[str, Any]
    ) -> AsyncIterator[ChatDelta]:
        """A conversation's answer (text only), streamed as it is generated. The notes of `prompt` are
        thinned (halved) until prompt + `max_tokens` fit the context; a conversation that cannot fit even
        so is a BadRequest."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.v1.engine.exceptions import EngineDeadError

        if self._engine is None:
            raise EngineUnavailable("engine not started")
        max_tokens = int(sampling["max_tokens"])
        prompt_ids = self.chat_prompt_ids(prompt, max_tokens)
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=self.settings.temperature if sampling.get("temperature") is None else sampling["temperature"],
            top_p=1.0 if sampling.get("top_p") is None else sampling["top_p"],
            seed=self.settings.seed if sampling.get("seed") is None else sampling["seed"],
            structured_outputs=StructuredOutputsParams(json=schema) if schema is not None else None,
        )
        final = None
        try:
            async for out in self._engine.generate({"prompt_token_ids": prompt_ids}, params, uuid.uuid4().hex):
                final = out
                if not out.finished:
                    yield ChatDelta(out.outputs[0].text)
        except EngineDeadError as exc:
            raise EngineUnavailable(f"engine died: {exc}") from exc
        assert final is not None and final.finished
        completion = final.outputs[0]
        yield ChatDelta(completion.text, completion.finish_reason, len(prompt_ids), len(completion.token_ids))

    def chat_prompt_ids(self, prompt: ChatPrompt, max_tokens: int) -> list[int]:
        """The token ids `chat` sends: the chat template over `prompt.messages`, the notes halved until
        prompt + `max_tokens` fit the context (a conversation that cannot fit even so is a BadRequest)."""
        tokenizer = self._engine.get_tokenizer()
        room = self.settings.max_model_len - max_tokens
        max_chars = room * 3
        while True:
            messages = prompt.messages(max_chars)
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            prompt_ids = tokenizer.encode(text, add_special_tokens=False)  # the template has its own
            if len(prompt_ids) <= room:
                return prompt_ids
            if max_chars < 512 or prompt.notes is None:
                raise BadRequest(
                    f"the conversation takes {len(prompt_ids)} prompt tokens; with max_tokens {max_tokens} the "
                    f"model's context ({self.settings.max_model_len}) leaves {room}"
                )
            max_chars //= 2

    def _prompt(self, instruction: str, with_video: bool) -> str:
        content: list[dict[str, str]] = [{"type": "video"}] if with_video else []
        content.append({"type": "text", "text": instruction})
        tokenizer = self._engine.get_tokenizer()
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )

    async def _generate(
        self,
        instruction: str,
        schema: dict[str, Any] | None,
        max_tokens: int,
        video: tuple[Any, dict[str, Any]] | None = None,
    ) -> Generation:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.v1.engine.exceptions import EngineDeadError

        if self._engine is None:
            raise EngineUnavailable("engine not started")
        params = SamplingParams(
            max_tokens=max_tokens,
            min_tokens=1,  # an empty answer is never useful
            temperature=self.settings.temperature,
            seed=self.settings.seed,
            structured_outputs=StructuredOutputsParams(json=schema) if schema is not None else None,
        )
        request: dict[str, Any] = {"prompt": self._prompt(instruction, video is not None)}
        if video is not None:
            request["multi_modal_data"] = {"video": video}
        started = time.perf_counter()
        final = None
        try:
            async for out in self._engine.generate(request, params, uuid.uuid4().hex):
                final = out
        except EngineDeadError as exc:
            raise EngineUnavailable(f"engine died: {exc}") from exc
        assert final is not None and final.finished
        completion = final.outputs[0]
        prompt_ids = final.prompt_token_ids or []
        return Generation(
            text=completion.text,
            prompt_tokens=len(prompt_ids),
            visual_tokens=sum(1 for t in prompt_ids if t == self._video_token_id),
            completion_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason,
            seconds=time.perf_counter() - started,
            attempts=[max_tokens],
        )

    async def _generate_fitted(
        self,
        instruction: str,
        schema: dict[str, Any] | None,
        max_tokens: int,
        video: tuple[Any, dict[str, Any]] | None = None,
    ) -> Generation:
        """`_generate`; an answer cut off at `max_tokens` is generated once more with
        `retry_max_tokens`. The result is the last attempt's answer with the completion tokens and
        time of both; `cut_off` says so if that answer is incomplete too (never a silent truncation)."""
        first = await self._generate(instruction, schema, max_tokens, video)
        if _complete(first, schema):
            return first
        retry = retry_max_tokens(max_tokens, first.prompt_tokens, self.settings.max_model_len)
        if retry <= first.completion_tokens:
            first.cut_off = (
                f"answer cut off at {first.completion_tokens} tokens, with no room for a retry "
                f"(the prompt's {first.prompt_tokens} tokens leave {retry} of max_model_len "
                f"{self.settings.max_model_len})"
            )
            return first
        logger.info("answer cut off at %d tokens; retrying once with max_tokens %d", first.completion_tokens, retry)
        second = await self._generate(instruction, schema, retry, video)
        second.completion_tokens += first.completion_tokens
        second.seconds += first.seconds
        second.attempts = [max_tokens, retry]
        if not _complete(second, schema):
            second.cut_off = (
                f"answer cut off at {first.completion_tokens} tokens, and again at "
                f"{second.completion_tokens - first.completion_tokens} after one retry with max_tokens {retry} "
                f"({second.completion_tokens} completion tokens counted)"
            )
        return second

    def _count_tokens(self, text: str) -> int:
        return len(self._engine.get_tokenizer().encode(text, add_special_tokens=False))

    def chunk_instruction(
        self, chunk: SampledChunk, task: ChunkTask, speech: Sequence[TranscriptSegment]
    ) -> tuple[str, int]:
        """The text part of a chunk's prompt, and the tokens its transcript lines take (the one place it
        is built: `analyze_chunk`, and the engine-boundary probe in tests)."""
        lines, tokens = fit_lines(speech, self._count_tokens, self.settings.speech_max_tokens)
        plan = chunk.plan
        return build_instruction(task.mode, plan.start_s, plan.end_s, task.prompt, lines), tokens

    async def analyze_chunk(
        self, chunk: SampledChunk, task: ChunkTask, speech: Sequence[TranscriptSegment] = ()
    ) -> ChunkResult:
        """Run one chunk; a bad answer becomes `ChunkResult.error`, a dead engine raises. `speech`: the
        transcript segments overlapping the chunk; their lines go into the prompt, within
        `model.speech_max_tokens`."""
        from vllm.exceptions import VLLMValidationError

        plan = chunk.plan
        instruction, speech_tokens = self.chunk_instruction(chunk, task, speech)
        schema = answer_schema(task.mode, task.json_schema)
        result = ChunkResult(
            index=plan.index,
            start_s=plan.start_s,
            end_s=plan.end_s,
            mode=task.mode,
            frame_times_s=list(chunk.frame_times_s),
            decode=chunk.stats,
            transcript=list(speech),
            transcript_tokens=speech_tokens,
        )
        max_tokens = first_max_tokens(task.max_tokens, answer_token_budget(task.mode, task.json_schema))
        try:
            gen = await self._generate_fitted(instruction, schema, max_tokens, video_input(chunk))
        except (VLLMValidationError, ValueError) as exc:
            logger.warning("video %s chunk %d rejected by the engine: %s", task.video_id, plan.index, exc)
            return result.model_copy(update={"error": f"engine rejected the chunk: {exc}"})
        update: dict[str, Any] = {
            "text": gen.text,
            "prompt_tokens": gen.prompt_tokens,
            "visual_tokens": gen.visual_tokens,
            "completion_tokens": gen.completion_tokens,
            "attempts": gen.attempts,
            "infer_s": gen.seconds,
        }
        try:
            if gen.cut_off:
                raise OutputError(gen.cut_off)
            update["output"] = parse_answer(task.mode, gen.text, task.json_schema)
        except OutputError as exc:
            update["error"] = str(exc)
            logger.warning("video %s chunk %d: %s", task.video_id, plan.index, update["error"])
        return result.model_copy(update=update)

    async def summarize(
        self, entries: list[TimelineEntry], mode: str, speech: Sequence[TranscriptSegment] = ()
    ) -> Summary:
        """One text-only call over the timeline, forced to the summary schema; cut off at its budget, it
        is retried once with a larger one, then raises OutputError (flow.finish: `summary_error`).

        Budget: the summary schema's bound on the longest valid answer, capped by
        `model.summary_max_tokens`. The timeline is thinned so that the prompt leaves room for the
        retry's twice that. `speech` (the transcript) shares the room with the timeline, thinned the same way."""
        max_tokens = first_max_tokens(self.settings.summary_max_tokens, summary_token_budget())
        budget = self.settings.max_model_len - 2 * max_tokens - self.settings.prompt_reserve_tokens
        tokenizer = self._engine.get_tokenizer()
        max_chars = budget * 3
        while True:  # thin the timeline until the prompt fits the context
            share = max_chars // 2 if speech else max_chars
            said = thin_lines([prompt_line(s) for s in speech], max_chars - share)
            instruction = summary_instruction(timeline_text(entries, share), mode, said)
            if len(tokenizer.encode(instruction)) <= budget or max_chars < 256:
                break
            max_chars //= 2
        gen = await self._generate_fitted(instruction, summary_schema(), max_tokens)
        if gen.cut_off:
            raise OutputError(f"summary {gen.cut_off}")
        answer = parse_summary(gen.text)
        return Summary(
            title=answer.title,
            summary=answer.summary,
            key_points=answer.key_points,
            text=gen.text,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            attempts=gen.attempts,
        )


def stat_loggers() -> list[Any] | None:
    """vLLM's engine metrics (TTFT, KV-cache use, running / waiting requests: `ray_vllm_*`) on Ray's metrics
    export, as Ray Serve LLM does, when the engine runs in a Ray worker (a VLM replica); elsewhere vLLM's
    defaults (a log line every few seconds, its own prometheus_client registry). Engine stats stay on
    (`disable_log_stats` is vLLM's default, False): they feed both."""
    import ray

    if not ray.is_initialized():
        return None
    from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

    return [RayPrometheusStatLogger]


def video_input(chunk: SampledChunk) -> tuple[Any, dict[str, Any]]:
    """Frames plus the metadata vLLM's Qwen3-VL processor needs for true timestamps.

    Timestamps in the prompt are `frames_indices / fps`; with the source fps
    and each frame's index at that rate they equal the source times (to half a
    frame for variable-frame-rate input). `do_sample_frames=False`: frames are
    already sampled.
    """
    fps = chunk.source_fps
    indices = [round(t * fps) for t in chunk.frame_times_s]
    total = max(indices) + 1
    return chunk.frames, {
        "fps": fps,
        "frames_indices": indices,
        "total_num_frames": total,
        "duration": total / fps,
        "video_backend": "opencv",
        "do_sample_frames": False,
    }
