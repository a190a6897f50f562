"""The receiver's download area: the instances of one transfer, written piece by piece
into files of their own, outside the storage area, and stored only at commit.

Nothing staged is visible (no instance, no change, no stable event) until
:meth:`DownloadArea.commit`, which first checks the MD5 of every instance, so that a
corrupted or incomplete transfer stores nothing, and then stores each instance through
the one ingest path.  A discarded area, or one left by a stopped server, is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from server.errors import ErrorCode, OrthancError
from server.store import Origin
from server.transfers.buckets import Bucket, InstanceInfo, unpack

if TYPE_CHECKING:
    from server.store import Store

log = logging.getLogger("isengard.transfers")

_READ_PIECE = 1024 * 1024
#: Instances indexed in one transaction at a commit: large enough to spread a
#: transaction's cost, small enough that a batch of large instances stays modest in memory.
COMMIT_BATCH = 32
COMMIT_BATCH_BYTES = 8 * 1024 * 1024


def clear_staging(root: Path) -> None:
    """At start-up: what an earlier run staged is gone with that run (as in the plugin)."""
    if root.exists():
        shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)


class DownloadArea:
    """One transfer's instances, as sparse files of their final size."""

    def __init__(self, root: Path, instances: list[InstanceInfo]) -> None:
        self.folder = root / str(uuid.uuid4())
        self.folder.mkdir(parents=True)
        self.instances = {info.id: info for info in instances}
        if len(self.instances) != len(instances):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "An instance is listed twice")
        self.total_size = sum(info.size for info in instances)
        for info in instances:
            with open(self._path(info.id), "wb") as f:
                f.truncate(info.size)

    def _path(self, instance_id: str) -> Path:
        if instance_id not in self.instances:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown instance in the transfer: {instance_id}")
        return self.folder / hashlib.sha1(instance_id.encode()).hexdigest()

    def write_bucket(self, bucket: Bucket, body: bytes, compression: str) -> None:
        """Put a received bucket's bytes where its chunks say."""
        data = unpack(body, compression)
        if len(data) != bucket.total_size:
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL,
                               f"Bad size of a transferred bucket: {len(data)} != {bucket.total_size}")
        position = 0
        for chunk in bucket.chunks:
            if chunk.offset + chunk.size > self.instances.get(chunk.instance, InstanceInfo("", 0, "")).size:
                raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "A chunk runs past its instance")
            fd = os.open(self._path(chunk.instance), os.O_WRONLY)
            try:
                os.pwrite(fd, data[position:position + chunk.size], chunk.offset)
            finally:
                os.close(fd)
            position += chunk.size

    def _md5(self, instance_id: str) -> str:
        digest = hashlib.md5()
        with open(self._path(instance_id), "rb") as f:
            while piece := f.read(_READ_PIECE):
                digest.update(piece)
        return digest.hexdigest()

    def check(self) -> None:
        """Every instance complete and intact; Orthanc's corrupted-file error otherwise."""
        for info in self.instances.values():
            if self._md5(info.id) != info.md5.lower():
                raise OrthancError(ErrorCode.CORRUPTED_FILE,
                                   f"Bad MD5 sum in a transferred DICOM instance: {info.id}")

    def commit(self, store: Store, threads: int, first: int = 0, count: int | None = None) -> int:
        """Store instances ``first`` to ``first + count`` (all by default) in ID order, in
        batches of :data:`COMMIT_BATCH` (at most :data:`COMMIT_BATCH_BYTES`, or one larger
        instance) handed over to :meth:`Store.ingest_files` (one index
        transaction each, files moved rather than copied), ``threads`` batches at a time;
        how many were stored.  Call :meth:`check` before the first."""
        ordered = sorted(self.instances)[first:None if count is None else first + count]
        batches = self._batches(ordered)

        def ingest(paths: list[Path]) -> None:
            store.ingest_files(paths, Origin(kind="Plugins"))
        if threads <= 1 or len(batches) <= 1:
            for batch in batches:
                ingest(batch)
        else:
            with ThreadPoolExecutor(min(threads, len(batches)), thread_name_prefix="transfers-commit") as pool:
                list(pool.map(ingest, batches))
        return len(ordered)

    def _batches(self, ordered: list[str]) -> list[list[Path]]:
        """``ordered`` cut into batches of :data:`COMMIT_BATCH` and :data:`COMMIT_BATCH_BYTES`."""
        batches: list[list[Path]] = []
        size = 0
        for instance_id in ordered:
            info = self.instances[instance_id]
            if not batches or len(batches[-1]) == COMMIT_BATCH or size + info.size > COMMIT_BATCH_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(self._path(instance_id))
            size += info.size
        return batches

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
