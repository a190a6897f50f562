"""Orthanc's public identifiers: SHA-1 of the DICOM identifiers, in five groups of eight."""

from __future__ import annotations

import hashlib


def _hash(text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


def patient_id(patient: str) -> str:
    return _hash(patient)


def study_id(patient: str, study_uid: str) -> str:
    return _hash(f"{patient}|{study_uid}")


def series_id(patient: str, study_uid: str, series_uid: str) -> str:
    return _hash(f"{patient}|{study_uid}|{series_uid}")


def instance_id(patient: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return _hash(f"{patient}|{study_uid}|{series_uid}|{sop_uid}")


def is_orthanc_id(text: str) -> bool:
    """True when ``text`` has the shape of an Orthanc identifier (``8-8-8-8-8`` hex)."""
    parts = text.split("-")
    return len(parts) == 5 and all(
        len(p) == 8 and all(c in "0123456789abcdef" for c in p) for p in parts)
