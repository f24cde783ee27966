"""Reaching a running app's replicas directly: their actor names, and the Chunker's decode counters."""

from __future__ import annotations

import time
from collections.abc import Callable

import ray
from ray import serve
from ray.actor import ActorHandle
from ray.exceptions import RayActorError


def replica_actors(deployment: str, app: str = "reelserve") -> list[str]:
    prefix = f"SERVE_REPLICA::{app}#{deployment}#"
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)]


def chunker_actors() -> dict[str, ActorHandle]:
    return {name: ray.get_actor(name, namespace="serve") for name in replica_actors("Chunker")}


def _stats(actors: dict[str, ActorHandle]) -> dict[str, dict[str, int]]:
    # A lambda travels by value (the replica cannot import the tests); it runs in the replica's process,
    # where a replica still starting has no Chunker yet (and so has decoded nothing).
    ask = lambda _actor: getattr(serve.get_replica_context().servable_object, "stats", dict)()  # noqa: E731
    asked = {name: actor.__ray_call__.remote(ask) for name, actor in actors.items()}
    answers = {name: ray.get(ref, timeout=30) for name, ref in asked.items()}
    return {name: stats for name, stats in answers.items() if stats}


def chunker_stats() -> dict[str, dict[str, int]]:
    """Each Chunker replica's `stats()` (decodes started and running), by replica actor name: asked of every
    replica, not of whichever one a handle call would reach."""
    return _stats(chunker_actors())


def chunker_poll(relist_s: float = 1.0) -> Callable[[], dict[str, dict[str, int]]]:
    """`chunker_stats` for a tight loop: each call is one actor call per replica; the replicas (a GCS
    lookup) are listed again every `relist_s` and when one has gone, so a replica the autoscaler adds is
    seen within `relist_s`."""
    actors: dict[str, ActorHandle] = {}
    listed = float("-inf")

    def poll() -> dict[str, dict[str, int]]:
        nonlocal actors, listed
        if time.monotonic() - listed >= relist_s:
            actors, listed = chunker_actors(), time.monotonic()
        try:
            return _stats(actors)
        except RayActorError:  # the autoscaler removed one meanwhile
            actors, listed = chunker_actors(), time.monotonic()
            return _stats(actors)

    return poll


def decodes_since(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> int:
    """Decodes started between two `chunker_stats()` (replicas that came meanwhile count from zero; one
    the autoscaler removed meanwhile no longer counts)."""
    return sum(s["decodes_started"] - before.get(name, {}).get("decodes_started", 0) for name, s in after.items())


def decodes_running(stats: dict[str, dict[str, int]]) -> int:
    return sum(s["decodes_running"] for s in stats.values())


def wait_until_idle(timeout_s: float = 60) -> dict[str, dict[str, int]]:
    """The Chunkers' stats once no decode runs and none started for 3 s (or an AssertionError)."""
    deadline = time.monotonic() + timeout_s
    last = chunker_stats()
    while time.monotonic() < deadline:
        time.sleep(3)
        now = chunker_stats()
        if decodes_running(now) == 0 and all(now[name] == last[name] for name in now.keys() & last.keys()):
            return now
        last = now
    raise AssertionError(f"the Chunkers kept decoding: {last}")
