"""reelserve's error tree; each class owns its HTTP status and problem type.

    ReelserveError                    500  internal
    ├── BadRequest                    400  bad-request
    │   ├── EmptyUpload               400  empty-upload
    │   ├── UrlFetchFailed            400  url-fetch-failed   (network or HTTP failure)
    │   └── UrlForbidden              400  url-forbidden      (scheme or address refused by policy)
    ├── Unauthorized                  401  unauthorized       (missing or wrong API key)
    ├── PayloadTooLarge               413  payload-too-large
    ├── InvalidVideo                  422  invalid-video      (unreadable, corrupt, truncated)
    │   ├── NoVideoStream             422  no-video-stream    (e.g. audio-only)
    │   ├── ZeroDuration              422  zero-duration
    │   └── VideoTooLong              422  video-too-long
    ├── UnsupportedCodec              415  unsupported-codec
    ├── InvalidOptions                422  invalid-options
    ├── InvalidQuery                  422  invalid-query      (a search query: empty, too long, nothing to find)
    ├── JobNotFound                   404  job-not-found
    ├── NoTranscript                  404  no-transcript
    ├── JobAssetMissing               404  asset-not-found    (no kept video, no thumbnails)
    ├── ModelNotFound                 404  model-not-found    (a chat request's model)
    ├── VideoNotFound                 404  video-not-found    (reelserve://videos/<id> never processed)
    ├── JobConflict                   409  job-conflict       (no result yet, already finished)
    ├── TooLongForSync                422  too-long-for-sync  (more chunks than /v1/analyze takes: use a job)
    ├── Overloaded                    503  overloaded         (job queue full)
    ├── AnalysisPending               503  analysis-pending   (a question waits on its video's job)
    └── EngineUnavailable             503  engine-unavailable

PyAV, httpx and vLLM errors are translated into these at the boundary
(`video.probe`, `fetch`, `engine`); the ingress maps them to problem bodies in
one place. The classes are plain (message-only) so they pickle across Ray.
"""

from __future__ import annotations

PROBLEM_BASE = "https://reelserve.dev/problems/"


class ReelserveError(Exception):
    status: int = 500
    type: str = "internal"
    title: str = "Internal error"
    alternate: str | None = None  # a route (under the app's root) that takes the same request instead

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self):  # keep the subclass and detail when pickled by Ray
        return (type(self), (self.detail,))


class BadRequest(ReelserveError):
    status, type, title = 400, "bad-request", "Bad request"


class EmptyUpload(BadRequest):
    type, title = "empty-upload", "Empty upload"


class UrlFetchFailed(BadRequest):
    type, title = "url-fetch-failed", "Could not fetch the video URL"
    reason: str = "network"  # what failed, for the fetch-failure metric (http.fetch sets dns, http-status, ...)


class UrlForbidden(BadRequest):
    """The URL's scheme, host or resolved address is not allowed (SSRF protection); nothing was fetched."""

    type, title = "url-forbidden", "Video URL not allowed"


class Unauthorized(ReelserveError):
    status, type, title = 401, "unauthorized", "API key missing or not valid"


class PayloadTooLarge(ReelserveError):
    status, type, title = 413, "payload-too-large", "Video too large"


class InvalidVideo(ReelserveError):
    status, type, title = 422, "invalid-video", "Not a readable video"


class NoVideoStream(InvalidVideo):
    type, title = "no-video-stream", "No video stream"


class ZeroDuration(InvalidVideo):
    type, title = "zero-duration", "Video has no duration"


class VideoTooLong(InvalidVideo):
    type, title = "video-too-long", "Video too long"


class UnsupportedCodec(ReelserveError):
    status, type, title = 415, "unsupported-codec", "Unsupported video codec"


class InvalidOptions(ReelserveError):
    status, type, title = 422, "invalid-options", "Invalid analysis options"


class InvalidQuery(ReelserveError):
    """A search query (`GET /v1/search?q=`) that cannot be searched; serve_app.search.query has the syntax."""

    status, type, title = 422, "invalid-query", "Invalid search query"


class JobNotFound(ReelserveError):
    status, type, title = 404, "job-not-found", "No such job"


class ModelNotFound(ReelserveError):
    """A chat request names a model this server does not serve (`GET /v1/models` lists the one it does)."""

    status, type, title = 404, "model-not-found", "No such model"


class VideoNotFound(ReelserveError):
    """`reelserve://videos/<id>` names no processed video (no stored analysis with that content hash)."""

    status, type, title = 404, "video-not-found", "No such processed video"


class AnalysisPending(ReelserveError):
    """A question's video is still being analysed (its job runs on); asking again later finds it."""

    status, type, title = 503, "analysis-pending", "The video is still being analysed"


class NoTranscript(ReelserveError):
    status, type, title = 404, "no-transcript", "The video has no transcript"


class TooLongForSync(ReelserveError):
    """A video with more chunks than a synchronous analysis takes (`flow.sync_max_chunks`); the same
    request submitted as a job (`alternate`) is fine."""

    status, type, title = 422, "too-long-for-sync", "Too long for a synchronous analysis: submit a job"
    alternate = "/v1/jobs"


class JobAssetMissing(ReelserveError):
    """A job's video or thumbnails are not on the store (not kept, or the job never decoded a frame)."""

    status, type, title = 404, "asset-not-found", "The job has no such file"


class JobConflict(ReelserveError):
    status, type, title = 409, "job-conflict", "Job is not in the right state"


class Overloaded(ReelserveError):
    status, type, title = 503, "overloaded", "Service overloaded"


class EngineUnavailable(ReelserveError):
    status, type, title = 503, "engine-unavailable", "Model engine unavailable"


class SpeechModelMissing(ReelserveError):
    """The configured speech model is absent or damaged: a deployment fault, never retried."""

    status, type, title = 500, "speech-model", "Speech model unavailable"


class StoreNotShared(ReelserveError):
    """A replica cannot see media the store holds: the store is node-local (a deployment fault)."""

    status, type, title = 503, "store-not-shared", "The media store is not shared by every node"
