"""Questions about videos, the way the ecosystem asks them: OpenAI Chat Completions with `video_url` parts.

    wire      the OpenAI request/response/error shapes (the subset served; anything else is a 400)
    answer    notes of an analysis, the answer's prompt and JSON shape, streaming extraction, citations
    service   a request → its video → its analysis (stored, or a job) → the answer (VLM, streamed)
    respond   the answer as one `chat.completion` or an SSE stream of chunks

Contract (`POST /v1/chat/completions`): `model` is the served model (`GET /v1/models`); `messages` with
`text` and at most one `video_url` part per conversation — `http(s)://…` (fetched under the SSRF rules),
`reelserve://jobs/<job id>` or `reelserve://videos/<video id>` (a processed video's content hash). A video
is analysed once, over its whole length, as a job (then reused by every later question with compatible
options: the question's `mode`, `sampling`, `fps`, `chunk_s`, `overlap_s`, `audio`, `language` — OpenAI
SDK `extra_body` — must match what was set, unset ones match anything); each question is one text-only
call over the analysis. A text answer cites times as `[mm:ss]`, each inside the video and a used chunk,
and the response's `citations` lists `{start_s, end_s, chunk}`; `response_format` `json_schema` answers
follow the caller's schema (structured outputs), citations alongside. `reelserve` in the response says
which video and job the answer is from and whether the analysis was reused.
"""

from serve_app.chat.respond import chat_completion, chat_stream
from serve_app.chat.service import ChatService

__all__ = ["ChatService", "chat_completion", "chat_stream"]
