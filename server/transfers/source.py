"""The sending side: which instances a request names, their sizes and MD5s (from the
index, no file read), and the bytes of buckets (``/transfers/chunks``, push buckets).

Files are read whole through the store (as any other reader, compressed storage and
scripted storage areas included) and kept in a memory cache of ``CacheSize``: the
chunks of one large instance, asked by several parallel requests, read it once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level, parse_level
from server.errors import ErrorCode, OrthancError
from server.storage.index import ATTACHMENT_DICOM
from server.transfers.buckets import Bucket, InstanceInfo, bad_format

if TYPE_CHECKING:
    from server.storage.index import Index
    from server.store import Store


class InstanceCache:
    """DICOM files by instance ID, least recently used dropped past ``capacity`` bytes."""

    def __init__(self, store: Store, capacity: int) -> None:
        self.store = store
        self.capacity = capacity
        self._files: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def read(self, instance_id: str) -> bytes:
        with self._lock:
            data = self._files.get(instance_id)
            if data is not None:
                self._files.move_to_end(instance_id)
                return data
        instance = self.store.index.lookup(instance_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown instance: {instance_id}")
        data = self.store.read_dicom(instance)
        with self._lock:
            if instance_id not in self._files and len(data) <= self.capacity:
                self._files[instance_id] = data
                self._size += len(data)
                while self._size > self.capacity:
                    _, dropped = self._files.popitem(last=False)
                    self._size -= len(dropped)
        return data


class TransferSource:
    """Lookups and chunks of the local instances, for the transfers routes and jobs."""

    def __init__(self, index: Index, store: Store, cache_size: int) -> None:
        self.index = index
        self.cache = InstanceCache(store, cache_size)

    def info(self, instance_id: str) -> InstanceInfo:
        instance = self.index.lookup(instance_id, Level.INSTANCE)
        attachment = None if instance is None else self.index.attachment(instance.internal_id, ATTACHMENT_DICOM)
        if attachment is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown instance: {instance_id}")
        return InstanceInfo(instance_id, attachment.uncompressed_size, attachment.uncompressed_md5)

    def resolve(self, resources: Any) -> list[InstanceInfo]:
        """The instances below a ``Resources`` list (``[{"Level", "ID"}]``), each once."""
        if not isinstance(resources, list):
            raise bad_format()
        found: dict[str, InstanceInfo] = {}
        for item in resources:
            if not isinstance(item, dict) or not isinstance(item.get("Level"), str) \
                    or not isinstance(item.get("ID"), str):
                raise bad_format()
            level = parse_level(item["Level"])
            resource = self.index.lookup(item["ID"], level)
            if resource is None:
                raise OrthancError(ErrorCode.UNKNOWN_RESOURCE,
                                   f"Missing {level.name.lower()}: {item['ID']}")
            for instance in self.index.descendants(resource.internal_id, Level.INSTANCE):
                if instance.public_id not in found:
                    found[instance.public_id] = self.info(instance.public_id)
        return sorted(found.values(), key=lambda i: i.id)

    def bucket_bytes(self, bucket: Bucket) -> bytes:
        """The uncompressed bytes of a bucket, chunk after chunk."""
        return b"".join(self.cache.read(c.instance)[c.offset:c.offset + c.size] for c in bucket.chunks)

    def chunks(self, instances: list[str], offset: int, size: int) -> bytes:
        """``/transfers/chunks``: ``size`` bytes (0: all) from ``offset`` into the
        concatenation of the instances' files."""
        parts: list[bytes] = []
        total = 0
        for instance_id in instances:
            if size and total >= size:
                break
            data = self.cache.read(instance_id)
            if offset >= len(data):
                offset -= len(data)
                continue
            end = len(data) if not size else min(len(data), offset + size - total)
            parts.append(data[offset:end])
            total += end - offset
            offset = 0
        return b"".join(parts)
