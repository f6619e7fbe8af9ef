"""Message search queries: one parser, two evaluators (SQLite FTS5 and in memory).

A user's query is never handed to FTS5 as syntax. It is parsed here into
*phrases* of *tokens*, and every backend evaluates that parse:

* a **token** is a maximal run of letters, digits and private-use characters
  (Unicode categories ``L*``, ``N*``, ``Co``); everything else (spaces,
  punctuation, symbols and emoji, combining marks) separates tokens. This is
  the default token definition of FTS5's ``unicode61`` tokenizer;
* text between a pair of double quotes is one phrase (its tokens must appear
  consecutively); outside quotes every whitespace-separated word is a phrase
  (so ``e-mail`` is the phrase ``e mail``); an unclosed quote runs to the end;
* a message matches when it contains **every** phrase;
* the **last** phrase matches as a prefix (its last token may be the start of
  a longer token: ``hel`` finds "hello") unless it was closed by a quote or
  the query ends with whitespace;
* matching ignores case, and diacritics on Latin letters (``cafe`` finds
  "Café").

:func:`fts5_expression` renders a parse as an FTS5 expression in which every
phrase is a double-quoted string, so no query can inject FTS5 operators or
SQL. :class:`TextMatcher` evaluates the same parse in Python for the memory
store; it folds case with :meth:`str.lower` where FTS5 uses its own Unicode
6.1 tables, so the two can differ on characters outside Latin scripts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from omega.errors import ConfigurationError

__all__ = [
    "MAX_SEARCH_QUERY_LENGTH",
    "SearchQuery",
    "TextMatcher",
    "fts5_expression",
    "normalize_token",
    "normalized_tokens",
    "parse_search_query",
    "tokenize",
]

MAX_SEARCH_QUERY_LENGTH = 1000
"""Longest search query, in characters."""


def _is_token_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LN" or category == "Co"


def tokenize(text: str) -> list[str]:
    """The tokens of ``text`` (see the module docstring), as written."""
    tokens: list[str] = []
    start = -1
    for index, char in enumerate(text):
        if _is_token_char(char):
            if start < 0:
                start = index
        elif start >= 0:
            tokens.append(text[start:index])
            start = -1
    if start >= 0:
        tokens.append(text[start:])
    return tokens


def _is_latin(char: str) -> bool:
    code = ord(char)
    return code < 0x250 or 0x1E00 <= code <= 0x1EFF


def normalize_token(token: str) -> str:
    """``token`` lowercased, without diacritics on Latin letters."""
    decomposed = unicodedata.normalize("NFD", token.lower())
    kept: list[str] = []
    base_is_latin = False
    for char in decomposed:
        if unicodedata.category(char)[0] == "M":
            if base_is_latin:
                continue
        else:
            base_is_latin = _is_latin(char)
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def normalized_tokens(text: str) -> tuple[str, ...]:
    """The tokens of ``text``, each passed through :func:`normalize_token`."""
    return tuple(normalize_token(token) for token in tokenize(text))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query: phrases that must all occur, the last one maybe as a prefix."""

    phrases: tuple[tuple[str, ...], ...]
    """Each phrase's tokens, as written in the query."""
    prefix: bool
    """Whether the last token of the last phrase matches as a prefix."""


def parse_search_query(query: object) -> SearchQuery:
    """Parse a user's search query; ConfigurationError if it is not a str or too long."""
    if not isinstance(query, str):
        raise ConfigurationError(f"a search query is a str, not {type(query).__name__}")
    if len(query) > MAX_SEARCH_QUERY_LENGTH:
        raise ConfigurationError(f"a search query is at most {MAX_SEARCH_QUERY_LENGTH} characters")
    segments = query.split('"')
    phrases: list[tuple[str, ...]] = []
    prefix = False
    for index, segment in enumerate(segments):
        if index % 2 == 0:  # outside quotes
            for word in segment.split():
                tokens = tokenize(word)
                if tokens:
                    phrases.append(tuple(tokens))
                    prefix = True
        else:
            tokens = tokenize(segment)
            if tokens:
                phrases.append(tuple(tokens))
                prefix = index == len(segments) - 1  # an unclosed quote runs to the end
    if query[-1:].isspace():
        prefix = False
    return SearchQuery(phrases=tuple(phrases), prefix=prefix)


def fts5_expression(query: SearchQuery) -> str:
    """The FTS5 MATCH expression of a parsed, non-empty query."""
    parts = []
    for index, phrase in enumerate(query.phrases):
        quoted = '"' + " ".join(phrase).replace('"', '""') + '"'
        if query.prefix and index == len(query.phrases) - 1:
            quoted += "*"
        parts.append(quoted)
    return " AND ".join(parts)


class TextMatcher:
    """Evaluates a parsed query against texts in Python (the memory store's search)."""

    def __init__(self, query: SearchQuery) -> None:
        self._phrases = [
            tuple(normalize_token(token) for token in phrase) for phrase in query.phrases
        ]
        self._prefix = query.prefix

    def matches(self, text: str) -> bool:
        """Whether ``text`` contains every phrase of the query."""
        return self.matches_tokens(normalized_tokens(text))

    def matches_tokens(self, tokens: Sequence[str]) -> bool:
        """Whether a text whose :func:`normalized_tokens` are ``tokens`` matches."""
        if not self._phrases:
            return False
        last = len(self._phrases) - 1
        return all(
            _contains(tokens, phrase, prefix=self._prefix and index == last)
            for index, phrase in enumerate(self._phrases)
        )


def _contains(tokens: Sequence[str], phrase: tuple[str, ...], *, prefix: bool) -> bool:
    size = len(phrase)
    for start in range(len(tokens) - size + 1):
        window = tuple(tokens[start : start + size])
        if window[:-1] != phrase[:-1]:
            continue
        if window[-1] == phrase[-1] or (prefix and window[-1].startswith(phrase[-1])):
            return True
    return False
