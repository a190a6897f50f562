"""``RegisterStorageArea``: the script decides where attachments go.

The script's callbacks are orthanc-python's: ``create(uuid, content_type, data)``,
``read(uuid, content_type) -> bytes`` and ``remove(uuid, content_type)``.  Only
the final place of a file changes: a new file is still staged in the local
``tmp/`` journal and handed to ``create`` once the index committed it, so an
interrupted ingest is recovered or rolled back as before.  Files that are in the
local folder (stored before the script area, or recovered at start-up before the
script was loaded) stay readable and removable there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from server.errors import ErrorCode, OrthancError
from server.scripting.python_enums import CODES, ENUMERATIONS
from server.storage.area import StorageArea

log = logging.getLogger("isengard.plugins.python")

#: Every file Isengard stores in the area is a DICOM file.
CONTENT_DICOM = ENUMERATIONS["ContentType"][1]["DICOM"]


class ScriptStorageArea(StorageArea):
    """A :class:`StorageArea` whose published files live where the script puts them."""

    def __init__(self, local: StorageArea, create: Callable[..., Any], read: Callable[..., Any],
                 remove: Callable[..., Any]) -> None:
        super().__init__(local.root, local.compress, local.metrics, local.node)
        self._create = create
        self._read = read
        self._remove = remove

    def _call(self, what: str, callback: Callable[..., Any], *arguments: Any) -> Any:
        try:
            return callback(*arguments)
        except Exception as e:
            log.error("Error in the Python storage area (%s) for %s: %s", what, arguments[0], e)
            raise OrthancError(CODES["STORAGE_AREA_PLUGIN"], f"Python storage area, {what}: {e}") from None

    def publish(self, file_uuid: str) -> None:
        staged = self.tmp / file_uuid
        with self.metrics.timer("orthanc_storage_create_duration_ms"):
            self._call("create", self._create, file_uuid, CONTENT_DICOM, staged.read_bytes())
        staged.unlink(missing_ok=True)

    def _read_raw(self, file_uuid: str) -> bytes:
        if (self.tmp / file_uuid).exists() or self.path(file_uuid).exists():
            return super()._read_raw(file_uuid)
        data = self._call("read", self._read, file_uuid, CONTENT_DICOM)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise OrthancError(ErrorCode.INEXISTENT_FILE, "The Python storage area did not read bytes")
        return bytes(data)

    def _read_raw_range(self, file_uuid: str, offset: int, size: int) -> bytes:
        """The script's storage reads whole files: the range is cut from one."""
        return self._read_raw(file_uuid)[offset:offset + size]

    def remove(self, file_uuid: str) -> None:
        if self.path(file_uuid).exists():
            super().remove(file_uuid)
            return
        try:
            with self.metrics.timer("orthanc_storage_remove_duration_ms"):
                self._call("remove", self._remove, file_uuid, CONTENT_DICOM)
        except OrthancError:
            pass  # logged; the index no longer names the file, as when Orthanc cannot remove one
