"""The C-MOVEs this server runs as SCU, by (local AET, message ID): the C-STORE sub-operations
that name one of them as their move originator are the instances it received.

Process-wide, as Orthanc's registry of ``DicomRetrieveScuBaseJob``: the C-STORE SCP and the
retrieve jobs meet here without knowing each other.  Message IDs start at 1000 and wrap
before 65535, as Orthanc's, so that they stand out from the other messages.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_FIRST_ID = 1000
_LAST_ID = 0xFFFE


class MoveOriginators:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = _FIRST_ID
        self._receivers: dict[tuple[str, int], Callable[[str], None]] = {}

    @contextmanager
    def register(self, local_aet: str, receiver: Callable[[str], None]) -> Iterator[int]:
        """A message ID for a C-MOVE sent as ``local_aet``; while it runs, ``receiver`` gets the
        Orthanc ID of each instance stored by a sub-operation of that C-MOVE."""
        with self._lock:
            message_id = self._next
            self._next = _FIRST_ID if message_id >= _LAST_ID else message_id + 1
            key = (local_aet.strip(), message_id)
            self._receivers[key] = receiver
        try:
            yield message_id
        finally:
            with self._lock:
                self._receivers.pop(key, None)

    def received(self, originator_aet: str, message_id: int, instance_id: str) -> None:
        """An instance stored by a C-STORE naming (``originator_aet``, ``message_id``)."""
        with self._lock:
            receiver = self._receivers.get((originator_aet.strip(), message_id))
        if receiver is not None:
            receiver(instance_id)


MOVE_ORIGINATORS = MoveOriginators()
