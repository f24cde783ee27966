"""The API contract and the records that cross process boundaries.

Imports nothing but pydantic (and the standard library): these models are
shared by the HTTP ingress, the Serve deployments, the bulk jobs and the
tests. Bulky in-process values (decoded frames) stay in the core as plain
dataclasses (`serve_app.video.decode.SampledChunk`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AnalysisMode = Literal["describe", "screen_share", "meeting", "app_demo", "ui", "custom"]
#: How frames are picked within a chunk: a fixed rate, or changes on a base-rate grid.
SamplingStrategy = Literal["uniform", "adaptive"]
#: 'auto': transcribe the audio track when the video has one; 'off': pixels only.
AudioMode = Literal["auto", "off"]


class VideoInfo(BaseModel):
    """What probing a video found (PyAV), after validation."""

    container: str = Field(description="Container format name as reported by FFmpeg, e.g. 'matroska,webm'.")
    codec: str = Field(description="Video codec name, e.g. 'h264', 'vp8'.")
    duration_s: float = Field(gt=0, description="Duration of the video stream in seconds.")
    fps: float = Field(gt=0, description="Average frame rate of the video stream.")
    width: int = Field(gt=0, description="Displayed width in pixels (after rotation).")
    height: int = Field(gt=0, description="Displayed height in pixels (after rotation).")
    rotation: int = Field(default=0, description="Clockwise rotation applied for display, degrees.")
    frame_count: int | None = Field(default=None, description="Frames in the stream when the container says so.")
    has_audio: bool = Field(description="True when the container has at least one audio stream.")
    stream_count: int = Field(ge=1, description="Number of streams of any kind in the container.")
    size_bytes: int = Field(ge=0, description="Size of the file in bytes.")
    sha256: str = Field(description="SHA-256 of the file's bytes.")

    @property
    def video_id(self) -> str:
        """The video's one id everywhere (API, jobs, bulk, logs): its content hash, shortened."""
        return video_id_of(self.sha256)


def video_id_of(sha256: str) -> str:
    """`VideoInfo.video_id` of a file with this SHA-256 (e.g. one hashed before it is probed)."""
    return sha256[:16]


class ChunkPlan(BaseModel):
    """One chunk of a video to decode, sample and send to the model.

    `start_s`/`end_s` include the overlap with the neighbours; `core_start_s`
    /`core_end_s` is the part this chunk owns alone (neighbouring cores touch),
    used to de-duplicate the timeline.
    """

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    core_start_s: float = Field(ge=0)
    core_end_s: float = Field(gt=0)
    fps: float = Field(gt=0, description="Target sampling rate within the chunk.")
    width: int = Field(gt=0, multiple_of=32, description="Frame width sent to the model.")
    height: int = Field(gt=0, multiple_of=32, description="Frame height sent to the model.")
    max_frames: int = Field(ge=2, le=768, description="Frames sampled from the chunk (even).")
    token_budget: int = Field(gt=0, description="Visual-token budget of the chunk.")
    visual_tokens: int = Field(gt=0, description="Visual tokens the planned frames cost (<= token_budget).")
    # No defaults below: a plan states what the server's settings chose (serve_app.video.chunking_options).
    sampling: SamplingStrategy = Field(
        description="'uniform': max_frames frames at fps. 'adaptive': candidates at fps, kept on change, "
        "at most max_frames (the ceiling).",
    )
    floor_s: float = Field(gt=0, description="Adaptive: longest stretch without a kept frame.")
    change_threshold: float = Field(
        gt=0, description="Adaptive: mean grey-level difference that marks a tile as changed."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ChunkPlan:
        if not (self.start_s <= self.core_start_s < self.core_end_s <= self.end_s):
            raise ValueError("chunk ranges must satisfy start <= core_start < core_end <= end")
        return self

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def target_times(self) -> list[float]:
        """Source times to sample: the centres of `max_frames` equal slots."""
        step = self.duration_s / self.max_frames
        return [self.start_s + (i + 0.5) * step for i in range(self.max_frames)]

    def sample_times(self) -> list[float]:
        """Times of the frames the decoder picks: the targets (uniform) or the candidate grid at fps (adaptive)."""
        if self.sampling == "uniform":
            return self.target_times()
        count = max(2, math.ceil(self.duration_s * self.fps - 1e-9))
        step = self.duration_s / count
        return [self.start_s + (i + 0.5) * step for i in range(count)]


class DecodeStats(BaseModel):
    frames_decoded: int = Field(ge=0, description="Frames the decoder produced for this chunk.")
    frames_sampled: int = Field(ge=0, description="Frames picked at the target times (adaptive: the candidates).")
    frames_kept: int = Field(ge=0, description="Frames sent to the model (even count).")
    decode_s: float = Field(ge=0, description="Wall time of seek + decode + resize.")
    visual_tokens: int = Field(default=0, ge=0, description="Visual tokens the kept frames cost at the planned size.")
    sampling: SamplingStrategy = Field(default="uniform", description="Strategy that picked the frames.")


class ChunkingOptions(BaseModel):
    """Per-request knobs for planning, server defaults filled in (`serve_app.video.chunking_options`)."""

    chunk_s: float = Field(gt=0, description="Chunk length in seconds (including overlap).")
    overlap_s: float = Field(ge=0, description="Overlap between neighbouring chunks in seconds.")
    fps: float = Field(gt=0, description="Target sampling rate in frames per second (adaptive: the base rate).")
    token_budget: int = Field(gt=0, description="Visual-token budget per chunk.")
    sampling: SamplingStrategy = Field(description="Frame sampling strategy.")
    floor_s: float = Field(gt=0, description="Adaptive: longest stretch without a kept frame.")
    change_threshold: float = Field(gt=0, description="Adaptive: tile difference that counts.")
    static_chunk_s: float = Field(ge=0, description="Adaptive: longest a chunk grows over static stretches (0: off).")

    @model_validator(mode="after")
    def _overlap_below_length(self) -> ChunkingOptions:
        if (problem := overlap_problem(self.chunk_s, self.overlap_s)) is not None:
            raise ValueError(problem)
        return self


def overlap_problem(chunk_s: float, overlap_s: float) -> str | None:
    """The one rule joining chunk length and overlap (request options, server settings, the planner).

    An overlap of at most half the chunk: the planner's step (chunk_s - overlap_s) stays positive, every
    chunk owns a core of at least half its length, and a chunk overlaps only its neighbours (at exactly
    half, the next-but-one chunk starts where this one ends). The smallest chunk (2 s) with the default
    overlap (1 s) is such a case. None when the pair is fine, else why not.
    """
    if overlap_s > chunk_s / 2:
        return f"overlap_s ({overlap_s:g} s) must be at most half of chunk_s ({chunk_s:g} s)"
    return None


_NO_CONTROL_CHARS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"


class AnalyzeOptions(BaseModel):
    """Options of `POST /v1/analyze` (JSON body or multipart form fields).

    Every numeric knob is optional; `None` means the server's configured
    default. Ranges are checked again against the server's limits.
    """

    # The field is `json_schema` in code (pydantic reserves `schema`), "schema" on the wire, both ways.
    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    mode: AnalysisMode = Field(default="describe", description="Analysis mode.")
    prompt: str | None = Field(
        default=None,
        max_length=4000,
        pattern=_NO_CONTROL_CHARS,
        description="Instruction for mode 'custom', or extra guidance for the other modes.",
    )
    json_schema: dict[str, Any] | None = Field(
        default=None,
        alias="schema",
        description="JSON schema the 'custom' mode's answer must satisfy (optional).",
    )
    fps: float | None = Field(
        default=None, gt=0, le=8, description="Target sampling rate (adaptive: the rate candidates are drawn at)."
    )
    sampling: SamplingStrategy | None = Field(
        default=None,
        description="'uniform' (fixed fps) or 'adaptive' (keep frames where the picture changes; screen shares).",
    )
    chunk_s: float | None = Field(default=None, ge=2, le=600, description="Chunk length in seconds.")
    overlap_s: float | None = Field(default=None, ge=0, le=30, description="Chunk overlap in seconds.")
    max_tokens: int | None = Field(
        default=None,
        ge=16,
        le=8192,
        description="Max completion tokens of a chunk's answer (default: the mode's longest valid answer, capped "
        "by the server); an answer cut off there is retried once with twice that.",
    )
    aggregate: bool = Field(default=True, description="Merge chunks into a summary with one extra model call.")
    audio: AudioMode = Field(
        default="auto",
        description="'auto': transcribe the audio track (Whisper, offline) and give each chunk's prompt its "
        "lines; 'off': pixels only.",
    )
    language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}$",
        description="Spoken language as a Whisper language code ('en', 'de', ...); default: detected.",
    )

    @field_validator("json_schema")
    @classmethod
    def _schema_needs_object(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not value:
            raise ValueError("schema must be a non-empty JSON schema object")
        return value

    @model_validator(mode="after")
    def _custom_needs_prompt(self) -> AnalyzeOptions:
        if self.mode == "custom" and not self.prompt:
            raise ValueError("mode 'custom' needs a prompt")
        if self.json_schema is not None and self.mode != "custom":
            raise ValueError("schema is only accepted with mode 'custom'")
        if self.chunk_s is not None and self.overlap_s is not None:
            # Against the server's defaults the pair is checked again (serve_app.video.chunking_options).
            if (problem := overlap_problem(self.chunk_s, self.overlap_s)) is not None:
                raise ValueError(problem)
        return self

    def to_chunk_task(self, video_id: str, default_max_tokens: int) -> ChunkTask:
        """What the VLM needs for each chunk of this request (the one conversion, online and bulk)."""
        return ChunkTask(
            video_id=video_id,
            mode=self.mode,
            prompt=self.prompt,
            json_schema=self.json_schema,
            max_tokens=self.max_tokens or default_max_tokens,
        )


class AnalyzeUrlRequest(AnalyzeOptions):
    """JSON body of `POST /v1/analyze` when the server fetches the video."""

    video_url: str = Field(min_length=8, max_length=4096, description="http(s) URL of the video.")


class ChunkTask(BaseModel):
    """What the VLM deployment needs to know to analyse one chunk."""

    video_id: str
    mode: AnalysisMode
    prompt: str | None = None
    json_schema: dict[str, Any] | None = None
    max_tokens: int = Field(gt=0)


class Word(BaseModel):
    start_s: float
    end_s: float
    text: str
    probability: float = Field(ge=0, le=1)


class TranscriptSegment(BaseModel):
    """One recognized sentence or phrase; times on the video's clock (the frames' origin)."""

    model_config = ConfigDict(frozen=True)

    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str
    words: list[Word] | None = Field(default=None, description="Word times, when the server asks for them.")


class Transcript(BaseModel):
    """What was said: the audio track transcribed once, whole (chunks get the segments they overlap)."""

    language: str = Field(description="Language code, detected or as requested.")
    language_probability: float = Field(ge=0, le=1, description="Detection confidence (1 when requested).")
    model: str = Field(description="Speech model, e.g. 'whisper-base'.")
    segments: list[TranscriptSegment]
    audio_s: float = Field(ge=0, description="Seconds of audio decoded.")
    speech_s: float = Field(ge=0, description="Seconds the voice-activity filter kept (what was transcribed).")
    asr_s: float = Field(ge=0, description="Wall time of decode + transcription.")
    packets_skipped: int = Field(default=0, ge=0, description="Corrupt audio packets skipped while decoding.")


class TimedEvent(BaseModel):
    start_s: float
    end_s: float
    text: str


class ChunkResult(BaseModel):
    index: int = Field(ge=0)
    start_s: float
    end_s: float
    mode: AnalysisMode
    frame_times_s: list[float] = Field(description="Source timestamps of the frames sent to the model.")
    output: dict[str, Any] | None = Field(default=None, description="Parsed answer, valid against the mode's schema.")
    text: str | None = Field(default=None, description="Raw model answer.")
    prompt_tokens: int = Field(default=0, ge=0)
    visual_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0, description="Completion tokens of every model call (retry too).")
    attempts: list[int] = Field(
        default_factory=list,
        description="max_tokens of each model call: one, or two when the first answer was cut off and "
        "retried once with a larger budget.",
    )
    decode: DecodeStats | None = None
    transcript: list[TranscriptSegment] = Field(
        default_factory=list, description="Speech overlapping this chunk (whole segments), as its prompt had it."
    )
    transcript_tokens: int = Field(default=0, ge=0, description="Prompt tokens the transcript lines took.")
    infer_s: float = Field(default=0.0, ge=0)
    error: str | None = Field(default=None, description="Why this chunk has no answer, if it failed.")

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, plan: ChunkPlan, mode: AnalysisMode, error: str) -> ChunkResult:
        """A chunk with no answer: its time range and why."""
        return cls(index=plan.index, start_s=plan.start_s, end_s=plan.end_s, mode=mode, frame_times_s=[], error=error)


class TimelineEntry(BaseModel):
    start_s: float
    end_s: float
    chunk_index: int
    text: str


class Chapter(BaseModel):
    """A seek point of the video, made from the timeline (serve_app.analysis.chapters)."""

    title: str
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0, description="The next chapter's start, or the end of the video.")


class Thumbnail(BaseModel):
    """A small JPEG of a frame the model was shown, stored with its job."""

    time_s: float = Field(ge=0, description="The frame's presentation time, video clock.")
    url: str = Field(description="Where the JPEG is served (`/v1/jobs/<id>/thumbnails/<ms>.jpg`).")


class Summary(BaseModel):
    title: str
    summary: str
    key_points: list[str]
    text: str | None = Field(default=None, description="Raw model answer.")
    prompt_tokens: int = 0
    completion_tokens: int = Field(default=0, description="Completion tokens of every model call (retry too).")
    attempts: list[int] = Field(default_factory=list, description="max_tokens of each model call (see ChunkResult).")


class AnalysisStats(BaseModel):
    chunks: int = Field(ge=0)
    chunks_failed: int = Field(ge=0)
    frames_decoded: int = Field(ge=0)
    frames_sampled: int = Field(ge=0)
    frames_kept: int = Field(ge=0)
    visual_tokens: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    fetch_s: float = Field(default=0.0, ge=0, description="Upload store or URL download time.")
    probe_s: float = Field(default=0.0, ge=0)
    decode_s: float = Field(ge=0, description="Sum of chunk decode times (they run in parallel).")
    infer_s: float = Field(ge=0, description="Sum of chunk inference times (they run in parallel).")
    summary_s: float = Field(default=0.0, ge=0)
    asr_s: float = Field(default=0.0, ge=0, description="Audio decode + transcription (overlaps the chunks).")
    wall_s: float = Field(default=0.0, ge=0, description="End-to-end time of the request.")

    @classmethod
    def from_results(cls, results: list[ChunkResult], **timings: float) -> AnalysisStats:
        decoded = [r.decode for r in results if r.decode is not None]
        return cls(
            chunks=len(results),
            chunks_failed=sum(not r.ok for r in results),
            frames_decoded=sum(d.frames_decoded for d in decoded),
            frames_sampled=sum(d.frames_sampled for d in decoded),
            frames_kept=sum(d.frames_kept for d in decoded),
            visual_tokens=sum(r.visual_tokens for r in results),
            prompt_tokens=sum(r.prompt_tokens for r in results),
            completion_tokens=sum(r.completion_tokens for r in results),
            decode_s=math.fsum(d.decode_s for d in decoded),
            infer_s=math.fsum(r.infer_s for r in results),
            **timings,
        )


class VideoAnalysis(BaseModel):
    video_id: str
    video: VideoInfo
    request: AnalyzeOptions
    model: str
    chunks: list[ChunkResult]
    timeline: list[TimelineEntry]
    summary: Summary | None
    summary_error: str | None = Field(
        default=None, description="Why there is no summary although one was asked for (failed or cut off)."
    )
    transcript: Transcript | None = Field(
        default=None, description="What was said; None when audio is off, absent, or could not be transcribed."
    )
    transcript_error: str | None = Field(default=None, description="Why the audio track has no transcript.")
    stats: AnalysisStats


class Problem(BaseModel):
    """RFC 9457 problem details, served as `application/problem+json`."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    alternate: str | None = Field(
        default=None, description="A route that takes the same request instead (too-long-for-sync: /v1/jobs)."
    )


JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobProgress(BaseModel):
    chunks_total: int = Field(default=0, ge=0)
    chunks_done: int = Field(default=0, ge=0, description="Finished chunks, failed ones included.")
    chunks_failed: int = Field(default=0, ge=0)
    video_s_total: float = Field(default=0.0, ge=0)
    video_s_done: float = Field(default=0.0, ge=0, description="Seconds of video whose chunks are finished.")
    eta_s: float | None = Field(default=None, ge=0, description="Estimated seconds until the job finishes.")


class Job(BaseModel):
    """A durable analysis job (`/v1/jobs`)."""

    id: str
    status: JobStatus
    created_at: float = Field(description="Unix time.")
    updated_at: float
    started_at: float | None = None
    finished_at: float | None = None
    request: AnalyzeOptions
    source: str = Field(description="Uploaded file name or the fetched URL.")
    video: VideoInfo | None = None
    progress: JobProgress = Field(default_factory=JobProgress)
    error: str | None = None
    attempts: int = Field(default=0, ge=0, description="Times a runner started (or resumed) this job.")
    links: dict[str, str] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES


class JobList(BaseModel):
    jobs: list[Job]


class StoredChunk(BaseModel):
    """A finished chunk as kept in the job store; `epoch` names the runner incarnation that inferred it."""

    epoch: str
    result: ChunkResult


#: What a search hit matched: a timeline entry, text seen on screen (a chunk's `visible_text`, UI labels), the
#: rest of a chunk's answer (scene, activity, ... or its free text), or a transcript segment.
SearchKind = Literal["timeline", "screen_text", "chunk", "speech"]


class SearchHit(BaseModel):
    """One moment of one processed video that matches a search (`GET /v1/search`)."""

    video_id: str = Field(description="The video's content-hash id (`VideoInfo.video_id`).")
    start_s: float = Field(ge=0, description="Start of the matching moment, video clock.")
    end_s: float = Field(ge=0, description="End of the matching moment, video clock.")
    kind: SearchKind
    snippet: str = Field(description="The matching text around the match, matched terms «marked», cuts as '…'.")
    score: float = Field(description="BM25 relevance (higher is better; hits are sorted by it).")
    source: Literal["job", "archive"] = Field(description="Where the result is: a job's, or an archive output's.")
    job_id: str | None = Field(default=None, description="The job whose result this is (source 'job').")
    result_key: str | None = Field(default=None, description="The archive output's result key (source 'archive').")
    link: str = Field(
        description="The moment: the result's URL or URI with a media fragment `#t=<start>,<end>` (jobs: "
        "`/v1/jobs/<id>/result#t=...`, relative to the API; archives: `<OUT>/analyses/<key>.json#t=...`)."
    )


class SearchResults(BaseModel):
    query: str = Field(description="The query as given.")
    match: str = Field(description="The FTS5 expression it was translated to (serve_app.search.query).")
    results_indexed: int = Field(ge=0, description="Processed results the index covers.")
    hits: list[SearchHit]
