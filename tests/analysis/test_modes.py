"""Mode schemas, instructions and answer validation (pure)."""

from __future__ import annotations

import json
import math
from typing import Any

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
from serve_app.analysis.modes import (
    DESCRIBE_MAX_TOKENS,
    MAX_TIME_S,
    answer_chars,
    answer_token_budget,
    summary_token_budget,
)
from serve_app.config import ModelSettings, VideoSettings
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
        "highlights": [
            {"start_s": 1.0, "end_s": 4.0, "kind": "decision", "description": "Budget approved", "who": "Ana"},
            {"start_s": 7.0, "end_s": 9.0, "kind": "action_item", "description": "Send the report", "who": "unknown"},
        ],
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
        ({"type": "object", "properties": {"a": _nested(10)}}, "13 levels deep; at most 8"),
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


# -- answer budgets ------------------------------------------------------------------------------------

#: The budgets the config's descriptions quote (model.max_tokens, model.summary_max_tokens): changing a
#: schema's bounds changes them, deliberately.
BUDGETS = {"screen_share": 2035, "meeting": 2423, "app_demo": 2036, "ui": 2169}
SUMMARY_BUDGET = 1425


def longest(node: Any, root: dict[str, Any]) -> Any:
    """The valid instance of `node` with the longest `json.dumps`: strings of `x` at maxLength, lists at
    maxItems, every property, the longest enum value, numbers with all their digits."""
    if "$ref" in node:
        return longest(root["$defs"][node["$ref"].rsplit("/", 1)[-1]], root)
    if "enum" in node:
        return max(node["enum"], key=lambda v: len(json.dumps(v)))
    if "anyOf" in node:
        return max((longest(alt, root) for alt in node["anyOf"]), key=lambda v: len(json.dumps(v)))
    kind = node["type"]
    if kind == "object":
        return {key: longest(value, root) for key, value in node["properties"].items()}
    if kind == "array":
        return [longest(node["items"], root) for _ in range(node["maxItems"])]
    if kind == "string":
        return "x" * node["maxLength"]
    if kind == "integer":
        return max(node["minimum"], node["maximum"], key=lambda v: len(str(v)))
    if kind == "number":  # as many integer digits as the maximum, and six fraction digits
        return math.ceil(node["maximum"]) - 1 + 0.999999
    if kind == "boolean":
        return False
    raise AssertionError(f"no longest instance for {node}")


@pytest.mark.parametrize("mode", STRUCTURED)
def test_budget_bounds_the_longest_valid_answer_of_each_mode(mode: str) -> None:
    schema = answer_schema(mode)
    assert schema is not None
    answer = longest(schema, schema)
    jsonschema.validate(answer, schema)
    assert parse_answer(mode, json.dumps(answer)) == answer  # the model's bounds are the schema's
    text = json.dumps(answer)  # default separators: the compact text vLLM writes is shorter still
    budget = answer_token_budget(mode)
    assert budget == BUDGETS[mode]
    assert len(text) + 1 == budget  # exact: the longest answer, one token a character, plus end-of-turn
    # The schema itself forbids anything longer (here: one more list item).
    with pytest.raises(OutputError):
        parse_answer(mode, json.dumps({**answer, "visible_text": answer["visible_text"] + ["x"]}))


def test_budget_bounds_the_longest_summary() -> None:
    schema = summary_schema()
    answer = longest(schema, schema)
    assert parse_summary(json.dumps(answer)).model_dump() == answer
    assert summary_token_budget() == SUMMARY_BUDGET == len(json.dumps(answer)) + 1


def test_every_budget_fits_the_default_caps_and_leaves_room_for_the_retry() -> None:
    model, video = ModelSettings(), VideoSettings()
    assert max(BUDGETS.values()) <= model.max_tokens  # the first attempt gets the whole budget
    assert SUMMARY_BUDGET <= model.summary_max_tokens
    # Even a chunk at its full visual budget leaves the retry more than the first attempt had.
    assert model.max_model_len - video.token_budget - model.prompt_reserve_tokens > max(BUDGETS.values())


def test_times_are_bounded_for_the_budget_and_above_any_accepted_video() -> None:
    assert MAX_TIME_S >= VideoSettings().max_duration_s
    event = {"start_s": MAX_TIME_S + 1, "end_s": 1.0, "description": "x"}
    with pytest.raises(OutputError):
        parse_answer("screen_share", json.dumps({**EXAMPLES["screen_share"], "events": [event]}))


def test_free_text_and_unbounded_custom_schemas_have_no_budget() -> None:
    assert answer_token_budget("describe") == DESCRIBE_MAX_TOKENS  # bounded by a constant, not a schema
    assert answer_token_budget("custom") is None
    assert answer_token_budget("custom", CUSTOM) == len(json.dumps({"colours": ["x" * 20] * 3})) + 1


def obj(node: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": node}, **extra}


@pytest.mark.parametrize(
    ("schema", "answer"),
    [
        (obj({"type": "string", "maxLength": 5}), {"a": "xxxxx"}),
        (obj({"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}), {"a": "xxxxx"}),
        (obj({"type": ["integer", "null"], "minimum": -120, "maximum": 7}), {"a": -120}),
        (obj({"type": "number", "minimum": 0, "maximum": 600}), {"a": 599.999999}),
        (obj({"enum": ["a", "bcd", 12345]}), {"a": 12345}),
        (obj({"const": "fixed"}), {"a": "fixed"}),
        (obj({"type": "boolean"}), {"a": False}),
        (obj({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "maxItems": 0}), {"a": []}),
        (
            {
                "type": "object",
                "$defs": {"s": {"type": "string", "maxLength": 3}},
                "properties": {"a": {"$ref": "#/$defs/s"}},
            },
            {"a": "xxx"},
        ),
        (obj({"type": "string", "maxLength": 2}, additionalProperties=False), {"a": "xx"}),
    ],
)
def test_custom_schema_budget_is_the_longest_answer(schema: dict[str, Any], answer: dict[str, Any]) -> None:
    jsonschema.validate(answer, schema)
    assert answer_chars(schema) == len(json.dumps(answer))


@pytest.mark.parametrize(
    "node",
    [
        {"type": "string"},  # no maxLength
        {"type": "string", "maxLength": 9, "pattern": "^a+$"},  # xgrammar drops neither; vLLM refuses both
        {"type": "string", "maxLength": 9, "format": "email"},
        {"type": "array", "items": {"type": "string", "maxLength": 3}},  # no maxItems
        {"type": "number", "minimum": 0},  # the integer part is unbounded
        {"type": "integer"},
        {"type": "object", "properties": {}, "additionalProperties": True},
        {"allOf": [{"type": "string", "maxLength": 3}]},
        {"$ref": "#/$defs/missing"},
        {},
    ],
)
def test_unbounded_custom_schemas_have_no_budget(node: dict[str, Any]) -> None:
    assert answer_chars(obj(node)) is None
    assert answer_token_budget("custom", obj(node)) is None
