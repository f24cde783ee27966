"""The CPU-profile post-install fix is idempotent, and the patched torchvision imports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from serve_app.devtools.cpu_profile import _MARKER, patch_torchvision

ORIGINAL = """import torch
import torchvision.extension


def register_meta(op_name, overload_name="default"):
    pass


@torch.library.register_fake("torchvision::nms")
def meta_nms(dets, scores, iou_threshold):
    pass
"""


def test_patch_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "_meta_registrations.py"
    target.write_text(ORIGINAL)
    assert patch_torchvision(target) is True
    once = target.read_text()
    assert patch_torchvision(target) is False and target.read_text() == once
    assert _MARKER in once and '@_register_fake_if_ops("torchvision::nms")' in once
    compile(once, str(target), "exec")


def test_unexpected_layout_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "_meta_registrations.py"
    target.write_text("x = 1\n")
    with pytest.raises(RuntimeError, match="unexpected torchvision layout"):
        patch_torchvision(target)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="CPU profile (vllm) not installed")
def test_cpu_stack_imports_in_a_fresh_interpreter() -> None:
    code = "import torchvision, transformers; from transformers import Qwen3VLProcessor; import vllm"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
