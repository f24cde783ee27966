"""Answering from an analysis (pure): notes, the answer's JSON shape, streaming extraction, citations."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from serve_app.chat.answer import AnswerStream, ChatPrompt, MarkFilter, answer_schema, citations_of, clock, notes_of
from serve_app.chat.wire import ChatRequest, Citation
from serve_app.http.openai_errors import openai_error
from tests.search.test_index import analysis


def video() -> object:
    return analysis(
        "a",
        visible=[["Billing dashboard"], ["Settings page"]],
        said=[(3.0, 5.0, "let us open billing"), (25.0, 27.0, "now the settings")],
        timeline=[(2.0, 4.0, "billing opens"), (24.0, 26.0, "settings open")],
    )


def test_notes_label_each_chunk_with_its_time_and_carry_what_was_seen_and_said() -> None:
    notes = notes_of(video())
    assert [(n.chunk, n.start_s, n.end_s) for n in notes] == [(0, 0.0, 20.0), (1, 20.0, 40.0)]
    first = notes[0].text(10_000)
    assert first.startswith("[chunk 0 | 00:00-00:20]")
    for expected in ("[00:02] billing opens", "on screen: Billing dashboard", "[00:03] said: let us open billing"):
        assert expected in first
    assert "settings open" not in first and "now the settings" not in first  # chunk 1's, not chunk 0's


def test_failed_chunks_are_not_notes() -> None:
    a = video()
    a.chunks[1] = a.chunks[1].model_copy(update={"output": None, "error": "decode failed"})
    assert [n.chunk for n in notes_of(a)] == [0]


def test_the_prompt_puts_the_notes_before_the_conversation_and_thins_them_to_fit() -> None:
    prompt = ChatPrompt.about([("user", "When does billing open?")], video())
    full, thin = prompt.messages(100_000), prompt.messages(200)
    assert [m["role"] for m in full] == ["system", "user"] and full[1]["content"] == "When does billing open?"
    assert "Notes on a video of 00:40" in full[0]["content"] and "[chunk 1 | 00:20-00:40]" in full[0]["content"]
    assert len(thin[0]["content"]) < len(full[0]["content"])


def test_the_answer_schema_cites_only_chunks_with_notes_before_the_answer() -> None:
    schema = answer_schema([0, 3], None, max_citations=4, max_answer_chars=500)
    assert list(schema["properties"]) == ["citations", "answer"]
    assert schema["properties"]["citations"]["items"]["properties"]["chunk"] == {"enum": [0, 3]}
    assert schema["properties"]["citations"]["minItems"] == 1 and schema["properties"]["citations"]["maxItems"] == 4
    wrapped = answer_schema([0], {"type": "object", "properties": {"ok": {"type": "boolean"}}}, 4, 500)
    assert wrapped["properties"]["answer"]["properties"] == {"ok": {"type": "boolean"}}


def grow(raw: str, stream: AnswerStream, step: int = 3) -> list[str]:
    """Feed `raw` as a generation growing `step` characters at a time."""
    return [stream.feed(raw[:end]) for end in range(step, len(raw) + step, step)]


def test_a_text_answer_streams_out_of_its_json_string_escapes_and_all() -> None:
    answer = 'Billing opens at [00:02], then \\"Settings\\" \\u00e9\\n!'
    raw = '{"citations":[{"chunk":0},{"chunk":1}],"answer":"' + answer + '"}'
    stream = AnswerStream(text_answer=True)
    pieces = grow(raw, stream)
    assert "".join(pieces) == json.loads('"' + answer + '"')
    assert stream.chunks == [0, 1] and stream.ended


def test_a_json_answer_streams_as_raw_json_without_the_wrapper() -> None:
    raw = '{"citations":[{"chunk":1}],"answer":{"seen":{"billing":true}}}'
    stream = AnswerStream(text_answer=False)
    assert "".join(grow(raw, stream, step=2)) == '{"seen":{"billing":true}}'
    assert stream.chunks == [1]


def test_a_cut_off_answer_gives_what_there_is() -> None:
    stream = AnswerStream(text_answer=True)
    assert stream.feed('{"citations":[{"chunk":0}],"answer":"half an ans') == "half an ans"
    assert not stream.ended
    assert AnswerStream(text_answer=True).feed('{"citations":[{"ch') == ""


def test_marks_inside_the_video_and_a_used_chunk_stay_and_become_citations_others_go() -> None:
    notes = notes_of(video())
    marks = MarkFilter(notes, duration_s=40.0)
    text = "Billing at [00:02], settings at [00:25-00:27], later [05:00], [not a mark] and [99:99]."
    out = "".join(marks.feed(text[i : i + 4]) for i in range(0, len(text), 4)) + marks.feed("", final=True)
    assert out == "Billing at [00:02], settings at [00:25-00:27], later , [not a mark] and ."
    assert marks.citations == [Citation(start_s=2, end_s=2, chunk=0), Citation(start_s=25, end_s=27, chunk=1)]
    assert marks.closing_marks([1, 0]) == ""  # both chunks already have a mark


def test_a_cited_chunk_without_a_mark_gets_one_and_citations_have_no_repeats() -> None:
    notes = notes_of(video())
    marks = MarkFilter(notes, duration_s=40.0)
    marks.feed("At [00:02] billing.", final=True)
    assert marks.closing_marks([0, 1, 1]) == " [00:20]"
    assert citations_of([1, 0, 1], notes, marks.citations) == [
        Citation(start_s=20, end_s=40, chunk=1),
        Citation(start_s=0, end_s=20, chunk=0),
        Citation(start_s=2, end_s=2, chunk=0),
    ]


def test_clock() -> None:
    assert (clock(0), clock(65.9), clock(3725)) == ("00:00", "01:05", "1:02:05")


def request(**fields: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": []},  # not served: refused, never ignored
        {"n": 2},
        {"logprobs": True},
        {"max_tokens": 10, "max_completion_tokens": 10},
        {"stream_options": {"include_usage": True}},  # without stream
        {"response_format": {"type": "json_schema"}},
        {"mode": "custom"},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y"}}]}]},
    ],
)
def test_fields_that_are_not_served_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate(request(**fields))


def test_extra_body_options_and_video_parts_are_read() -> None:
    parsed = ChatRequest.model_validate(
        request(
            mode="ui",
            chunk_s=10,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "video_url", "video_url": {"url": "reelserve://jobs/abc"}},
                        {"type": "text", "text": "what happens?"},
                    ],
                }
            ],
        )
    )
    assert parsed.analysis_options() == {"mode": "ui", "chunk_s": 10}
    assert parsed.video_urls() == ["reelserve://jobs/abc"] and parsed.messages[0].text() == "what happens?"


def test_problems_become_openai_errors_with_the_field_as_param() -> None:
    body = openai_error(
        {
            "type": "https://reelserve.dev/problems/invalid-options",
            "status": 422,
            "detail": "messages.0.content: bad",
            "errors": [{"loc": ["body", "messages", 0, "content"], "msg": "bad"}],
        }
    )
    assert body == {
        "error": {
            "message": "messages.0.content: bad",
            "type": "invalid_request_error",  # and status 400, as OpenAI's API answers invalid requests
            "param": "messages.0.content",
            "code": "invalid-options",
        }
    }
