"""The one generator of new identifiers: Orthanc's forms, roots and uniqueness, in the
process and through ``/tools/generate-uid`` (compared with the real Orthanc's answers)."""

from __future__ import annotations

import re
import threading
import uuid

from conftest import Isengard
from server.dicom import uids
from server.dicom.main_tags import Level

#: dcmtk's form: root, host id, process id, time in seconds, counter.
DCMTK_FORM = r"\.\d+\.\d+\.\d+\.\d+"
ROOTS = {Level.STUDY: "1.2.276.0.7230010.3.1.2", Level.SERIES: "1.2.276.0.7230010.3.1.3",
         Level.INSTANCE: "1.2.276.0.7230010.3.1.4"}


def _valid_uid(uid: str) -> bool:
    """A DICOM UI value: at most 64 characters, numeric components without leading zeros."""
    return len(uid) <= 64 and all(re.fullmatch(r"0|[1-9]\d*", part) for part in uid.split("."))


def test_levels_have_orthanc_roots() -> None:
    for level, root in ROOTS.items():
        uid = uids.generate(level)
        assert re.fullmatch(re.escape(root) + DCMTK_FORM, uid), uid
        assert _valid_uid(uid)
    patient = uids.generate(Level.PATIENT)
    assert str(uuid.UUID(patient)) == patient


def test_unique_across_threads() -> None:
    found: list[str] = []

    def work() -> None:
        found.extend(uids.generate(Level.INSTANCE) for _ in range(2000))
    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == len(found) == 8000


def test_private_uid() -> None:
    uid = uids.private_uid()
    assert uid.startswith("2.25.") and _valid_uid(uid)
    assert uid != uids.private_uid()


def test_generate_uid_route(isengard: Isengard) -> None:
    """``/tools/generate-uid`` answers per-level roots, as Orthanc 1.10.1 does."""
    for name, level in (("study", Level.STUDY), ("Series", Level.SERIES), ("instance", Level.INSTANCE)):
        uid = isengard.get(f"/tools/generate-uid?level={name}").text
        assert re.fullmatch(re.escape(ROOTS[level]) + DCMTK_FORM, uid), uid
    patient = isengard.get("/tools/generate-uid?level=patient").text
    assert str(uuid.UUID(patient)) == patient
    assert isengard.get("/tools/generate-uid?level=nope").status_code == 400
