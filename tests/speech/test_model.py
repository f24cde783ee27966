"""The bundled Whisper weights: found in their packages and hash-checked before loading."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from serve_app.errors import SpeechModelMissing
from serve_app.speech import model


@pytest.mark.parametrize("choice", ["base", "tiny.en"])
def test_bundled_models_load_with_their_hash_checked(choice: str) -> None:
    loaded = model.load_model_files(choice)
    assert loaded.files is not None and set(loaded.files) == {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    assert loaded.multilingual == (choice == "base")


def test_a_model_with_the_wrong_hash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = dataclasses.replace(model.BUNDLED["tiny.en"], sha256="0" * 64)
    monkeypatch.setitem(model.BUNDLED, "tiny.en", wrong)
    with pytest.raises(SpeechModelMissing, match="expected 0000"):
        model.load_model_files("tiny.en")


def test_a_folder_without_a_tokenizer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")  # faster-whisper would ask the hub for the tokenizer
    with pytest.raises(SpeechModelMissing, match="neither a bundled model"):
        model.load_model_files(str(tmp_path))
