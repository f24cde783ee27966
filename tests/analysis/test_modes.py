"""Mode schemas, instructions and answer validation (pure)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from serve_app.analysis import (
    MODES,
    OutputError,
    answer_schema,
    build_instruction,
    check_custom_schema,
    parse_answer,
    parse_summary,
    summary_schema,
)
from serve_app.errors import InvalidOptions

STRUCTURED = ["screen_share", "meeting", "app_demo", "ui"]

EXAMPLES = {
    "screen_share": {
        "scene": "Slides about Q3 revenue",
        "layout": "slides full screen",
        "visible_text": ["Q3 revenue", "+12%"],
        "ui_elements": [{"type": "button", "text": "Next", "position": "bottom-right"}],
        "activity": "The presenter walks through the numbers",
        "events": [{"start_s": 3.0, "end_s": 4.5, "description": "new slide"}],
    },
    "meeting": {
        "scene": "Video call with four people",
        "layout": "gallery",
        "participants": [{"name": "Ana", "position": "top-left", "speaking": True}],
        "shared_content": "",
        "visible_text": [],
        "activity": "Ana speaks",
        "events": [],
    },
    "app_demo": {
        "app_name": "Files",
        "scene": "A file manager",
        "steps": [{"start_s": 1.0, "end_s": 2.0, "description": "opens the Documents folder"}],
        "ui_elements": [],
        "visible_text": ["Documents"],
        "activity": "browsing",
    },
    "ui": {
        "screen_title": "Settings",
        "layout": "sidebar and panel",
        "ui_elements": [{"type": "tab", "text": "Display", "position": "left"}],
        "visible_text": ["Display", "Sound"],
        "context": "display settings open",
        "events": [],
    },
}


@pytest.mark.parametrize("mode", STRUCTURED)
def test_every_structured_mode_has_an_object_schema_that_accepts_its_example(mode: str) -> None:
    schema = answer_schema(mode)
    assert schema is not None and schema["type"] == "object"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(EXAMPLES[mode], schema)  # the schema we force is the one we validate
    assert parse_answer(mode, json.dumps(EXAMPLES[mode])) == EXAMPLES[mode]


@pytest.mark.parametrize("mode", STRUCTURED)
def test_structured_modes_reject_missing_fields_and_extra_keys(mode: str) -> None:
    broken = dict(EXAMPLES[mode])
    broken.pop(next(iter(broken)))
    with pytest.raises(OutputError, match="schema"):
        parse_answer(mode, json.dumps(broken))
    with pytest.raises(OutputError):
        parse_answer(mode, json.dumps({**EXAMPLES[mode], "surprise": 1}))


def test_strings_and_lists_are_bounded_so_answers_fit_the_token_budget() -> None:
    too_long = {**EXAMPLES["screen_share"], "scene": "x" * 201}
    with pytest.raises(OutputError):
        parse_answer("screen_share", json.dumps(too_long))
    too_many = {**EXAMPLES["screen_share"], "visible_text": ["a"] * 7}
    with pytest.raises(OutputError):
        parse_answer("screen_share", json.dumps(too_many))


def test_truncated_json_is_an_output_error_and_control_characters_are_tolerated() -> None:
    with pytest.raises(OutputError, match="not valid JSON"):
        parse_answer("ui", json.dumps(EXAMPLES["ui"])[:-5])
    raw = json.dumps(EXAMPLES["ui"]).replace("Settings", "Sett\x0bings")
    assert parse_answer("ui", raw)["screen_title"] == "Sett\x0bings"


def test_describe_is_free_text() -> None:
    assert answer_schema("describe") is None
    assert parse_answer("describe", "anything at all") is None


def test_instruction_names_the_chunk_range_and_the_focus() -> None:
    text = build_instruction("meeting", 20.0, 41.0, "who presents?")
    assert "20.0s to 41.0s" in text and "Focus: who presents?" in text and MODES["meeting"].instruction in text
    custom = build_instruction("custom", 0.0, 5.0, "List the colours.")
    assert custom.startswith("List the colours.")


CUSTOM = {
    "type": "object",
    "properties": {"colours": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}},
    "required": ["colours"],
}


def test_custom_schema_is_checked_and_enforced() -> None:
    assert check_custom_schema(CUSTOM) is CUSTOM
    assert parse_answer("custom", '{"colours": ["red"]}', CUSTOM) == {"colours": ["red"]}
    with pytest.raises(OutputError, match="custom schema"):
        parse_answer("custom", '{"colours": "red"}', CUSTOM)


def _nested(levels: int) -> dict:
    node: dict = {"type": "string"}
    for _ in range(levels):
        node = {"type": "array", "items": node}
    return node


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "array"}, "JSON object"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "not a valid JSON schema"),
        ({"type": "object", "description": "x" * 20_000}, "bytes"),
        ({"type": "object", "properties": {"a": _nested(10)}}, "deeper"),
    ],
)
def test_bad_custom_schemas_are_refused(schema: dict, message: str) -> None:
    with pytest.raises(InvalidOptions, match=message):
        check_custom_schema(schema)


def test_summary_schema_round_trip() -> None:
    answer = {"title": "Demo", "summary": "A desktop tour.", "key_points": ["opens files"]}
    jsonschema.validate(answer, summary_schema())
    assert parse_summary(json.dumps(answer)).title == "Demo"
    with pytest.raises(OutputError):
        parse_summary('{"title": "x"}')
