"""What a user types into a search, turned into an SQLite FTS5 query that only ever means that.

The syntax (`QUERY_HELP`):

    quarterly budget       passages with any of the words, best first: BM25 ranks passages with more of
                           them, and with rarer ones, higher (as Lucene's and Elasticsearch's default
                           `match` query does; a misheard word in a transcript does not hide the rest)
    "quarterly budget"     the words next to each other, in this order
    budg*                  any word starting with `budg`

Words match case- and accent-insensitively, on their English stem (`budgets` finds `budget`). `OR` in
capitals is accepted and changes nothing (it is the default). Nothing else is an operator: FTS5's own
syntax (`AND`, `NOT`, `NEAR`, `col:`, `^`, parentheses, `+`, `-`) is text, so a query can never fail to
parse or reach a column it does not mean. Each term becomes an FTS5 string (double quotes doubled); a term
with no letter or digit in it (`-`, `()`) is dropped.
"""

from __future__ import annotations

import re

from serve_app.errors import InvalidQuery

__all__ = ["MAX_QUERY_CHARS", "MAX_TERMS", "QUERY_HELP", "to_match"]

MAX_QUERY_CHARS = 256  # a search, not a document: longer input is a mistake or an attack on the matcher
MAX_TERMS = 32  # every term is a posting-list walk; a query of more finds nothing a shorter one would not
QUERY_HELP = (
    'Words (any may match; passages with more of them, and rarer ones, rank first), "an exact phrase", and '
    "prefix* (words starting with prefix); case, accents and word endings are ignored; nothing else is an "
    "operator."
)

_TERM = re.compile(r'"([^"]*)"?|(\S+)')  # a phrase (an unclosed quote runs to the end), or a word
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _searchable(text: str) -> bool:
    """Whether FTS5's unicode61 tokenizer finds a token in `text` (letters and digits are token characters)."""
    return any(ch.isalnum() for ch in text)


def to_match(query: str) -> str:
    """The FTS5 MATCH expression for `query` in the syntax above; `InvalidQuery` when there is nothing to search."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"the query has {len(query)} characters; at most {MAX_QUERY_CHARS} are accepted")
    terms: list[str] = []  # FTS5 strings
    for found in _TERM.finditer(_CONTROL.sub(" ", query)):
        phrase, word = found.group(1), found.group(2)
        if word == "OR":
            continue  # the default
        text, prefix = (phrase, False) if phrase is not None else (word.rstrip("*"), word.endswith("*"))
        if _searchable(text):
            terms.append(_quoted(text) + ("*" if prefix else ""))
    if not terms:
        raise InvalidQuery("nothing to search for: give at least one word with a letter or digit in it")
    if len(terms) > MAX_TERMS:
        raise InvalidQuery(f"the query has {len(terms)} terms; at most {MAX_TERMS} are accepted")
    return " OR ".join(terms)
