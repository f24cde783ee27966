"""User text to FTS5: the documented syntax, and hostile input that must never become FTS5 syntax."""

from __future__ import annotations

import sqlite3

import pytest

from serve_app.errors import InvalidQuery
from serve_app.search.query import MAX_QUERY_CHARS, MAX_TERMS, to_match


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("quarterly budget", '"quarterly" OR "budget"'),
        ('"quarterly budget"', '"quarterly budget"'),
        ("budg*", '"budg"*'),
        ('"quarterly budget" report*', '"quarterly budget" OR "report"*'),
        ("launch OR release", '"launch" OR "release"'),  # OR is the default
        ("launch or release", '"launch" OR "or" OR "release"'),  # a lower-case or is a word
        ('"unclosed phrase', '"unclosed phrase"'),
        ("  spaced \t\n out  ", '"spaced" OR "out"'),
    ],
)
def test_the_documented_syntax(query: str, match: str) -> None:
    assert to_match(query) == match


HOSTILE = [
    'budget" OR "x',
    "NEAR(budget report, 2)",
    "budget NOT report",
    "budget AND",
    "text:budget",
    "{text}:budget",
    "^budget",
    "-budget +report",
    "(budget",
    "budget)",
    '""budget""',
    "*budget",
    "bud**",
    "'; DROP TABLE results; --",
    "budget\x00report",
    "ünïcödé 予算",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_operators_in_user_text_are_text(query: str) -> None:
    match = to_match(query)
    # Whatever came in, the expression parses and only searches the one column.
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, other)")
    db.execute("INSERT INTO t VALUES ('budget report', 'secret budget')")
    db.execute("SELECT * FROM t WHERE t MATCH ?", (match,)).fetchall()
    for token in ("NEAR(", " NOT ", " AND ", "^", "{", ":"):
        outside = match.replace('""', "").split('"')[::2]  # the parts outside FTS5 strings
        assert not any(token.strip() in part for part in outside), (query, match)
    db.close()


@pytest.mark.parametrize("query", ["", "   ", "()", "- + * ^", '"', '""', "OR", "🙂"])
def test_nothing_to_search_is_refused(query: str) -> None:
    with pytest.raises(InvalidQuery, match="nothing to search"):
        to_match(query)


def test_too_long_and_too_many_terms_are_refused() -> None:
    with pytest.raises(InvalidQuery, match=f"at most {MAX_QUERY_CHARS}"):
        to_match("a" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(InvalidQuery, match=f"at most {MAX_TERMS}"):
        to_match(" ".join(["w"] * (MAX_TERMS + 1)))
    assert InvalidQuery.status == 422
