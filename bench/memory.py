"""Memory of the local stack, by role: PSS of every Ray process this bench started, shared memory, and the
Ray object store. Shared by bench/soak.py and bench/overload.py.

PSS (proportional set size, /proc/<pid>/smaps_rollup) splits pages shared between processes, so the sum
over processes is what the stack really holds; RSS would count the plasma pages once per process mapping
them. Only descendants of this process are counted: other Ray clusters on the machine are not ours.

A role's figure changes when its processes change, not only when they grow: Serve's autoscaler may start a
second Chunker or ASR replica during a job and keep it for `downscale_delay_s` after. So the table prints each
role's process count before / at peak / after, and compares the processes present both before and after
(same pid) separately from the whole; and every total once with and once without shared memory (the plasma
pages, which the object store keeps touched: bench/README.md).
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
DETAILED_ROLES = (*ENGINE_ROLES, "Chunker")  # roles printed with their PSS parts
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
KEYS = ("Pss", *PARTS)


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
    by_pid: dict[int, tuple[str, dict[str, int]]] = field(default_factory=dict)  # pid -> (role, Pss and parts)

    @property
    def total(self) -> int:
        return sum(self.pss.values())

    @property
    def pss_shmem(self) -> int:
        """The shared-memory part of all PSS: plasma pages the processes have mapped."""
        return sum(p.get("Pss_Shmem", 0) for p in self.parts.values())

    @property
    def total_private(self) -> int:
        """All PSS but shared memory: heaps and mapped files (Pss_Anon + Pss_File)."""
        return self.total - self.pss_shmem

    def of(self, pids: set[int], key: str = "Pss") -> int:
        """The sum of `key` (Pss or one of PARTS) over `pids` (those gone count 0)."""
        return sum(self.by_pid[pid][1].get(key, 0) for pid in pids if pid in self.by_pid)

    def pids(self, role: str | None = None) -> set[int]:
        return {pid for pid, (r, _) in self.by_pid.items() if role is None or r == role}


def snapshot(note: str = "") -> Snapshot:
    """Memory of this process's Ray descendants now (needs `ray.init` done in this process)."""
    pss: dict[str, int] = {}
    parts: dict[str, dict[str, int]] = {}
    count: dict[str, int] = {}
    by_pid: dict[int, tuple[str, dict[str, int]]] = {}
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline()) or proc.name()
        except psutil.Error:
            continue
        role = role_of(cmdline)
        measured = pss_bytes(proc.pid)
        if not measured.get("Pss"):
            continue
        by_pid[proc.pid] = (role, dict(measured))
        pss[role] = pss.get(role, 0) + measured.pop("Pss")
        mine = parts.setdefault(role, {})
        for key, value in measured.items():
            mine[key] = mine.get(key, 0) + value
        count[role] = count.get(role, 0) + 1
    used, fallback, spilled = object_store()
    return Snapshot(
        at=time.time(),
        pss=pss,
        parts=parts,
        processes=count,
        dev_shm_used=shutil.disk_usage("/dev/shm").used,
        store_used=used,
        store_fallback=fallback,
        store_spilled=spilled,
        note=note,
        by_pid=by_pid,
    )


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
            by_pid={  # each process's own maxima (its role from its last sample)
                pid: (
                    role,
                    {k: max(s.by_pid[pid][1].get(k, 0) for s in self.samples if pid in s.by_pid) for k in KEYS},
                )
                for pid, role in {pid: r for s in self.samples for pid, (r, _) in s.by_pid.items()}.items()
            },
        )


def mib(n: int) -> str:
    return f"{n / MIB:,.0f}"


def ratio(after: int, before: int) -> str:
    return f"{after / before:.2f}" if before else "n/a"


def _row(label: str, b: int, p: int, a: int) -> str:
    return f"{label:40} {mib(b):>8} {mib(p):>8} {mib(a):>8} {ratio(a, b):>13}"


def _counts(before: Snapshot, peak: Snapshot, after: Snapshot, role: str | None = None) -> str:
    """`[before/peak/after]` process counts of a role, or of all processes."""
    if role is None:  # at peak: the sum of each role's most processes
        return f"[{len(before.by_pid)}/{sum(peak.processes.values())}/{len(after.by_pid)}]"
    return f"[{before.processes.get(role, 0)}/{peak.processes.get(role, 0)}/{after.processes.get(role, 0)}]"


def table(before: Snapshot, peak: Snapshot, after: Snapshot) -> str:
    """Role by role: MiB before / at peak / after and after/before, with `[processes before/peak/after]`; a role
    whose processes changed also gets the figure of the processes present both before and after. Then the
    totals, with and without shared memory, of all processes and of those present both before and after."""
    roles = [r for _, r in ROLES if r in before.pss or r in peak.pss] + (
        [OTHER] if OTHER in before.pss or OTHER in peak.pss else []
    )
    rows = [f"{'PSS MiB by role [processes b/p/a]':40} {'before':>8} {'peak':>8} {'after':>8} {'after/before':>13}"]
    for role in roles:
        rows.append(
            _row(f"{role} {_counts(before, peak, after, role)}", *(s.pss.get(role, 0) for s in (before, peak, after)))
        )
        if role in DETAILED_ROLES:  # where its memory is: heap, plasma pages it wrote or read frames in, files
            for part in PARTS:
                rows.append(_row(f"  {part}", *(s.parts.get(role, {}).get(part, 0) for s in (before, peak, after))))
        was, now = before.pids(role), after.pids(role)
        if was and was != now:  # a replica started or stopped: growth is what the same processes hold
            same = was & now
            rows.append(_row(f"  the {len(same)} process(es) in both", *(s.of(same) for s in (before, peak, after))))
    rows.append(_row(f"total PSS {_counts(before, peak, after)}", before.total, peak.total, after.total))
    rows.append(_row("  of which shared memory (Pss_Shmem)", before.pss_shmem, peak.pss_shmem, after.pss_shmem))
    rows.append(_row("  without shared memory", before.total_private, peak.total_private, after.total_private))
    same = before.pids() & after.pids()
    started, gone = len(after.pids() - same), len(before.pids() - same)
    rows.append(
        _row(
            f"{len(same)} processes in both (+{started} new, -{gone} gone)",
            *(s.of(same) for s in (before, peak, after)),
        )
    )
    rows.append(_row("  without shared memory", *(s.of(same) - s.of(same, "Pss_Shmem") for s in (before, peak, after))))
    for label, attr in (
        ("/dev/shm used (machine)", "dev_shm_used"),
        ("object store: live objects", "store_used"),
        ("object store: fallback (filesystem)", "store_fallback"),
        ("object store: spilled (cumulative)", "store_spilled"),
    ):
        rows.append(_row(label, *(getattr(s, attr) for s in (before, peak, after))))
    return "\n".join(rows)
