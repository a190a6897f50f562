"""The key-value stores and queues of Orthanc 1.12.8+, kept in the index so that they
survive restarts; what Lua (``StoreKeyValue``...) and Python scripts
(``orthanc.StoreKeyValue``, ``orthanc.EnqueueValue``...) reach.

The checks are Orthanc's (``StatelessDatabaseOperations``): a store or queue needs a
non-empty identifier, a reservation a non-zero timeout, and an acknowledgement that
comes after its reservation expired is refused as an unknown resource.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from server.errors import ErrorCode, OrthancError
from server.storage.index import Index

#: How many pairs an iterator reads from the index at once.
PAGE_SIZE = 100


def _named(identifier: str) -> str:
    if not identifier:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
    return identifier


class KeyValueStores:
    """Named key-value stores and FIFO/LIFO queues of values, in the index."""

    def __init__(self, index: Index) -> None:
        self.index = index

    # -- key-value stores ------------------------------------------------------------

    def store(self, store_id: str, key: str, value: bytes) -> None:
        self.index.store_key_value(_named(store_id), key, value)

    def get(self, store_id: str, key: str) -> bytes | None:
        return self.index.get_key_value(_named(store_id), key)

    def delete(self, store_id: str, key: str) -> None:
        self.index.delete_key_value(_named(store_id), key)

    def pairs(self, store_id: str) -> Iterator[tuple[str, bytes]]:
        """Every pair of a store in the keys' order, read page by page (no lock held between pages)."""
        after: str | None = None
        while True:
            page = self.index.list_keys_values(_named(store_id), after, PAGE_SIZE)
            yield from page
            if len(page) < PAGE_SIZE:
                return
            after = page[-1][0]

    # -- queues ----------------------------------------------------------------------

    def enqueue(self, queue_id: str, value: bytes) -> None:
        self.index.enqueue_value(_named(queue_id), value)

    def dequeue(self, queue_id: str, from_back: bool) -> bytes | None:
        return self.index.dequeue_value(_named(queue_id), from_back, _now())

    def reserve(self, queue_id: str, from_back: bool, release_timeout: int) -> tuple[int, bytes] | None:
        """The next value and its ID, hidden from the others for ``release_timeout`` seconds."""
        if release_timeout <= 0:
            raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
        now = _now()
        return self.index.reserve_queue_value(_named(queue_id), from_back, now, now + release_timeout)

    def acknowledge(self, queue_id: str, value_id: int) -> None:
        if not self.index.acknowledge_queue_value(_named(queue_id), value_id, _now()):
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)

    def size(self, queue_id: str) -> int:
        return self.index.queue_size(_named(queue_id))


def _now() -> int:
    """Orthanc's clock for reservations: whole seconds since the epoch (they outlive a restart)."""
    return int(time.time())
