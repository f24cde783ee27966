"""Build a tiny, RANDOM-WEIGHT Qwen3-VL checkpoint offline, for development and tests.

Its answers are meaningless; it exists so that every real code path (vLLM's
Qwen3-VL processor, vision encoder, M-RoPE with timestamps, structured
outputs) runs on a laptop or CI machine with no GPU and no model hub. The
architecture is Qwen3-VL's, scaled down (~1M parameters, ~4 MB); the
tokenizer is a small byte-level BPE with Qwen's special tokens. Deterministic:
the same seed gives the same files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

LABEL = "reelserve tiny random Qwen3-VL (random weights: for development and tests only)"

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


def build_tiny_model(out_dir: Path, seed: int = 0, vocab_size: int = 1024, answer_bias: float = 0.5) -> Path:
    """Write the checkpoint (config, weights, tokenizer, processors) to `out_dir`.

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
    _bias_towards_closing(model, tokenizer, answer_bias)

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
            f"# {LABEL}\n\nBuilt by `reelserve make-tiny-model` (seed {seed}). The weights are random: "
            "outputs are meaningless. Use a real Qwen3-VL checkpoint for real analysis.\n"
        )
        (tmp / "reelserve_tiny.json").write_text(json.dumps({"label": LABEL, "seed": seed}))
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
