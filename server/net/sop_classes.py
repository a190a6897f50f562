"""``AcceptedSopClasses`` / ``RejectedSopClasses`` (Orthanc 1.12.6): the storage SOP classes
the C-STORE SCP accepts.

Orthanc's rules: no accepted list means every storage class it knows; an accepted entry
with ``*`` or ``?`` selects the known classes it matches, a plain UID is taken as is (a
private class must be named explicitly); the rejected entries are then removed the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.dicom.wildcards import Wildcard, has_wildcards


def _matching(pattern: str, known: Iterable[str]) -> list[str]:
    if not has_wildcards(pattern):
        return [pattern]
    wildcard = Wildcard(pattern)
    return [uid for uid in known if wildcard.matches(uid)]


def accepted_sop_classes(accepted: list[str], rejected: list[str], known: list[str]) -> list[str]:
    """The accepted storage SOP classes, in the order Orthanc adds them, without duplicates."""
    selected = list(known) if not accepted else [uid for entry in accepted for uid in _matching(entry, known)]
    removed = {uid for entry in rejected for uid in _matching(entry, known)}
    return [uid for uid in dict.fromkeys(selected) if uid not in removed]
