"""Timestamps in the formats Orthanc puts in its answers."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    """``YYYYMMDDTHHMMSS`` in UTC, as in ``LastUpdate`` and ``/changes`` dates."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def local_now_iso() -> str:
    return datetime.now().strftime("%Y%m%dT%H%M%S")

