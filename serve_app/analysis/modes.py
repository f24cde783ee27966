"""Analysis modes: what to ask the model about a chunk, and the JSON it must answer.

Every structured mode's answer is forced by vLLM's structured outputs
(xgrammar) to the mode's JSON schema, then parsed and validated here again.
Strings and arrays carry length bounds so that a complete answer always fits
in the completion budget (xgrammar cannot combine `pattern` with
`maxLength`, so control characters are tolerated by the lenient parser
instead of excluded by a pattern).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serve_app.errors import InvalidOptions

MAX_CUSTOM_SCHEMA_BYTES = 16 * 1024
MAX_CUSTOM_SCHEMA_DEPTH = 8

Short = Annotated[str, Field(max_length=80)]
Sentence = Annotated[str, Field(max_length=200)]
Position = Literal["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Event(_Strict):
    """Something that happens at a time, in source-video seconds."""

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    description: Sentence


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
    text: Short
    position: Position


class Participant(_Strict):
    name: Short = Field(description="Name as shown on screen, or a short description.")
    position: Position
    speaking: bool = Field(description="Visual cue that this person is speaking (highlight, open mouth).")


class ScreenShareAnswer(_Strict):
    scene: Sentence = Field(description="What is on screen.")
    layout: Short = Field(description="Screen layout, e.g. 'slides full screen', 'IDE with terminal'.")
    visible_text: list[Short] = Field(max_length=6, description="Legible text, most important first.")
    ui_elements: list[UIElement] = Field(max_length=6)
    activity: Sentence = Field(description="What the presenter is doing.")
    events: list[Event] = Field(max_length=4, description="Changes (new slide, window, dialog) with times.")


class MeetingAnswer(_Strict):
    scene: Sentence
    layout: Literal["gallery", "speaker", "screen_share", "screen_share_with_video", "in_room", "other"]
    participants: list[Participant] = Field(max_length=6)
    shared_content: Sentence = Field(description="What is being shared, if anything.")
    visible_text: list[Short] = Field(max_length=6)
    activity: Sentence
    events: list[Event] = Field(max_length=4)


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
    summary: Annotated[str, Field(max_length=600)]
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
        "content, legible text, and notable moments.",
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
    if _depth(schema) > MAX_CUSTOM_SCHEMA_DEPTH:
        raise InvalidOptions(f"schema nests deeper than {MAX_CUSTOM_SCHEMA_DEPTH} levels")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidOptions(f"schema is not a valid JSON schema: {exc.message}") from None
    if schema.get("type") != "object":
        raise InvalidOptions("schema must describe a JSON object ('type': 'object')")
    return schema


def _depth(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + max((_depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((_depth(v) for v in node), default=0)
    return 0


def answer_schema(mode: str, custom_schema: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The JSON schema forced on the model's answer, or None for free text."""
    if mode == "custom":
        return custom_schema
    answer = MODES[mode].answer
    return answer.model_json_schema() if answer else None


def build_instruction(mode: str, start_s: float, end_s: float, prompt: str | None) -> str:
    """The text part of the chunk prompt (the video part is added by the engine)."""
    parts = [prompt if mode == "custom" and prompt else MODES[mode].instruction]
    if mode != "custom" and prompt:
        parts.append(f"Focus: {prompt}")
    parts.append(_TIME_HINT.format(start=start_s, end=end_s))
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


def summary_instruction(timeline_text: str, mode: str) -> str:
    return (
        f"Below is a timeline of a video analysed in '{mode}' mode, one line per segment with its time range in "
        "seconds. Write a title, a summary of the whole video, and its key points. Answer in JSON.\n\n" + timeline_text
    )


def summary_schema() -> dict[str, Any]:
    return SummaryAnswer.model_json_schema()


def parse_summary(text: str) -> SummaryAnswer:
    try:
        return SummaryAnswer.model_validate(json.loads(text, strict=False))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise OutputError(f"summary answer is invalid: {exc}") from None
