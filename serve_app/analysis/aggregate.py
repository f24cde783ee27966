"""Merge per-chunk answers into one timeline, and prepare the summary call.

Chunks overlap, so the same moment can be reported twice. Reports of one event
by two overlapping chunks, with slightly different times or words, are kept
once (`serve_app.analysis.duplicates`). Each chunk owns a core range
(`ChunkPlan.core_start_s`..`core_end_s`, cores tile the video); any other
event is kept only by the chunk whose core holds the event's midpoint, and
consecutive entries with the same text are merged.
"""

from __future__ import annotations

import json
import re
from typing import Any

from serve_app.analysis.duplicates import Sighting, best_report, event_span, group_duplicates
from serve_app.schemas import (
    AnalysisStats,
    AnalyzeOptions,
    ChunkPlan,
    ChunkResult,
    Summary,
    TimelineEntry,
    Transcript,
    VideoAnalysis,
    VideoInfo,
)

MAX_ENTRY_CHARS = 300
_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    """One line of printable text (model output may carry control characters)."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return _SPACES.sub(" ", printable).strip()[:MAX_ENTRY_CHARS]


def _headline(result: ChunkResult) -> str:
    """One line that says what a chunk shows, for chunks that report no events."""
    out = result.output
    if out is None:
        return result.text or ""
    for key in ("activity", "scene", "context", "summary", "description"):
        if isinstance(out.get(key), str) and out[key].strip():
            return out[key]
    return json.dumps(out, ensure_ascii=False)


#: Timed lists of the structured answers; meeting highlights read with their kind and who said them.
_TIMED = ("events", "steps", "highlights")
_KIND = {"statement": "Said", "question": "Question", "decision": "Decision", "action_item": "Action item"}


def _events(output: dict[str, Any] | None) -> list[tuple[str, dict[str, Any], str]]:
    """(list it is in, item, its timeline text) for every timed item of an answer."""
    if not output:
        return []
    found = []
    for key in _TIMED:
        for item in output.get(key) or []:
            if not (isinstance(item, dict) and "start_s" in item and "end_s" in item):
                continue
            text = str(item.get("description", ""))
            if (label := _KIND.get(item.get("kind", ""))) and text:
                who = item.get("who")
                text = f"{label}{f' ({who})' if who and who != 'unknown' else ''}: {text}"
            found.append((key, item, text))
    return found


def _owns(plan: ChunkPlan, t: float, last: bool) -> bool:
    return plan.core_start_s <= t < plan.core_end_s or (last and t == plan.core_end_s)


def build_timeline(plans: list[ChunkPlan], results: list[ChunkResult]) -> list[TimelineEntry]:
    """Ordered, de-duplicated timeline from the successful chunks."""
    by_index = {p.index: p for p in plans}
    last_index = max(by_index, default=-1)
    ok = sorted((r for r in results if r.ok), key=lambda r: r.start_s)
    sightings: list[Sighting] = []
    for result in ok:
        plan = by_index[result.index]
        for key, event, described in _events(result.output):
            # Clamp model-reported times into the chunk; a model may invent times.
            start = min(max(float(event["start_s"]), plan.start_s), plan.end_s)
            end = min(max(float(event["end_s"]), start), plan.end_s)
            if text := _clean(described):
                sighting = Sighting(
                    plan=plan,
                    key=key,
                    start_s=start,
                    end_s=end,
                    text=text,
                    description=_clean(str(event.get("description", ""))),
                    owned=_owns(plan, (start + end) / 2, plan.index == last_index),
                    who=str(event["who"]) if event.get("who") else None,
                )
                sightings.append(sighting)
    entries: list[TimelineEntry] = []
    for group in group_duplicates(sightings):
        best = best_report(group)
        # Seen by two chunks: kept once whoever owns it; seen by one: only by the chunk owning its midpoint.
        if len(group) > 1 or best.owned:
            start, end = event_span(group)
            entries.append(TimelineEntry(start_s=start, end_s=end, chunk_index=best.plan.index, text=best.text))
    with_entries = {e.chunk_index for e in entries}
    for result in ok:
        plan = by_index[result.index]
        if plan.index not in with_entries and (text := _clean(_headline(result))):
            entries.append(
                TimelineEntry(start_s=plan.core_start_s, end_s=plan.core_end_s, chunk_index=plan.index, text=text)
            )
    entries.sort(key=lambda e: (e.start_s, e.end_s))
    return _merge_repeats(entries)


def _merge_repeats(entries: list[TimelineEntry]) -> list[TimelineEntry]:
    merged: list[TimelineEntry] = []
    for entry in entries:
        prev = merged[-1] if merged else None
        if prev is not None and prev.text.casefold() == entry.text.casefold() and entry.start_s <= prev.end_s + 1.0:
            merged[-1] = prev.model_copy(update={"end_s": max(prev.end_s, entry.end_s)})
        else:
            merged.append(entry)
    return merged


def timeline_text(entries: list[TimelineEntry], max_chars: int) -> str:
    """The timeline as lines for the summary prompt, evenly thinned to fit `max_chars`."""
    return thin_lines([f"[{e.start_s:.1f}-{e.end_s:.1f}s] {e.text}" for e in entries], max_chars)


def thin_lines(lines: list[str], max_chars: int) -> str:
    """`lines` joined, evenly thinned (every k-th line) to fit `max_chars`."""
    total = sum(len(line) + 1 for line in lines)
    if total <= max_chars:
        return "\n".join(lines)
    # Keep every k-th line so the whole video stays represented.
    step = -(-total // max_chars)
    return "\n".join(lines[::step])[:max_chars]


def assemble(
    *,
    video_id: str,
    info: VideoInfo,
    options: AnalyzeOptions,
    model: str,
    results: list[ChunkResult],
    timeline: list[TimelineEntry],
    summary: Summary | None,
    summary_error: str | None,
    transcript: Transcript | None,
    transcript_error: str | None,
    timings: dict[str, float],
) -> VideoAnalysis:
    """The final `VideoAnalysis` (called by `serve_app.flow.finish` only)."""
    results = sorted(results, key=lambda r: r.index)
    return VideoAnalysis(
        video_id=video_id,
        video=info,
        request=options,
        model=model,
        chunks=results,
        timeline=timeline,
        summary=summary,
        summary_error=summary_error,
        transcript=transcript,
        transcript_error=transcript_error,
        stats=AnalysisStats.from_results(results, **timings),
    )
