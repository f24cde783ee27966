"""Search across processed videos: SQLite FTS5 (BM25) over their timelines, screen text, chunk answers and
transcripts, a cache rebuilt from the stored results on demand (no Ray). `query` turns user text into an
FTS5 query, `passages` says what of a result is searchable, `index` keeps the index and searches it."""

from serve_app.search.index import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ArchiveResults,
    JobResults,
    SearchIndex,
    archive_index,
    online_index,
)
from serve_app.search.passages import Passage, passages
from serve_app.search.query import QUERY_HELP, to_match

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "QUERY_HELP",
    "ArchiveResults",
    "JobResults",
    "Passage",
    "SearchIndex",
    "archive_index",
    "online_index",
    "passages",
    "to_match",
]
