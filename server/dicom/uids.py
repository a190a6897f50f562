"""The one generator of new identifiers, as Orthanc makes them.

Orthanc (``FromDcmtkBridge::GenerateUniqueIdentifier``) gives a patient a UUID (PatientID is
an LO: 64 characters, a UUID fits) and studies, series and instances a DICOM UID made by
dcmtk's ``dcmGenerateUniqueIdentifier`` under dcmtk's per-level roots: the root, then the
host id, the process id, the time in seconds and a counter, e.g.
``1.2.276.0.7230010.3.1.4.8323328.29626.1796533376.454039``.  Tools that recognise Orthanc's
UIDs by their root (or the level by its ``.1.2``/``.1.3``/``.1.4``) see the same here.

Storage-commitment transactions use Orthanc's other form, ``2.25.`` and a UUID as a number
(``Toolbox::GenerateDicomPrivateUniqueIdentifier``).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import random
import threading
import time
import uuid

from server.dicom.main_tags import Level

#: dcmtk's ``SITE_UID_ROOT``: the root of every UID Orthanc generates.
SITE_UID_ROOT = "1.2.276.0.7230010.3"
#: dcmtk's ``SITE_STUDY_UID_ROOT``, ``SITE_SERIES_UID_ROOT``, ``SITE_INSTANCE_UID_ROOT``.
LEVEL_ROOTS = {Level.STUDY: SITE_UID_ROOT + ".1.2", Level.SERIES: SITE_UID_ROOT + ".1.3",
               Level.INSTANCE: SITE_UID_ROOT + ".1.4"}
#: The longest UID DICOM allows (UI value representation).
MAX_LENGTH = 64

_lock = threading.Lock()
#: dcmtk's process-wide counter; a random start keeps UIDs of two runs apart within a second.
_counter = itertools.count(random.randrange(1, 1 << 20))


def _host_id() -> int:
    """``gethostid()`` as dcmtk reads it (0 when the C library does not have it).

    Found among the symbols the process has loaded (the C library is one): looking the
    library up by name (``ctypes.util.find_library``) runs ``ldconfig``, ~2.5 ms of each start-up."""
    try:
        libc = ctypes.CDLL(None)
        libc.gethostid.restype = ctypes.c_long
        return int(libc.gethostid()) & 0xFFFFFFFF
    except (OSError, AttributeError):
        return 0


_HOST_ID = _host_id()


def dicom_uid(root: str) -> str:
    """A new UID under ``root``, in dcmtk's form: root.hostid.pid.time.counter."""
    with _lock:
        count = next(_counter)
    uid = f"{root}.{_HOST_ID}.{os.getpid()}.{int(time.time())}.{count}"
    return uid[:MAX_LENGTH]


def generate(level: Level) -> str:
    """A new identifier for ``level``: a UUID for a patient, a UID under the level's root otherwise."""
    if level is Level.PATIENT:
        return str(uuid.uuid4())
    return dicom_uid(LEVEL_ROOTS[level])


def private_uid() -> str:
    """``2.25.`` and a random UUID as a decimal number (Orthanc's storage-commitment transactions)."""
    return f"2.25.{uuid.uuid4().int}"
