"""DICOM's wildcard matching (``*`` and ``?``, PS3.4 C.2.2.2.4), in time linear in the value.

A pattern translated into one regular expression (``.*`` per star) backtracks: a few dozen
stars make a single comparison take minutes.  Here the pattern is split at its stars into
fixed-length pieces, each found by a regular expression without repetition; the leftmost
occurrence of each middle piece is always the right one to take, so nothing backtracks.
"""

from __future__ import annotations

import re

from server.errors import ErrorCode, OrthancError

#: SQLite's limit on GLOB patterns (SQLITE_MAX_LIKE_PATTERN_LENGTH): longer ones are refused.
MAX_PATTERN_LENGTH = 50_000

_STARS = re.compile(r"\*+")


def has_wildcards(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _piece(text: str, flags: int) -> re.Pattern[str]:
    return re.compile("".join("." if c == "?" else re.escape(c) for c in text), flags | re.DOTALL)


class Wildcard:
    """One pattern; :meth:`matches` tells whether a whole value matches it."""

    def __init__(self, pattern: str, ignore_case: bool = False) -> None:
        pattern = _STARS.sub("*", pattern)
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise OrthancError(ErrorCode.BAD_REQUEST,
                               f"Wildcard constraint longer than {MAX_PATTERN_LENGTH} characters")
        self.pattern = pattern
        flags = re.IGNORECASE if ignore_case else 0
        pieces = pattern.split("*")
        self._whole = _piece(pieces[0], flags) if len(pieces) == 1 else None
        self._head, self._head_length = _piece(pieces[0], flags), len(pieces[0])
        self._tail, self._tail_length = _piece(pieces[-1], flags), len(pieces[-1])
        self._middle = [_piece(piece, flags) for piece in pieces[1:-1] if piece]

    def matches(self, value: str) -> bool:
        if self._whole is not None:
            return self._whole.fullmatch(value) is not None
        start, end = self._head_length, len(value) - self._tail_length
        if end < start or self._head.match(value) is None or self._tail.fullmatch(value, end) is None:
            return False
        for piece in self._middle:
            found = piece.search(value, start, end)
            if found is None:
                return False
            start = found.end()
        return True

    def glob(self) -> str:
        """The same pattern for SQLite's GLOB (whose ``[`` opens a character class)."""
        return self.pattern.replace("[", "[[]")
