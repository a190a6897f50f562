"""The in-memory cache of the image routes: parsed stored files and their decoded frames.

Orthanc 1.10.1 keeps recently used DICOM files parsed in memory (its "DICOM cache") and its
GDCM plugin keeps the last decoded image, so that a viewer asking for a frame's preview,
then its rendering at another windowing, then the next size, does not read, parse and
decode the file each time. This is the same idea: entries are keyed by the UUID of the
stored attachment, whose content never changes (a new or modified instance gets a new
UUID), so an entry never needs invalidating; a deleted file's entries just age out.

The budget is Orthanc's ``MaximumStorageCacheSize`` (MB, 0 disables the cache), counted in
the bytes of the stored files and of the decoded pixels. Cached values are shared between
threads: the decoded pixels are made read-only, and the datasets are only read (pydicom's
lazy conversion of an element stores an equal value whichever thread does it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable


class DecodedCache:
    """A thread-safe LRU of values with a size each, evicting beyond a byte budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._size = 0

    def get(self, key: Hashable) -> object | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: object, size: int, budget: int) -> None:
        """Keep ``value`` (``size`` bytes) unless it would take more than half the budget,
        then evict the least recently used entries beyond ``budget`` bytes."""
        if size > budget // 2:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._size -= previous[1]
            self._entries[key] = (value, size)
            self._size += size
            while self._size > budget and self._entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._size -= evicted

    @property
    def size(self) -> int:
        """The bytes held now."""
        return self._size
