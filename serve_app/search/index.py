"""The search index over processed videos: SQLite FTS5 (BM25 ranking), a cache of the stored results.

The results are the truth: a job's `jobs/<id>/result.json` in the job store (`JobResults`) and an archive
output's `OUT/analyses/<key>.json` (`ArchiveResults`, data_jobs.store's layout). Before each search the
index compares the results there (one listing, and a stat of each job's result) with the ones it holds,
by size and modification time: new or rewritten results are (re)indexed, deleted ones dropped, in a few
transactions. A missing, damaged or older-format index file is rebuilt from scratch. Nothing is written
when nothing changed.

Where the index file lives (`index_path`): next to the results, `<store>/search/index.sqlite`, when the
store is a local folder. An object store (s3://, gs://, ... through pyarrow fs) cannot hold a SQLite
database that is written in place, so there the index is a file in a local cache folder
(`search.cache_dir`), named by the store's URI: each node that searches builds its own copy from the
results, and a lost copy costs one rebuild. On a shared volume (NFS), SQLite's file locks are only as
good as the volume's; a broken lock can corrupt the file, which the next search then rebuilds.

Concurrent searches in one process refresh one at a time (a lock per index); processes sharing the file
serialize their writes through SQLite (`BEGIN IMMEDIATE`, waiting up to `BUSY_TIMEOUT_S`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import pyarrow.fs as pafs

from serve_app.config import Settings, job_store_uri
from serve_app.errors import InvalidQuery
from serve_app.schemas import SearchHit, SearchResults, VideoAnalysis
from serve_app.search.passages import passages
from serve_app.search.query import to_match
from serve_app.store.files import FileStore
from serve_app.store.jobs import JobStore

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "ArchiveResults",
    "JobResults",
    "ResultSet",
    "SearchIndex",
    "StoredResult",
    "archive_index",
    "index_path",
    "online_index",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_LIMIT = 20  # a screenful of hits
MAX_LIMIT = 100  # hits in one answer: each carries a snippet; more is a second, narrower query
SCHEMA_VERSION = 1  # PRAGMA user_version of the index file; another value means: rebuild
BUSY_TIMEOUT_S = 30.0  # how long a process waits for another's write to the index file
BATCH = 32  # results indexed per transaction (readers see progress; a crash loses at most one batch)
INDEX_KEY = "search/index.sqlite"
ARCHIVE_ANALYSES = "analyses"  # data_jobs.store: OUT/analyses/<result-key>.json, one VideoAnalysis each
SNIPPET_TOKENS = 16  # words around the match in a snippet
MARKS = ("«", "»", "…")  # around matched terms, and where a snippet cuts the passage

_SCHEMA = (
    """CREATE TABLE results (
        id INTEGER PRIMARY KEY,
        uri TEXT NOT NULL UNIQUE,   -- the result file's URI: its identity
        stamp TEXT NOT NULL,        -- size and mtime when it was indexed
        origin TEXT NOT NULL,       -- 'job' or 'archive'
        ref TEXT NOT NULL,          -- job id or archive result key
        link TEXT NOT NULL,         -- where to read it (a hit adds #t=start,end)
        video_id TEXT NOT NULL
    )""",
    """CREATE TABLE passages (
        id INTEGER PRIMARY KEY,
        result INTEGER NOT NULL REFERENCES results(id),
        kind TEXT NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        text TEXT NOT NULL
    )""",
    "CREATE INDEX passages_by_result ON passages(result)",
    """CREATE VIRTUAL TABLE passages_fts USING fts5(
        text, content='passages', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER passages_added AFTER INSERT ON passages BEGIN
        INSERT INTO passages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER passages_removed AFTER DELETE ON passages BEGIN
        INSERT INTO passages_fts(passages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_SEARCH = f"""
SELECT r.origin, r.ref, r.link, r.video_id, p.kind, p.start_s, p.end_s,
       snippet(passages_fts, 0, '{MARKS[0]}', '{MARKS[1]}', '{MARKS[2]}', {SNIPPET_TOKENS}),
       bm25(passages_fts) AS score
FROM passages_fts
JOIN passages p ON p.id = passages_fts.rowid
JOIN results r ON r.id = p.result
WHERE passages_fts MATCH ?
ORDER BY score, r.uri, p.start_s
LIMIT ?
"""


@dataclass(frozen=True)
class StoredResult:
    """One processed result as the store lists it."""

    uri: str
    stamp: str
    origin: Literal["job", "archive"]
    ref: str
    link: str


class ResultSet(Protocol):
    """A place processed results are kept: it lists them (cheaply) and loads one."""

    def scan(self) -> list[StoredResult]: ...

    def load(self, result: StoredResult) -> VideoAnalysis | None:
        """The analysis, or None when it was deleted since `scan`."""
        ...


def _stamp(info: pafs.FileInfo) -> str:
    return f"{info.size}:{info.mtime_ns}"  # mtime is None on a few fsspec backends: size alone then


def _mtime(stamp: str) -> int:
    mtime = stamp.partition(":")[2]
    return int(mtime) if mtime.isdigit() else 0


class JobResults:
    """The results of the finished jobs of a job store (`JobStore.save_result`)."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.files = store.files

    def scan(self) -> list[StoredResult]:
        ids = self.store.list_ids()
        infos = self.files.fs.get_file_info([self.files.path(self.store.result_key(i)) for i in ids])
        return [
            StoredResult(
                self.files.uri_of(self.store.result_key(job_id)),
                _stamp(info),
                "job",
                job_id,
                f"/v1/jobs/{job_id}/result",
            )
            for job_id, info in zip(ids, infos, strict=True)
            if info.type == pafs.FileType.File
        ]

    def load(self, result: StoredResult) -> VideoAnalysis | None:
        try:
            return self.store.load_result(result.ref)
        except FileNotFoundError:  # deleted (retention) between the check and the read
            return None


class ArchiveResults:
    """The analyses an archive job wrote to its output folder or URI (data_jobs.store.ArchiveStore)."""

    def __init__(self, uri: str) -> None:
        self.files = FileStore(uri)

    def scan(self) -> list[StoredResult]:
        found = self.files.fs.get_file_info(pafs.FileSelector(self.files.path(ARCHIVE_ANALYSES), allow_not_found=True))
        results = []
        for info in sorted(found, key=lambda f: f.base_name):
            name = info.base_name
            if info.type != pafs.FileType.File or ".tmp-" in name or not name.endswith(".json"):
                continue
            uri = self.files.uri_of(f"{ARCHIVE_ANALYSES}/{name}")
            results.append(StoredResult(uri, _stamp(info), "archive", name.removesuffix(".json"), uri))
        return results

    def load(self, result: StoredResult) -> VideoAnalysis | None:
        try:
            return VideoAnalysis.model_validate_json(self.files.read_bytes(f"{ARCHIVE_ANALYSES}/{result.ref}.json"))
        except FileNotFoundError:  # a redo that failed deleted it
            return None


def index_path(files: FileStore, cache_dir: Path) -> Path:
    """Where the index of the results in `files` lives: in the store when it is a local folder, else in
    `cache_dir` (SQLite needs a local file), named by the store's URI."""
    if files.local:
        return Path(files.path(INDEX_KEY))
    return cache_dir / f"{hashlib.sha256(files.uri.encode()).hexdigest()[:32]}.sqlite"


class SearchIndex:
    """An FTS5 index at `path` over the results of `sources`, refreshed from them before each search."""

    def __init__(self, path: Path, sources: Sequence[ResultSet]) -> None:
        self.path = path
        self.sources = list(sources)
        self._lock = threading.Lock()
        self._listed: dict[str, tuple[ResultSet, StoredResult]] = {}

    # -- the file ------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection to a usable index file: created when missing, rebuilt when damaged or outdated."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                self._ensure_schema(db)
            except sqlite3.DatabaseError as exc:
                db.close()
                if attempt or isinstance(exc, sqlite3.OperationalError):  # e.g. locked: not damage
                    raise
                logger.warning("search index %s is unusable (%s): rebuilding it from the results", self.path, exc)
                self.path.unlink(missing_ok=True)
                continue
            try:
                yield db
            finally:
                db.close()
            return

    @staticmethod
    def _ensure_schema(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            db.execute("SELECT count(*) FROM results").fetchone()  # a damaged file fails here
            return
        if version != 0:
            raise sqlite3.DatabaseError(f"index format {version}, this code writes {SCHEMA_VERSION}")
        with _writing(db):
            if db.execute("PRAGMA user_version").fetchone()[0] == 0:  # another process may have just made it
                for statement in _SCHEMA:
                    db.execute(statement)

    # -- keeping it current --------------------------------------------------------
    def refresh(self) -> int:
        """Bring the index up to date with the results: how many results were (re)indexed or dropped."""
        listed: dict[str, tuple[ResultSet, StoredResult]] = {}
        for source in self.sources:
            for result in source.scan():
                listed[result.uri] = (source, result)
        self._listed = listed  # what the store held at this refresh (`analyses_of` loads from it)
        with self._lock, self._db() as db:
            held = dict(db.execute("SELECT uri, stamp FROM results"))
            gone = [uri for uri in held if uri not in listed]
            todo = [(s, r) for uri, (s, r) in listed.items() if held.get(uri) != r.stamp]
            if gone:
                with _writing(db):
                    for uri in gone:
                        _drop(db, uri)
            for batch in _batched(todo, BATCH):
                loaded = [(result, source.load(result)) for source, result in batch]  # store reads: no transaction open
                with _writing(db):
                    for result, analysis in loaded:
                        _drop(db, result.uri)
                        if analysis is not None:
                            _add(db, result, analysis)
        if gone or todo:
            logger.info("search index %s: %d result(s) indexed, %d dropped", self.path, len(todo), len(gone))
        return len(gone) + len(todo)

    def analyses_of(self, video_id: str) -> list[VideoAnalysis]:
        """Every stored analysis of the video with this content hash (`VideoInfo.video_id`), newest first:
        the cache a question about an already processed video reads instead of analysing it again."""
        self.refresh()
        with self._db() as db:
            uris = [uri for (uri,) in db.execute("SELECT uri FROM results WHERE video_id = ?", (video_id,))]
        found = []
        for source, result in (self._listed[uri] for uri in uris if uri in self._listed):
            analysis = source.load(result)
            if analysis is not None:
                found.append((result.stamp, analysis))
        found.sort(key=lambda item: _mtime(item[0]), reverse=True)
        return [analysis for _, analysis in found]

    # -- searching -----------------------------------------------------------------
    def search(self, query: str, limit: int = DEFAULT_LIMIT) -> SearchResults:
        """The best `limit` passages for `query` (serve_app.search.query's syntax), best first.

        Raises `InvalidQuery` for a query with nothing to search (before any store access)."""
        match = to_match(query)
        limit = max(1, min(limit, MAX_LIMIT))
        try:
            return self._search(query, match, limit)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # locked, busy, ...: not damage
                raise
            logger.warning("search index %s is damaged (%s): rebuilding it from the results", self.path, exc)
            self.path.unlink(missing_ok=True)
            return self._search(query, match, limit)

    def _search(self, query: str, match: str, limit: int) -> SearchResults:
        self.refresh()
        with self._db() as db:
            try:
                rows = db.execute(_SEARCH, (match, limit)).fetchall()
            except sqlite3.OperationalError as exc:  # to_match's output always parses; if not, say so as a 422
                if not str(exc).startswith("fts5:"):
                    raise
                raise InvalidQuery(f"the query could not be searched ({exc})") from None
            indexed = db.execute("SELECT count(*) FROM results").fetchone()[0]
        hits = [
            SearchHit(
                video_id=video_id,
                start_s=start,
                end_s=end,
                kind=kind,
                snippet=snippet,
                score=-score,  # FTS5's bm25() is lower for better matches
                source=origin,
                job_id=ref if origin == "job" else None,
                result_key=ref if origin == "archive" else None,
                link=f"{link}#t={start:g},{end:g}",
            )
            for origin, ref, link, video_id, kind, start, end, snippet, score in rows
        ]
        return SearchResults(query=query, match=match, results_indexed=indexed, hits=hits)


@contextlib.contextmanager
def _writing(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; other processes wait for it (and it for them) up to the busy timeout."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _batched(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):  # itertools.batched is Python 3.12
        yield items[start : start + size]


def _drop(db: sqlite3.Connection, uri: str) -> None:
    row = db.execute("SELECT id FROM results WHERE uri = ?", (uri,)).fetchone()
    if row is not None:
        db.execute("DELETE FROM passages WHERE result = ?", row)
        db.execute("DELETE FROM results WHERE id = ?", row)


def _add(db: sqlite3.Connection, result: StoredResult, analysis: VideoAnalysis) -> None:
    cursor = db.execute(
        "INSERT INTO results (uri, stamp, origin, ref, link, video_id) VALUES (?, ?, ?, ?, ?, ?)",
        (result.uri, result.stamp, result.origin, result.ref, result.link, analysis.video_id),
    )
    db.executemany(
        "INSERT INTO passages (result, kind, start_s, end_s, text) VALUES (?, ?, ?, ?, ?)",
        [(cursor.lastrowid, p.kind, p.start_s, p.end_s, p.text) for p in passages(analysis)],
    )


def online_index(settings: Settings) -> SearchIndex:
    """The index `GET /v1/search` uses: the job store's results and the archive outputs in
    `search.archive_uris`, kept next to the job store (or in `search.cache_dir` for an object store).
    One per process and configuration, so one lock serializes the refreshes of concurrent searches."""
    store_uri = job_store_uri(settings)
    key = (store_uri, tuple(settings.search.archive_uris), str(settings.search.cache_dir))
    with _OPEN_LOCK:
        if key not in _OPEN:
            jobs = JobStore(store_uri)
            sources = [JobResults(jobs), *(ArchiveResults(uri) for uri in settings.search.archive_uris)]
            _OPEN[key] = SearchIndex(index_path(jobs.files, settings.search.cache_dir), sources)
        return _OPEN[key]


def archive_index(uri: str, cache_dir: Path) -> SearchIndex:
    """The index of one archive output folder or URI (`OUT/search/index.sqlite`, or in `cache_dir` for an
    object store): what the archive job builds at its end and `reelserve search --index OUT` searches."""
    source = ArchiveResults(uri)
    return SearchIndex(index_path(source.files, cache_dir), [source])


_OPEN: dict[tuple[str, tuple[str, ...], str], SearchIndex] = {}
_OPEN_LOCK = threading.Lock()
