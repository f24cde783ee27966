"""The tiny random Qwen3-VL: deterministic, offline, loadable by transformers' Qwen3-VL processor."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from serve_app.devtools.tiny_model import LABEL, SPECIAL_TOKENS, build_tiny_model, is_tiny_model


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return build_tiny_model(root / "a"), build_tiny_model(root / "b")


def digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_build_is_deterministic_and_labelled(built: tuple[Path, Path]) -> None:
    a, b = built
    assert digest(a) == digest(b)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert is_tiny_model(a) and "random weights" in (a / "README.md").read_text()
    assert json.loads((a / "reelserve_tiny.json").read_text())["label"] == LABEL
    assert (a / "model.safetensors").stat().st_size < 8 * 1024**2


def test_processor_and_tokenizer_load_offline_with_qwen_tokens(built: tuple[Path, Path]) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(built[0])
    assert type(processor).__name__ == "Qwen3VLProcessor"
    tok = processor.tokenizer
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    text = tok.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe."}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.count("<|vision_start|><|video_pad|><|vision_end|>") == 1 and text.endswith("<|im_start|>assistant\n")
    config = json.loads((built[0] / "config.json").read_text())
    assert config["video_token_id"] == tok.convert_tokens_to_ids("<|video_pad|>")
