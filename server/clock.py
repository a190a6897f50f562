"""Timestamps in the formats Orthanc puts in its answers.

Each has a one-second resolution and is made once a second at most: every ingest and every
answer asks for one, and formatting a date costs more than the rest of the lookup (~2 us).
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime

#: (second since the epoch, its text) of the last call of each format; a tuple, replaced at
#: once, so that threads reading it never see one half of a change.
_utc_iso: tuple[int, str] = (-1, "")
_http_date: tuple[int, str] = (-1, "")


def utc_now_iso() -> str:
    """``YYYYMMDDTHHMMSS`` in UTC, as in ``LastUpdate`` and ``/changes`` dates."""
    global _utc_iso
    now = int(time.time())
    second, text = _utc_iso
    if second != now:
        text = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S")
        _utc_iso = (now, text)
    return text


def local_now_iso() -> str:
    return datetime.now().strftime("%Y%m%dT%H%M%S")


def http_date() -> str:
    """The ``Date`` header of an answer (``Sun, 06 Nov 1994 08:49:37 GMT``), as Tornado writes it."""
    global _http_date
    now = int(time.time())
    second, text = _http_date
    if second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _http_date = (now, text)
    return text
