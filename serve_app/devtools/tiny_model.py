"""Build a tiny, RANDOM-WEIGHT Qwen3-VL checkpoint offline, for development and tests.

Its answers are meaningless; it exists so that every real code path (vLLM's
Qwen3-VL processor, vision encoder, M-RoPE with timestamps, structured
outputs) runs on a laptop or CI machine with no GPU and no model hub. The
architecture is Qwen3-VL's, scaled down (~1M parameters, ~4 MB); the
tokenizer is a small byte-level BPE with Qwen's special tokens. Deterministic:
the same seed gives the same files.

Variants (`answers`): "closing" (the default) ends strings, lists and answers
early, so answers are short; "never_closing" never ends anything the grammar
lets it continue, so its answers are the longest valid ones and free text runs
to max_tokens (the cut-off path: tests/engine/test_truncation.py).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Literal

logger = logging.getLogger(__name__)

LABEL = "reelserve tiny random Qwen3-VL (random weights: for development and tests only)"

#: How the model's answers end (see `build_tiny_model`).
Answers = Literal["closing", "never_closing"]

# Qwen's special tokens, registered first so their ids are 0..13.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2's pre-tokenizer split pattern.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# A Qwen-style chat template: one `<|vision_start|><|video_pad|><|vision_end|>`
# per video part, as the real Qwen3-VL template emits.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'video' -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# The video processor must never resize what reelserve planned: the budget
# covers T*H*W of a whole chunk (here the 8B model's default, 12k tokens).
VIDEO_SIZE = {"shortest_edge": 4 * 32 * 32, "longest_edge": 12_288 * 32 * 32 * 2}


def _corpus() -> list[str]:
    words = (
        "the a video screen slide window meeting speaker shows user clicks button menu dialog "
        "text code chart table title summary scene layout person people camera desktop browser "
        "terminal editor file open close scroll type select share presentation seconds time "
        "true false null description activity visible elements participants context key points"
    ).split()
    lines = []
    for i in range(400):
        picked = [words[(i * 7 + j * 13) % len(words)] for j in range(12)]
        lines.append(" ".join(picked) + f' {{"t": {i % 60}.{i % 10}, "n": {i}}}, [{i}] <{i % 97} seconds>')
    return lines


def _build_tokenizer(vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=32_768,
    )


def _bias_towards_closing(model, tokenizer, bias: float, eos_factor: float = 1.8) -> None:
    """Make the random model end strings, lists, objects and answers early.

    Untouched, a random model fills every string up to its schema's maxLength
    with multi-byte noise, so structured answers overrun any token budget.
    Here hidden dimension 0 carries a constant: the embeddings set it, no
    layer writes to it, so after the final norm it is positive at every text
    position. The output head reads it only for tokens that start with `"`
    (about 2x`bias` added to their logits), `]` or `}` and end-of-turn (about
    `bias`). All other weights stay random.
    """
    import torch

    text = model.model.language_model
    with torch.no_grad():
        text.embed_tokens.weight[:, 0] = 1.0
        for layer in text.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        head = model.lm_head.weight
        head[:, 0] = 0.0
        hidden = head.shape[1]
        # norm(x)[0] ~ sqrt(hidden) since dimension 0 dominates the RMS.
        per_unit = bias / hidden**0.5
        for tok, i in tokenizer.get_vocab().items():
            first = tokenizer.convert_tokens_to_string([tok])[:1]
            # A quote outweighs brackets: inside a string `]`/`}` are content, a quote ends it.
            if first == '"':
                head[i, 0] = 2 * per_unit
            elif first in "]}":
                head[i, 0] = per_unit
        head[tokenizer.convert_tokens_to_ids("<|im_end|>"), 0] = eos_factor * per_unit


def _byte_decoder() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2's `bytes_to_unicode`), from printed character to byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _token_bytes(tokenizer) -> dict[int, bytes]:
    """The bytes each ordinary (non-special) token spells."""
    decoder = _byte_decoder()
    special = set(SPECIAL_TOKENS)
    return {
        i: bytes(decoder[c] for c in tok)
        for tok, i in tokenizer.get_vocab().items()
        if tok not in special and all(c in decoder for c in tok)
    }


_CLOSING = frozenset(b"]}")
_NUMBER = frozenset(b"0123456789.")
_OPENING = frozenset(b'"{[,: ')


def _bias_never_closing(model, tokenizer, bias: float) -> None:
    """Make the model continue everything the grammar lets it continue, so no answer ends early.

    Structured outputs leave the model a choice only where the JSON may go on or end (a string's next
    character or its closing quote, another list item or `]`, another digit or the next key); greedy
    decoding takes the allowed token with the highest logit. Here the same constant hidden dimension
    as `_bias_towards_closing` is read by the output head with the opposite preference, in units of
    about `bias` logits: the filler token `x` +8 (it beats the closing quote, so every string runs to
    its maxLength, and free text never ends), digits and `.` +6 (numbers take every digit their
    bounds allow), tokens made of `"{[,: ` only +4 (a list takes another item rather than `]`), any
    token containing `]` or `}`, and end-of-turn, -8 (taken only when the grammar allows nothing
    else). Measured with `bias` 1: a unit is ~0.8 logits and the random logits stay within +-0.5
    (std 0.14), so levels two units apart never swap. `x` is one byte, one token: the answer costs
    about one token per character, the case `answer_token_budget` is exact for.
    """
    import torch

    text = model.model.language_model
    with torch.no_grad():
        text.embed_tokens.weight[:, 0] = 1.0
        for layer in text.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        head = model.lm_head.weight
        head[:, 0] = 0.0
        per_unit = bias / head.shape[1] ** 0.5
        for i, spelled in _token_bytes(tokenizer).items():
            units = 0.0
            if spelled == b"x":
                units = 8
            elif _CLOSING & set(spelled):
                units = -8
            elif set(spelled) <= _NUMBER:
                units = 6
            elif set(spelled) <= _OPENING:
                units = 4
            head[i, 0] = units * per_unit
        head[tokenizer.convert_tokens_to_ids("<|im_end|>"), 0] = -8 * per_unit


def build_tiny_model(
    out_dir: Path,
    seed: int = 0,
    vocab_size: int = 1024,
    answer_bias: float = 0.5,
    answers: Answers = "closing",
) -> Path:
    """Write the checkpoint (config, weights, tokenizer, processors) to `out_dir`.

    `answers`: "closing" (default) biases the random model towards ending strings, lists and answers
    early (`answer_bias` ~ logits); "never_closing" makes it continue whatever the grammar allows:
    strings to maxLength, lists to maxItems, free text to max_tokens (`_bias_never_closing`).

    Written to a temporary sibling and renamed, so a half-built folder is never
    mistaken for a model.
    """
    import torch
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = _build_tokenizer(vocab_size)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}

    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "max_position_embeddings": 32_768,
            # mrope sections sum to head_dim / 2 (t, h, w), as in the real model.
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [6, 5, 5],
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 128,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0, 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    config.dtype = "float32"
    model = Qwen3VLForConditionalGeneration(config).eval()
    if answers == "closing":
        _bias_towards_closing(model, tokenizer, answer_bias)
    elif answers == "never_closing":
        _bias_never_closing(model, tokenizer, 1.0)
    else:
        raise ValueError(f"unknown answers variant {answers!r}")

    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            size={"shortest_edge": 4 * 32 * 32, "longest_edge": 1280 * 1280},
        ),
        video_processor=Qwen3VLVideoProcessor(
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            size=VIDEO_SIZE,
            cap_pixels_per_frame=False,
            do_sample_frames=False,
        ),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )

    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(
            f"# {LABEL}\n\nBuilt by `reelserve make-tiny-model` (seed {seed}, answers {answers}). The weights "
            "are random: outputs are meaningless. Use a real Qwen3-VL checkpoint for real analysis.\n"
        )
        meta = {"label": LABEL, "seed": seed} | ({"answers": answers} if answers != "closing" else {})
        (tmp / "reelserve_tiny.json").write_text(json.dumps(meta))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("built %s in %s", LABEL, out_dir)
    return out_dir


def is_tiny_model(path: Path) -> bool:
    return (Path(path) / "reelserve_tiny.json").is_file()


def ensure_tiny_model(path: Path) -> Path:
    """Build the tiny model at `path` unless it is already there."""
    path = Path(path).expanduser().resolve()
    if not is_tiny_model(path):
        build_tiny_model(path)
    return path
