"""Analysis modes: what to ask the model about a chunk, and the JSON it must answer.

Every structured mode's answer is forced by vLLM's structured outputs
(xgrammar) to the mode's JSON schema, then parsed and validated here again.
Every string, array and number of a built-in schema is bounded (maxLength,
maxItems, minimum/maximum), so the longest answer the grammar allows is
finite and `answer_token_budget` can size the completion for it. xgrammar
cannot combine `pattern` with `maxLength` (vLLM refuses such schemas), so the
bounded strings carry no pattern: xgrammar's bounded-string grammar already
excludes `"`, `\\`, CR and LF (no escapes at all), and the other control
characters it lets through are tolerated by the lenient parser.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serve_app.errors import InvalidOptions

MAX_CUSTOM_SCHEMA_BYTES = 16 * 1024
MAX_CUSTOM_SCHEMA_DEPTH = 8

# Bounds a real Qwen3-VL answer fits in; they also bound the completion (`answer_token_budget`).
MAX_TIME_S = 86_400.0  # a day: above any accepted video (video.max_duration_s is 4 h by default)
Short = Annotated[str, Field(max_length=60)]  # a name, a title, a layout, one line of screen text
Label = Annotated[str, Field(max_length=40)]  # the text on a UI element
Sentence = Annotated[str, Field(max_length=140)]  # one or two sentences
Moment = Annotated[str, Field(max_length=80)]  # what one event or step is
Seconds = Annotated[float, Field(ge=0, le=MAX_TIME_S)]
Position = Literal["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Event(_Strict):
    """Something that happens at a time, in source-video seconds."""

    start_s: Seconds
    end_s: Seconds
    description: Moment


class UIElement(_Strict):
    type: Literal[
        "button",
        "menu",
        "tab",
        "text_field",
        "link",
        "icon",
        "dialog",
        "list",
        "table",
        "chart",
        "image",
        "video_tile",
        "other",
    ]
    text: Label
    position: Position


class Participant(_Strict):
    name: Label = Field(description="Name as shown on screen, or a short description.")
    position: Position
    speaking: bool = Field(description="Visual cue that this person is speaking (highlight, open mouth).")


class ScreenShareAnswer(_Strict):
    scene: Sentence = Field(description="What is on screen.")
    layout: Short = Field(description="Screen layout, e.g. 'slides full screen', 'IDE with terminal'.")
    visible_text: list[Short] = Field(max_length=6, description="Legible text, most important first.")
    ui_elements: list[UIElement] = Field(max_length=6)
    activity: Sentence = Field(description="What the presenter is doing.")
    events: list[Event] = Field(max_length=4, description="Changes (new slide, window, dialog) with times.")


class Highlight(Event):
    """Something said that matters, from the transcript lines."""

    kind: Literal["statement", "question", "decision", "action_item"]
    who: Label = Field(
        description="Who said it (or owns the action item) when the screen or the words show it, else "
        "'unknown': there is no speaker diarization."
    )


class MeetingAnswer(_Strict):
    scene: Sentence
    layout: Literal["gallery", "speaker", "screen_share", "screen_share_with_video", "in_room", "other"]
    participants: list[Participant] = Field(max_length=4)
    shared_content: Sentence = Field(description="What is being shared, if anything.")
    visible_text: list[Short] = Field(max_length=4)
    activity: Sentence
    events: list[Event] = Field(max_length=2, description="Visual moments (a new slide, someone joins).")
    highlights: list[Highlight] = Field(
        max_length=4,
        description="From the speech lines: key statements, questions, decisions and action items, with times.",
    )


class AppDemoAnswer(_Strict):
    app_name: Short
    scene: Sentence
    steps: list[Event] = Field(max_length=4, description="User actions in order, with times.")
    ui_elements: list[UIElement] = Field(max_length=6)
    visible_text: list[Short] = Field(max_length=6)
    activity: Sentence


class UIAnswer(_Strict):
    screen_title: Short
    layout: Short
    ui_elements: list[UIElement] = Field(max_length=8)
    visible_text: list[Short] = Field(max_length=6)
    context: Sentence = Field(description="What the screen is for and what state it is in.")
    events: list[Event] = Field(max_length=4)


class SummaryAnswer(_Strict):
    title: Short
    summary: Annotated[str, Field(max_length=600)]  # a paragraph
    key_points: list[Sentence] = Field(max_length=5)


@dataclass(frozen=True)
class Mode:
    name: str
    instruction: str
    answer: type[BaseModel] | None  # None: free text (describe) or custom


_TIME_HINT = (
    "The frames are from {start:.1f}s to {end:.1f}s of the source video; the <t seconds> markers give each "
    "frame's time. Report times in source seconds."
)

MODES: dict[str, Mode] = {
    "describe": Mode(
        "describe", "Describe what happens in this video segment: scene, people, on-screen text, actions.", None
    ),
    "screen_share": Mode(
        "screen_share",
        "This is a screen share. Describe the screen, its layout, the legible text, the UI elements, what the "
        "presenter does, and when the content changes.",
        ScreenShareAnswer,
    ),
    "meeting": Mode(
        "meeting",
        "This is a meeting recording. Describe the layout, the participants and who appears to speak, any shared "
        "content, legible text, and notable moments. From the speech lines, list the highlights: key statements, "
        "questions, decisions and action items, each with its time.",
        MeetingAnswer,
    ),
    "app_demo": Mode(
        "app_demo",
        "This is an application demo. Name the app, describe each user action as a step with its time, and the "
        "UI elements and text involved.",
        AppDemoAnswer,
    ),
    "ui": Mode(
        "ui",
        "Describe the user interface on screen: title, layout, every visible UI element with type, text and "
        "position, and the screen's purpose and state.",
        UIAnswer,
    ),
    "custom": Mode("custom", "", None),
}


def check_custom_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Reject user schemas that are too big, too deep, invalid, or not an object schema."""
    raw = json.dumps(schema)
    if len(raw.encode()) > MAX_CUSTOM_SCHEMA_BYTES:
        raise InvalidOptions(f"schema is {len(raw.encode())} bytes; the limit is {MAX_CUSTOM_SCHEMA_BYTES}")
    depth = _depth(schema)
    if depth > MAX_CUSTOM_SCHEMA_DEPTH:
        raise InvalidOptions(schema_depth_message(depth))
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidOptions(f"schema is not a valid JSON schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise InvalidOptions("schema must describe a JSON object ('type': 'object')")
    return schema


def schema_depth_message(depth: int) -> str:
    """The one message for a custom schema nested too deep (parsed or still text)."""
    return f"schema nests {depth} levels deep; at most {MAX_CUSTOM_SCHEMA_DEPTH} are accepted"


# A JSON string token (escapes included) or a bracket: all `json_nesting` needs to look at.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_nesting(text: str) -> tuple[int, str | None]:
    """(depth, key) of the deepest object or array in JSON `text`, without parsing it.

    Objects and arrays count one level each (as `_depth` does); `key` is the top-level member the
    deepest one lies in (None when it is the top level itself or not in an object). A loop over
    tokens, no recursion: it bounds nesting before any recursive parser or check sees the text.
    Malformed text gets a number too; the parser reports what is wrong with it afterwards.
    """
    depth = deepest = 0
    key = member = None
    in_object = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            if depth == 1 and in_object:
                member = token  # the last string at the top level is the key of the next nested value
        elif token in "[{":
            depth += 1
            if depth == 1:
                in_object = token == "{"
            if depth > deepest:
                deepest, key = depth, (member if depth > 1 else None)
        else:
            depth = max(0, depth - 1)
    return deepest, (json.loads(key) if key is not None else None)


def _depth(node: Any) -> int:
    """Nesting depth of a parsed JSON value (objects and arrays count one level each), iteratively."""
    deepest = 0
    stack = [(node, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def answer_schema(mode: str, custom_schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The JSON schema forced on the model's answer, or None for free text."""
    if mode == "custom":
        return custom_schema
    answer = MODES[mode].answer
    return answer.model_json_schema() if answer else None


#: Fraction digits xgrammar allows in a number with both bounds (0.2.8: `"." [0-9]{1,6}`, no exponent).
NUMBER_FRACTION_DIGITS = 6


def answer_chars(schema: dict[str, Any]) -> int | None:
    """Characters of the longest JSON text the structured-output grammar lets the model write for
    `schema`, or None when the schema does not bound it (a string without maxLength or with a pattern
    or format, an array without maxItems, a number without minimum and maximum, open objects, keywords
    not modelled here such as allOf). Counted for `json.dumps` with its default `", "` and `": "`
    separators, so it also bounds the compact form vLLM writes (`disable_any_whitespace`). A bounded
    string is its maxLength in characters plus its quotes: xgrammar's bounded-string grammar admits no
    escapes. Every property is counted, required or not; `$ref`s into the same schema are followed.
    """
    return _chars(schema, schema, 0)


def _chars(node: Any, root: dict[str, Any], depth: int) -> int | None:
    if not isinstance(node, dict) or depth > 4 * MAX_CUSTOM_SCHEMA_DEPTH:  # also stops $ref cycles
        return None
    if "$ref" in node:
        return _chars(_resolve(root, node["$ref"]), root, depth + 1)
    if "const" in node:
        return len(json.dumps(node["const"], ensure_ascii=False))
    if "enum" in node:
        return max((len(json.dumps(v, ensure_ascii=False)) for v in node["enum"]), default=None)
    if any(key in node for key in ("allOf", "not", "if", "prefixItems", "patternProperties")):
        return None
    for key in ("anyOf", "oneOf"):
        if key in node:
            return _longest([_chars(alt, root, depth + 1) for alt in node[key]])
    kind = node.get("type")
    if isinstance(kind, list):
        return _longest([_chars({**node, "type": k}, root, depth + 1) for k in kind])
    if kind == "string":
        bounded = "maxLength" in node and "pattern" not in node and "format" not in node
        return node["maxLength"] + 2 if bounded else None
    if kind == "boolean":
        return len("false")
    if kind == "null":
        return len("null")
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum", node.get("exclusiveMaximum"))
        if not isinstance(low, int | float) or not isinstance(high, int | float):
            return None
        digits = max(len(str(math.floor(low))), len(str(math.ceil(high))))  # sign included
        return digits + (1 + NUMBER_FRACTION_DIGITS if kind == "number" else 0)
    if kind == "array":
        items = _chars(node.get("items"), root, depth + 1)
        count = node.get("maxItems")
        if items is None or not isinstance(count, int):
            return None
        return len("[]") + count * items + max(0, count - 1) * len(", ")
    if kind == "object":
        if node.get("additionalProperties", False) is not False:  # absent: closed (xgrammar's strict mode)
            return None
        props: dict[str, Any] = node.get("properties", {})
        total = len("{}") + max(0, len(props) - 1) * len(", ")
        for key, value in props.items():
            size = _chars(value, root, depth + 1)
            if size is None:
                return None
            total += len(json.dumps(key, ensure_ascii=False)) + len(": ") + size
        return total
    return None


def _resolve(root: dict[str, Any], ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref.removeprefix("#").strip("/").split("/") if ref != "#" else []:
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    return node


def _longest(sizes: list[int | None]) -> int | None:
    return None if not sizes or None in sizes else max(s for s in sizes if s is not None)


#: Free-text `describe` answers are a few sentences; no schema bounds them, so this does. Without it a
#: model that never stops (the tiny random one does on free text) spends the whole cap and its retry
#: on every chunk (seen in CI: 2,560 + 5,120 tokens, ~130 s a chunk on CPU).
DESCRIBE_MAX_TOKENS = 512


def answer_token_budget(mode: str, custom_schema: dict[str, Any] | None = None) -> int | None:
    """Completion tokens the longest valid answer of `mode` can take, or None when nothing bounds it
    (free-text `describe`, a custom mode without a schema or with an unbounded one): the caller's cap
    applies then.

    Counted as one token per character of `answer_chars`, plus one for the end-of-turn token. Every
    token of a byte-level BPE (Qwen's, and the tiny test model's ~1k vocabulary) spells at least one
    byte, so this bounds any answer whose characters are single-byte (ASCII). It is NOT a bound for
    arbitrary text: a character of k UTF-8 bytes can cost up to k tokens where the vocabulary has no
    merge for it (an emoji: 4). A real Qwen tokenizer spends far fewer tokens than characters on
    English (~4 characters a token), so the budget is generous there; an answer that still runs over
    is retried once with a larger budget by the engine, then reported as cut off.
    """
    if mode == "describe":
        return DESCRIBE_MAX_TOKENS
    schema = answer_schema(mode, custom_schema)
    chars = answer_chars(schema) if schema is not None else None
    return None if chars is None else chars + 1


def summary_token_budget() -> int:
    """`answer_token_budget` of the summary call (its schema is bounded, so never None)."""
    chars = answer_chars(summary_schema())
    assert chars is not None, "the summary schema must bound every field"
    return chars + 1


_SPEECH_HINT = (
    "Speech heard in this segment (transcribed from the audio track; times in source seconds; speakers "
    "are not identified):"
)


def build_instruction(mode: str, start_s: float, end_s: float, prompt: str | None, speech: str = "") -> str:
    """The text part of the chunk prompt (the video part is added by the engine); `speech`: the chunk's
    transcript lines (`serve_app.speech.prompt_lines`), if any."""
    parts = [prompt if mode == "custom" and prompt else MODES[mode].instruction]
    if mode != "custom" and prompt:
        parts.append(f"Focus: {prompt}")
    parts.append(_TIME_HINT.format(start=start_s, end=end_s))
    if speech:
        parts.extend([_SPEECH_HINT, speech])
    if answer_schema(mode) is not None or mode == "custom":
        parts.append("Answer in JSON.")
    return "\n".join(parts)


class OutputError(ValueError):
    """The model's answer is not valid for the mode (truncated, bad JSON, schema violation)."""


def parse_answer(mode: str, text: str, custom_schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Parse and validate a structured answer; None for free-text modes."""
    schema = answer_schema(mode, custom_schema)
    if schema is None:
        return None
    try:
        # strict=False: a model may emit raw control characters inside strings.
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise OutputError(f"answer is not valid JSON ({exc.msg} at char {exc.pos})") from None
    answer = MODES[mode].answer
    try:
        if answer is not None:
            return answer.model_validate(data).model_dump(mode="json")
        jsonschema.validate(data, schema)
    except ValidationError as exc:
        raise OutputError(f"answer does not match the {mode} schema: {exc.errors()[0]['msg']}") from None
    except jsonschema.ValidationError as exc:
        raise OutputError(f"answer does not match the custom schema: {exc.message}") from None
    return data


def summary_instruction(timeline_text: str, mode: str, speech: str = "") -> str:
    """The summary prompt: the timeline, and the transcript lines (`speech`) when the video has speech."""
    text = (
        f"Below is a timeline of a video analysed in '{mode}' mode, one line per segment with its time range in "
        "seconds" + (", then what was said, one line per utterance" if speech else "") + ". Write a title, a "
        "summary of the whole video, and its key points. Answer in JSON.\n\nTimeline:\n" + timeline_text
    )
    return text + (f"\n\nSpeech:\n{speech}" if speech else "")


def summary_schema() -> dict[str, Any]:
    return SummaryAnswer.model_json_schema()


def parse_summary(text: str) -> SummaryAnswer:
    try:
        return SummaryAnswer.model_validate(json.loads(text, strict=False))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise OutputError(f"summary answer is invalid: {exc}") from None
