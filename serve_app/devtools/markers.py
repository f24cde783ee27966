"""What Qwen3-VL is really given for a chunk, read back from vLLM's own multimodal processor.

`ModelInputProbe` builds vLLM's real Qwen3-VL processor
(`MULTIMODAL_REGISTRY.create_processor`) from the `ModelConfig` that
`VLMEngine.engine_args()` yields (operator-set `mm_processor_kwargs`
included), and runs it on exactly what `VLMEngine.analyze_chunk` sends: the
chat-template prompt of `VLMEngine._prompt` and `video_input(chunk)`. From the
result it reads back, without re-implementing any of vLLM's marker math:

- the prompt tokens decoded to text, split into one segment per temporal pair:
  `<X.Y seconds><|vision_start|><|video_pad|>...<|vision_end|>`;
- the pixels: `pixel_values_videos` un-patchified into frames
  (`unpatchify`), so each frame's index code (`devtools.synthetic`) says which
  source frame the model sees under which marker.

`check_chunk` then compares markers with the frames' true source times.
No engine is started; the tiny model folder only provides config, tokenizer
and processor settings. vLLM is imported lazily.

Layout of `pixel_values_videos` (transformers' `Qwen3VLVideoProcessor.patchify`,
one row per patch): the video [T, C, H, W] is viewed as
(T/tp, tp, C, H/(m p), m, p, W/(m p), m, p) and permuted to rows
(T/tp, H/(m p), W/(m p), m, m) x columns (C, tp, p, p); tp = temporal patch 2,
p = patch 16, m = spatial merge 2. With vLLM's device-side normalisation
(`mm_device_do_normalize`, the default for Qwen3-VL) the values are raw 0..255
pixels; otherwise they are `(x * rescale - mean) / std`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from serve_app.devtools.synthetic import render_frame_index
from serve_app.schemas import ChunkTask, TranscriptSegment

if TYPE_CHECKING:
    from serve_app.chat.answer import ChatPrompt
    from serve_app.config import ModelSettings
    from serve_app.video.decode import SampledChunk

__all__ = [
    "ChunkCheck",
    "ModelInputProbe",
    "ModelView",
    "PairCheck",
    "check_chunk",
    "parse_pairs",
    "unpatchify",
    "write_offset_video",
]

#: One temporal pair in the decoded prompt: marker, then its visual tokens.
_PAIR = re.compile(r"<(\d+(?:\.\d+)?) seconds><\|vision_start\|>((?:<\|video_pad\|>)*)<\|vision_end\|>")
_MARKER = re.compile(r"<(\d+(?:\.\d+)?) seconds>")
_VIDEO_PAD = "<|video_pad|>"


@dataclass(frozen=True)
class ModelView:
    """A chunk as the model receives it."""

    prompt: str  # the prompt text reelserve sends (chat template, one video part)
    prompt_text: str  # the processed prompt token ids, decoded
    markers_s: list[float]  # every `<X.Y seconds>` in the processed prompt, in order
    pair_tokens: list[int]  # visual tokens after each marker
    timestamps_s: list[float]  # vLLM's unrounded pair times (the `timestamps` field)
    grid_thw: tuple[int, int, int]  # temporal pairs, patch rows, patch columns
    tokens_per_pair: int  # what the grid implies: h * w / merge^2
    frames: np.ndarray  # uint8 [2 * t, H, W, 3]: the pixels the vision encoder gets, per frame


def parse_pairs(prompt_text: str) -> tuple[list[float], list[int]]:
    """(marker seconds, visual tokens) of each pair segment of a decoded Qwen3-VL prompt."""
    pairs = _PAIR.findall(prompt_text)
    return [float(t) for t, _ in pairs], [len(pads) // len(_VIDEO_PAD) for _, pads in pairs]


def unpatchify(
    pixel_values: Any,
    grid_thw: Sequence[int],
    *,
    patch: int,
    temporal: int,
    merge: int,
    unnormalize: tuple[Sequence[float], Sequence[float], float] | None = None,
) -> np.ndarray:
    """Frames uint8 [t * temporal, h * patch, w * patch, 3] from Qwen3-VL's `pixel_values_videos`.

    `unnormalize` = (mean, std, rescale_factor) when the processor normalised
    on the host; None when the values are raw pixels.
    """
    t, h, w = (int(v) for v in grid_thw)
    x = np.asarray(pixel_values.float().numpy() if hasattr(pixel_values, "numpy") else pixel_values, np.float64)
    channels = x.shape[1] // (temporal * patch * patch)
    x = x.reshape(t, h // merge, w // merge, merge, merge, channels, temporal, patch, patch)
    # -> (t, temporal, C, h/m, m, p, w/m, m, p): the inverse of patchify's permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9).
    x = x.transpose(0, 6, 5, 1, 3, 7, 2, 4, 8).reshape(t * temporal, channels, h * patch, w * patch)
    if unnormalize is not None:
        mean, std, rescale = unnormalize
        x = (x * np.asarray(std)[None, :, None, None] + np.asarray(mean)[None, :, None, None]) / rescale
    return np.clip(np.rint(x), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class _TokenizerOnly:
    """Stands in for `AsyncLLM` where `VLMEngine._prompt` only needs its tokenizer."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def get_tokenizer(self) -> Any:
        return self._tokenizer


class ModelInputProbe:
    """vLLM's Qwen3-VL multimodal processor, configured as `VLMEngine` configures the engine.

    Building it imports vLLM (~15-20 s on 2 cores); reuse one per process.
    `device_normalize=None` keeps vLLM's default; False makes the processor
    normalise on the host (float pixel values), to check `unpatchify` both ways.
    """

    def __init__(
        self,
        model: ModelSettings | None = None,
        token_budget: int | None = None,
        *,
        device_normalize: bool | None = None,
    ) -> None:
        from vllm.multimodal import MULTIMODAL_REGISTRY

        from serve_app.config import ModelSettings, VideoSettings
        from serve_app.engine.vllm import VLMEngine

        self.engine = VLMEngine(model or ModelSettings(), token_budget or VideoSettings().token_budget)
        args = self.engine.engine_args()
        if device_normalize is not None:
            args.mm_device_do_normalize = device_normalize
        self.model_config = args.create_model_config()
        self.processor = MULTIMODAL_REGISTRY.create_processor(self.model_config)
        self.tokenizer = self.processor.info.get_tokenizer()
        self.engine._engine = _TokenizerOnly(self.tokenizer)  # only for `_prompt`; no engine runs
        mm_config = self.model_config.get_multimodal_config()
        self.device_normalize = bool(mm_config.mm_device_do_normalize)
        video_processor = self.processor.info.get_video_processor()
        self.patch = int(video_processor.patch_size)
        self.temporal = int(video_processor.temporal_patch_size)
        self.merge = int(video_processor.merge_size)
        self._unnormalize: tuple[Sequence[float], Sequence[float], float] | None = None
        if not self.device_normalize and video_processor.do_normalize:
            rescale = float(video_processor.rescale_factor) if video_processor.do_rescale else 1.0
            self._unnormalize = (video_processor.image_mean, video_processor.image_std, rescale)

    def prompt(self, chunk: SampledChunk, mode: str = "describe", speech: Sequence[TranscriptSegment] = ()) -> str:
        """The prompt `VLMEngine.analyze_chunk` sends for `chunk` (no user prompt) with `speech`."""
        task = ChunkTask(video_id="probe", mode=mode, max_tokens=1)  # type: ignore[arg-type]
        instruction, _ = self.engine.chunk_instruction(chunk, task, speech)
        return self.engine._prompt(instruction, True)

    def chat_prompt(self, prompt: ChatPrompt, max_tokens: int) -> str:
        """The text of the token ids `VLMEngine.chat` sends for `prompt` (special tokens included)."""
        return str(self.tokenizer.decode(self.engine.chat_prompt_ids(prompt, max_tokens)))

    def view(self, chunk: SampledChunk, mode: str = "describe", speech: Sequence[TranscriptSegment] = ()) -> ModelView:
        """Run vLLM's processor on the request `VLMEngine` would send for `chunk`."""
        from serve_app.engine.vllm import video_input

        prompt = self.prompt(chunk, mode, speech)
        items = self.processor.info.parse_mm_data({"video": video_input(chunk)})
        out = self.processor(prompt, items, hf_processor_mm_kwargs={})
        (video,) = out["mm_kwargs"]["video"]
        grid = tuple(int(v) for v in video["video_grid_thw"].data)
        text = self.tokenizer.decode(out["prompt_token_ids"])
        _, pair_tokens = parse_pairs(text)
        timestamps = video["timestamps"].data
        return ModelView(
            prompt=prompt,
            prompt_text=text,
            markers_s=[float(t) for t in _MARKER.findall(text)],
            pair_tokens=pair_tokens,
            timestamps_s=[float(t) for t in (timestamps.tolist() if hasattr(timestamps, "tolist") else timestamps)],
            grid_thw=(grid[0], grid[1], grid[2]),
            tokens_per_pair=grid[1] * grid[2] // (self.merge * self.merge),
            frames=unpatchify(
                video["pixel_values_videos"].data,
                grid,
                patch=self.patch,
                temporal=self.temporal,
                merge=self.merge,
                unnormalize=self._unnormalize,
            ),
        )


@dataclass(frozen=True)
class PairCheck:
    marker_s: float
    frames: tuple[int, int]  # source frame indices read from the pixels
    times_s: tuple[float, float]  # their true source times

    @property
    def error_s(self) -> float:
        """Distance from the marker to the farther of the pair's two frames."""
        return max(abs(self.marker_s - t) for t in self.times_s)


@dataclass
class ChunkCheck:
    """One chunk's markers against its frames' true times; `problems` empty when all holds."""

    index: int
    start_s: float
    end_s: float
    pairs: list[PairCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def worst_error_s(self) -> float:
        return max((p.error_s for p in self.pairs), default=math.nan)


def _half_frame(times: Sequence[float], index: int) -> float:
    """Half the source frame's display interval (the gap to its neighbour; variable-rate aware)."""
    if len(times) < 2:
        return 0.0
    if index + 1 < len(times):
        return (times[index + 1] - times[index]) / 2
    return (times[index] - times[index - 1]) / 2


def check_chunk(
    view: ModelView,
    chunk: SampledChunk,
    times: Sequence[float] | None,
    read_index: Callable[[np.ndarray], int] | None,
    *,
    max_error_s: float = 0.5,
) -> ChunkCheck:
    """Check what the model gets for `chunk` against the source.

    `times[i]` is the true time of source frame i (from the stream's first
    frame, reelserve's clock) and `read_index(frame)` reads i from a frame's
    pixels. Checked: markers = pairs = grid t and each pair's visual tokens
    match the grid; the model's frames are the chunk's frames at the planned
    size; source frames strictly increase (only the padding that makes the
    count even may repeat the last one); every frame lies in [start - half a
    frame, end + half a frame]; each marker within `max_error_s` of both
    frames of its pair. Without frame codes (`times`/`read_index` None, real
    media) the decoder's own frame times stand for the truth and the frames
    are numbered by position.
    """
    plan = chunk.plan
    result = ChunkCheck(index=plan.index, start_s=plan.start_s, end_s=plan.end_s)
    problems = result.problems
    t = view.grid_thw[0]
    markers, tokens, per_pair = view.markers_s, view.pair_tokens, view.tokens_per_pair
    if not len(markers) == len(tokens) == t:
        problems.append(f"{len(markers)} markers, {len(tokens)} pair segments, grid t = {t}")
    if any(n != per_pair for n in tokens):
        problems.append(f"visual tokens per pair {sorted(set(tokens))}, grid says {per_pair}")
    if view.frames.shape[0] != len(chunk.frames):
        problems.append(f"the model gets {view.frames.shape[0]} frames, the chunk has {len(chunk.frames)}")
    if view.frames.shape[1:3] != (plan.height, plan.width):
        size = f"{view.frames.shape[2]}x{view.frames.shape[1]}"
        problems.append(f"frames reach the model at {size}, planned {plan.width}x{plan.height}")
    if times is None or read_index is None:
        if not np.array_equal(view.frames, chunk.frames):
            problems.append("the model's frames are not the chunk's")
        times = list(chunk.frame_times_s)
        indices = [i - 1 if i and times[i] == times[i - 1] else i for i in range(len(times))]
        half_frame = 0.5 / chunk.source_fps
    else:
        half_frame = None
        indices = [read_index(frame) for frame in view.frames]
        if indices != [read_index(frame) for frame in chunk.frames]:
            problems.append(f"the model's frames {indices} are not the chunk's")
    if any(not 0 <= i < len(times) for i in indices):
        problems.append(f"unreadable frame codes {indices}")
        return result
    for k, (a, b) in enumerate(zip(indices, indices[1:], strict=False)):
        padding = k == len(indices) - 2 and a == b
        if b <= a and not padding:
            problems.append(f"frame order: source frame {b} follows {a} (positions {k}, {k + 1})")
    for i in indices:
        half = (half_frame if half_frame is not None else _half_frame(times, i)) + 1e-6
        if not plan.start_s - half <= times[i] <= plan.end_s + half:
            problems.append(f"frame {i} at {times[i]:.3f} s lies outside [{plan.start_s:.3f}, {plan.end_s:.3f}] s")
    for k, marker in enumerate(markers[: len(indices) // 2]):
        i0, i1 = indices[2 * k], indices[2 * k + 1]
        pair = PairCheck(marker_s=marker, frames=(i0, i1), times_s=(times[i0], times[i1]))
        result.pairs.append(pair)
        if pair.error_s > max_error_s:
            problems.append(
                f"pair {k}: marker <{marker} seconds> but its frames {i0}, {i1} are at "
                f"{times[i0]:.3f} s and {times[i1]:.3f} s (error {pair.error_s:.3f} s)"
            )
    return result


def write_offset_video(
    path: str | Path, *, start_s: float, duration_s: float, fps: float, width: int, height: int
) -> list[float]:
    """Frames that show their index (as `synthetic.write_video`), the first presented at `start_s`.

    Real recordings often start late (MPEG-TS, cut files, edit lists). H.264
    with x264's B-frames. Returns each frame's presentation time as stored
    (so frame 0 is at `start_s`).
    """
    rate = Fraction(fps).limit_denominator(1001)
    first = round(start_s * rate)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": "veryfast", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        count = max(1, round(duration_s * rate))
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(render_frame_index(index, width, height), format="rgb24")
            frame.pts = first + index
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return [float((first + i) / rate) for i in range(count)]
