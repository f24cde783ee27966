"""Memory of the local stack, by role: PSS of every Ray process this bench started, shared memory, and the
Ray object store. Shared by bench/soak.py and bench/overload.py.

PSS (proportional set size, /proc/<pid>/smaps_rollup) splits pages shared between processes, so the sum
over processes is what the stack really holds; RSS would count the plasma pages once per process mapping
them. Only descendants of this process are counted: other Ray clusters on the machine are not ours.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MIB = 1024**2
#: (substring of the process title / command line, role); first match wins.
# The VLM replica runs vLLM's AsyncLLM front end (tokenizer, multimodal processor); its EngineCore (model,
# KV cache, scheduler) is a child process vLLM titles VLLM::EngineCore.
ENGINE_CORE = "vLLM EngineCore"
VLM_REPLICA = "VLM replica (AsyncLLM)"
ENGINE_ROLES = (ENGINE_CORE, VLM_REPLICA)
ROLES = (
    ("VLLM::EngineCore", ENGINE_CORE),
    ("ServeReplica:reelserve:VLM", VLM_REPLICA),
    ("ServeReplica:reelserve:Chunker", "Chunker"),
    ("ServeReplica:reelserve:Ingress", "Ingress"),
    ("ServeReplica:reelserve:ASR", "ASR"),
    ("ServeReplica:reelserve:Aggregator", "Aggregator"),
    ("ServeReplica:reelserve:JobRunner", "JobRunner"),
    ("ServeController", "Serve controller"),
    ("ProxyActor", "Serve proxy"),
    ("raylet", "raylet + plasma store"),
    ("gcs_server", "GCS"),
)
OTHER = "other Ray processes"
PARTS = ("Pss_Anon", "Pss_Shmem", "Pss_File")


def role_of(cmdline: str) -> str:
    return next((role for needle, role in ROLES if needle in cmdline), OTHER)


def pss_bytes(pid: int) -> dict[str, int]:
    """Pss and its parts (Pss_Anon: the heap; Pss_Shmem: plasma pages; Pss_File) of one process, in bytes;
    {} when it is gone."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("Pss", "Pss_Anon", "Pss_Shmem", "Pss_File"):
                out[key] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


@dataclass
class Snapshot:
    at: float
    pss: dict[str, int]  # role -> bytes (sum over its processes)
    parts: dict[str, dict[str, int]]  # role -> {"Pss_Anon": bytes, "Pss_Shmem": ..., "Pss_File": ...}
    processes: dict[str, int]  # role -> how many processes
    dev_shm_used: int  # statvfs of /dev/shm (machine-wide)
    store_used: int  # Ray object store: bytes of live objects
    store_fallback: int  # objects that did not fit, on the filesystem
    store_spilled: int  # bytes spilled to disk so far
    note: str = ""

    @property
    def total(self) -> int:
        return sum(self.pss.values())

    @property
    def pss_shmem(self) -> int:
        """The shared-memory part of all PSS: plasma pages the processes have mapped."""
        return sum(p.get("Pss_Shmem", 0) for p in self.parts.values())


def snapshot(note: str = "") -> Snapshot:
    """Memory of this process's Ray descendants now (needs `ray.init` done in this process)."""
    pss: dict[str, int] = {}
    parts: dict[str, dict[str, int]] = {}
    count: dict[str, int] = {}
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline()) or proc.name()
        except psutil.Error:
            continue
        role = role_of(cmdline)
        measured = pss_bytes(proc.pid)
        if not measured.get("Pss"):
            continue
        pss[role] = pss.get(role, 0) + measured.pop("Pss")
        mine = parts.setdefault(role, {})
        for key, value in measured.items():
            mine[key] = mine.get(key, 0) + value
        count[role] = count.get(role, 0) + 1
    store = object_store()
    return Snapshot(time.time(), pss, parts, count, shutil.disk_usage("/dev/shm").used, *store, note=note)


def object_store() -> tuple[int, int, int]:
    """(used, fallback, spilled) bytes of the Ray object store, from the raylet's memory info (`ray memory`)."""
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    stats = get_memory_info_reply(get_state_from_address()).store_stats
    return stats.object_store_bytes_used, stats.object_store_bytes_fallback, stats.spilled_bytes_total


@dataclass
class Sampler:
    """Takes a snapshot every `every_s` in a thread; `note()` says what is going on (e.g. chunks done)."""

    every_s: float = 2.0
    samples: list[Snapshot] = field(default_factory=list)
    _note: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def note(self, text: str) -> None:
        self._note = text

    def __enter__(self) -> Sampler:
        def run() -> None:
            while not self._stop.is_set():
                self.samples.append(snapshot(self._note))
                self._stop.wait(self.every_s)

        self._thread = threading.Thread(target=run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak(self) -> Snapshot:
        """A synthetic snapshot: each figure's own maximum over the samples."""
        roles = {r for s in self.samples for r in s.pss}
        return Snapshot(
            at=max(s.at for s in self.samples),
            pss={r: max(s.pss.get(r, 0) for s in self.samples) for r in roles},
            parts={r: {k: max(s.parts.get(r, {}).get(k, 0) for s in self.samples) for k in PARTS} for r in roles},
            processes={r: max(s.processes.get(r, 0) for s in self.samples) for r in roles},
            dev_shm_used=max(s.dev_shm_used for s in self.samples),
            store_used=max(s.store_used for s in self.samples),
            store_fallback=max(s.store_fallback for s in self.samples),
            store_spilled=max(s.store_spilled for s in self.samples),
            note="peak",
        )


def mib(n: int) -> str:
    return f"{n / MIB:,.0f}"


def ratio(after: int, before: int) -> str:
    return f"{after / before:.2f}" if before else "n/a"


def table(before: Snapshot, peak: Snapshot, after: Snapshot) -> str:
    """Role by role: MiB before / at peak / after and after/before; then the totals and shared memory."""
    roles = [r for _, r in ROLES if r in before.pss or r in peak.pss] + (
        [OTHER] if OTHER in before.pss or OTHER in peak.pss else []
    )
    rows = [f"{'PSS MiB (processes)':34} {'before':>8} {'peak':>8} {'after':>8} {'after/before':>13}"]
    for role in roles:
        b, p, a = before.pss.get(role, 0), peak.pss.get(role, 0), after.pss.get(role, 0)
        n = max(before.processes.get(role, 0), after.processes.get(role, 0))
        rows.append(f"{role + f' ({n})':34} {mib(b):>8} {mib(p):>8} {mib(a):>8} {ratio(a, b):>13}")
        if role in ENGINE_ROLES:  # where its memory is: heap, plasma pages it read frames from, mapped files
            for part in PARTS:
                b, p, a = (snap.parts.get(role, {}).get(part, 0) for snap in (before, peak, after))
                rows.append(f"{'  ' + part:34} {mib(b):>8} {mib(p):>8} {mib(a):>8} {ratio(a, b):>13}")
    rows.append(
        f"{'total PSS':34} {mib(before.total):>8} {mib(peak.total):>8} {mib(after.total):>8} "
        f"{ratio(after.total, before.total):>13}"
    )
    for label, attr in (
        ("  of which shared memory (Pss_Shmem)", "pss_shmem"),
        ("/dev/shm used (machine)", "dev_shm_used"),
        ("object store: live objects", "store_used"),
        ("object store: fallback (filesystem)", "store_fallback"),
        ("object store: spilled (cumulative)", "store_spilled"),
    ):
        b, p, a = getattr(before, attr), getattr(peak, attr), getattr(after, attr)
        rows.append(f"{label:34} {mib(b):>8} {mib(p):>8} {mib(a):>8} {ratio(a, b):>13}")
    return "\n".join(rows)
