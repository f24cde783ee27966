"""Prompts, analysis modes and their JSON schemas, and aggregation of chunk results (no Ray, no vLLM)."""

from serve_app.analysis.aggregate import assemble, build_timeline, thin_lines, timeline_text
from serve_app.analysis.modes import (
    MODES,
    OutputError,
    answer_schema,
    build_instruction,
    check_custom_schema,
    parse_answer,
    parse_summary,
    summary_instruction,
    summary_schema,
)

__all__ = [
    "MODES",
    "assemble",
    "OutputError",
    "answer_schema",
    "build_instruction",
    "build_timeline",
    "check_custom_schema",
    "parse_answer",
    "parse_summary",
    "summary_instruction",
    "summary_schema",
    "thin_lines",
    "timeline_text",
]
