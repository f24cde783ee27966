"""Speech at the engine boundary: each chunk's prompt, as vLLM's real Qwen3-VL processor builds it,
carries exactly the transcript lines of that chunk (real Whisper on a generated meeting)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from serve_app.config import AsrSettings, VideoSettings
from serve_app.devtools.markers import ModelInputProbe
from serve_app.schemas import AnalyzeOptions
from serve_app.speech import Recognizer, segments_in, transcribe_file
from serve_app.speech.transcript import prompt_line
from serve_app.video import chunking_options, decode_chunk, plan_chunks, probe

if TYPE_CHECKING:
    from conftest import Meeting

_LINE = re.compile(r"^\[\d+\.\ds-\d+\.\ds\] .*$", re.MULTILINE)


@pytest.fixture(scope="module")
def model_input() -> ModelInputProbe:
    pytest.importorskip("vllm", reason="vllm is not installed (CI installs it)")
    return ModelInputProbe()


def test_each_chunk_prompt_has_exactly_its_lines(model_input: ModelInputProbe, meeting: Meeting) -> None:
    video = VideoSettings()
    info = probe(meeting.path, video)
    options = AnalyzeOptions(mode="meeting", chunk_s=8, overlap_s=1, sampling="uniform", fps=1)
    plans = plan_chunks(info, chunking_options(options, video), video)
    transcript = transcribe_file(Recognizer(AsrSettings()), meeting.path, None)
    assert transcript is not None and len(plans) >= 5

    seen: dict[str, list[int]] = {}
    for plan in plans:
        mine = segments_in(transcript, plan.start_s, plan.end_s)
        view = model_input.view(decode_chunk(meeting.path, plan, threads=1), "meeting", mine)
        lines = _LINE.findall(view.prompt_text)
        assert lines == [prompt_line(s) for s in mine], f"chunk {plan.index} [{plan.start_s}, {plan.end_s})"
        for s in mine:
            assert s.start_s < plan.end_s and s.end_s > plan.start_s  # only what overlaps the chunk
            seen.setdefault(s.text, []).append(plan.index)
    # Every sentence reached a prompt, whole (its full text on one line), and the one said across the
    # 16 s boundary reached both chunks around it, uncut.
    assert sorted(seen) == sorted(s.text for s in transcript.segments)
    across = next(s for s in transcript.segments if s.start_s < 16.0 < s.end_s)
    assert "final report" in across.text.lower() and len(seen[across.text]) >= 2
