"""Listing archive inputs: folders, globs, URIs, manifests (pure; local filesystem)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_jobs.inputs import VideoInput, list_inputs


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("a.mp4", "b.webm", "sub/c.mp4", "sub/deeper/d.avi", "notes.txt", ".hidden.mp4"):
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    return tmp_path / "in"


def names(inputs: list[VideoInput]) -> list[str]:
    return [Path(i.uri.removeprefix("file://")).name for i in inputs]


def test_folder_is_listed_recursively_sorted_without_hidden_files(tree: Path) -> None:
    found = list_inputs(str(tree))
    assert names(found) == ["a.mp4", "b.webm", "notes.txt", "c.mp4", "d.avi"]
    assert all(Path(i.uri).is_absolute() for i in found)


def test_single_file_glob_and_file_uri(tree: Path) -> None:
    assert names(list_inputs(str(tree / "a.mp4"))) == ["a.mp4"]
    assert names(list_inputs(str(tree / "**" / "*.mp4"))) == ["a.mp4", "c.mp4"]
    assert names(list_inputs(f"file://{tree}/sub")) == ["c.mp4", "d.avi"]


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_inputs(str(tmp_path / "nope"))


def test_csv_and_jsonl_manifests_with_per_video_modes(tree: Path) -> None:
    csv_path = tree / "manifest.csv"
    csv_path.write_text(f"path,mode,prompt\na.mp4,meeting,\nsub/c.mp4,custom,List apps.\n{tree / 'b.webm'},,\n")
    found = list_inputs(str(csv_path))
    assert [(Path(i.uri).name, i.mode, i.prompt) for i in found] == [
        ("a.mp4", "meeting", None),
        ("c.mp4", "custom", "List apps."),
        ("b.webm", None, None),
    ]
    assert found[1].uri == str(tree / "sub" / "c.mp4")
    jsonl = tree / "manifest.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in [{"uri": "a.mp4", "mode": "ui"}, {"path": "b.webm"}]) + "\n")
    assert [(Path(i.uri).name, i.mode) for i in list_inputs(str(jsonl))] == [("a.mp4", "ui"), ("b.webm", None)]
    bad = tree / "bad.jsonl"
    bad.write_text('{"mode": "ui"}\n')
    with pytest.raises(ValueError, match="row 1"):
        list_inputs(str(bad))
