"""Questions at the engine boundary: the token ids `VLMEngine.chat` sends, rendered by the real Qwen3-VL chat
template and tokenizer, carry every chunk's note with its time range, then the caller's conversation in
order, and still fit the context when the notes must be thinned."""

from __future__ import annotations

import re

import pytest

from serve_app.chat.answer import ChatPrompt, ChunkNote
from serve_app.devtools.markers import ModelInputProbe
from serve_app.errors import BadRequest

_TURN = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)(?:<\|im_end\|>|$)", re.DOTALL)


@pytest.fixture(scope="module")
def model_input() -> ModelInputProbe:
    pytest.importorskip("vllm", reason="vllm is not installed (CI installs it)")
    return ModelInputProbe()


def _notes(chunks: int, lines: int) -> tuple[ChunkNote, ...]:
    return tuple(
        ChunkNote(
            c,
            c * 19.0,
            c * 19.0 + 20.0,
            tuple(f"[{(c * 19 + i) // 60:02d}:{(c * 19 + i) % 60:02d}] chunk {c} line {i}" for i in range(lines)),
        )
        for c in range(chunks)
    )


def _turns(text: str) -> list[tuple[str, str]]:
    return [(role, body) for role, body in _TURN.findall(text)]


CONVERSATION = (
    ("user", "When is the quarterly budget on screen?"),
    ("assistant", "At [00:42], in chunk 2."),
    ("user", "Who presents it?"),
)


def test_the_notes_then_the_conversation_reach_the_model_in_order(model_input: ModelInputProbe) -> None:
    prompt = ChatPrompt(CONVERSATION, _notes(3, 4), "Notes on a video of 01:00")
    turns = _turns(model_input.chat_prompt(prompt, max_tokens=256))
    assert [role for role, _ in turns] == ["system", "user", "assistant", "user", "assistant"]
    system = turns[0][1]
    assert "Notes on a video of 01:00:" in system
    for c, head in enumerate(["[chunk 0 | 00:00-00:20]", "[chunk 1 | 00:19-00:39]", "[chunk 2 | 00:38-00:58]"]):
        assert head in system
        assert all(f"chunk {c} line {i}" in system for i in range(4)), c
    assert system.index("[chunk 0 |") < system.index("[chunk 1 |") < system.index("[chunk 2 |")
    assert [body.strip() for _, body in turns[1:4]] == [text for _, text in CONVERSATION]
    assert turns[-1][1] == "", "the prompt ends by opening the assistant's answer"


def test_notes_too_long_are_thinned_to_fit_and_every_chunk_keeps_its_place(model_input: ModelInputProbe) -> None:
    engine = model_input.engine
    max_tokens = 1024
    prompt = ChatPrompt(CONVERSATION, _notes(90, 60), "Notes on a video of 28:30")
    ids = engine.chat_prompt_ids(prompt, max_tokens)
    assert len(ids) <= engine.settings.max_model_len - max_tokens
    turns = _turns(model_input.tokenizer.decode(ids))
    system = turns[0][1]
    assert all(f"[chunk {c} |" in system for c in range(90)), "a chunk's note was dropped, not thinned"
    assert system.count(" line ") < 90 * 60, "nothing was thinned"
    assert [body.strip() for _, body in turns[1:4]] == [text for _, text in CONVERSATION]


def test_a_conversation_that_cannot_fit_is_a_bad_request(model_input: ModelInputProbe) -> None:
    engine = model_input.engine
    long_question = "word " * (engine.settings.max_model_len * 2)
    with pytest.raises(BadRequest, match="prompt tokens"):
        engine.chat_prompt_ids(ChatPrompt((("user", long_question),), None), max_tokens=256)
