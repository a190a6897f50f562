"""The storage area: one file per attachment, in Orthanc's two-level folder layout.

A new file is first written under ``tmp/`` inside the area and only moved to its
final place once the index has committed the row that names it.  The ``tmp/``
folder is therefore the journal of interrupted ingests: at start-up, files whose
UUID the index knows are moved into place, the others are deleted.

Deletes are journaled the other way round: the UUIDs of the files to remove are
written under ``removals/`` (synced) *before* the index transaction that forgets
them commits, and the journal is dropped once the files are gone.  At start-up
the journals left by a crash are replayed: a file is removed only if the index
does not know its UUID (the transaction may not have committed), so no file of
a live instance is ever removed and none of a deleted one is left behind.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from server.errors import ErrorCode, OrthancError
from server.loop_guard import off_loop
from server.metrics import Metrics

#: Orthanc's CompressionType values, as stored in the index.
COMPRESSION_NONE = 1
COMPRESSION_ZLIB = 2

log = logging.getLogger("isengard.storage")

#: Pieces in which a file is hashed, compressed and written.
PIECE = 1024 * 1024


@dataclass(frozen=True)
class Staged:
    """A file written under ``tmp/``: what the index records of it."""

    uuid: str
    size: int
    md5: str
    uncompressed_size: int
    uncompressed_md5: str
    compression: int


def pieces(data: bytes | mmap.mmap) -> Iterator[memoryview]:
    """``data`` piece by piece; the pages of a memory-mapped upload are let go after each
    piece, so a 1 GB upload goes through without ever being resident as a whole."""
    view = memoryview(data)
    for start in range(0, len(view), PIECE):
        yield view[start:start + PIECE]
        if isinstance(data, mmap.mmap):
            data.madvise(mmap.MADV_DONTNEED, start, min(PIECE, len(view) - start))


class StorageArea:
    """Files named by UUID under ``root/ab/cd/abcd...``, optionally zlib-compressed."""

    def __init__(self, root: Path, compress: bool = False, metrics: Metrics | None = None) -> None:
        self.root = root
        self.compress = compress
        self.metrics = metrics or Metrics(enabled=False)
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.removals = root / "removals"
        self.removals.mkdir(exist_ok=True)
        #: Plain strings for the per-file paths (``pathlib`` costs ~10 us a join).
        self._root, self._tmp = str(root), str(self.tmp)
        self._folders: set[str] = set()

    def path(self, file_uuid: str) -> Path:
        return self.root / file_uuid[0:2] / file_uuid[2:4] / file_uuid

    @off_loop
    def stage(self, data: bytes | mmap.mmap, compress: bool | None = None) -> Staged:
        """Write ``data`` under ``tmp/``, piece by piece (see :func:`pieces`).

        ``compress`` overrides ``StorageCompression`` (``.../compress`` and ``.../uncompress``).
        Orthanc's zlib format is its own: the uncompressed size as a 64-bit
        little-endian prefix, followed by the zlib stream.
        """
        file_uuid = str(uuid.uuid4())
        compressor = zlib.compressobj(6) if (self.compress if compress is None else compress) else None
        tmp_path = os.path.join(self._tmp, file_uuid)
        plain_md5 = hashlib.md5()
        # Stored as is, the file's MD5 is the data's: hashing once saves ~45 us per 34 KB.
        stored_md5, size = (hashlib.md5() if compressor is not None else None), 0
        try:
            with self.metrics.timer("orthanc_storage_create_duration_ms"), open(tmp_path, "wb") as f:
                def write(chunk: bytes | memoryview) -> None:
                    nonlocal size
                    f.write(chunk)
                    if stored_md5 is not None:
                        stored_md5.update(chunk)
                    size += len(chunk)
                if compressor is not None:
                    write(len(data).to_bytes(8, "little"))
                for piece in pieces(data):
                    plain_md5.update(piece)
                    write(compressor.compress(piece) if compressor is not None else piece)
                if compressor is not None:
                    write(compressor.flush())
        except OSError as e:
            Path(tmp_path).unlink(missing_ok=True)
            raise OrthancError(ErrorCode.CANNOT_WRITE_FILE, str(e)) from e
        self.metrics.increment("orthanc_storage_written_bytes", size)
        plain = plain_md5.hexdigest()
        return Staged(file_uuid, size, stored_md5.hexdigest() if stored_md5 is not None else plain,
                      len(data), plain, COMPRESSION_ZLIB if compressor is not None else COMPRESSION_NONE)

    @off_loop
    def adopt(self, path: Path, data: bytes) -> Staged:
        """Stage a file that the caller hands over, ``data`` being its content: moved under
        ``tmp/`` when it is stored as is (no second write), else staged from ``data``
        (compressed) and removed.  ``path`` must be on the storage area's file system."""
        if self.compress:
            staged = self.stage(data)
            path.unlink(missing_ok=True)
            return staged
        file_uuid = str(uuid.uuid4())
        os.replace(path, os.path.join(self._tmp, file_uuid))
        md5 = hashlib.md5(data).hexdigest()
        self.metrics.increment("orthanc_storage_written_bytes", len(data))
        return Staged(file_uuid, len(data), md5, len(data), md5, COMPRESSION_NONE)

    @off_loop
    def publish(self, file_uuid: str) -> None:
        """Move a staged file to its final place (after the index committed it).

        The two folder levels are made once (65,536 at most): a ``mkdir`` per file was
        ~35 us of a ~2 ms ingest.  A folder removed behind the server's back is made again."""
        folder = os.path.join(self._root, file_uuid[0:2], file_uuid[2:4])
        source, target = os.path.join(self._tmp, file_uuid), os.path.join(folder, file_uuid)
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            if not os.path.exists(source):
                raise
            os.makedirs(folder, exist_ok=True)
            os.replace(source, target)

    @off_loop
    def discard(self, file_uuid: str) -> None:
        (self.tmp / file_uuid).unlink(missing_ok=True)

    @off_loop
    def read(self, file_uuid: str, compression: int) -> bytes:
        with self.metrics.timer("orthanc_storage_read_duration_ms"):
            raw = self._read_raw(file_uuid)
        self.metrics.increment("orthanc_storage_read_bytes", len(raw))
        if compression == COMPRESSION_ZLIB:
            return zlib.decompress(raw[8:]) if len(raw) > 8 else b""
        return raw

    @off_loop
    def read_range(self, file_uuid: str, offset: int, size: int) -> bytes:
        """``size`` stored bytes from ``offset`` (a ``Range`` request on a file that is not
        compressed), without reading the rest of a large file."""
        with self.metrics.timer("orthanc_storage_read_duration_ms"):
            data = self._read_raw_range(file_uuid, offset, size)
        self.metrics.increment("orthanc_storage_read_bytes", len(data))
        return data

    def _read_raw_range(self, file_uuid: str, offset: int, size: int) -> bytes:
        for candidate in (self.path(file_uuid), self.tmp / file_uuid):
            try:
                with candidate.open("rb") as stream:
                    stream.seek(offset)
                    return stream.read(size)
            except FileNotFoundError:
                continue
        raise OrthancError(ErrorCode.INEXISTENT_FILE, f"Missing file in the storage area: {file_uuid}")

    def _read_raw(self, file_uuid: str) -> bytes:
        for candidate in (self.path(file_uuid), self.tmp / file_uuid):
            try:
                return candidate.read_bytes()
            except FileNotFoundError:
                continue
        raise OrthancError(ErrorCode.INEXISTENT_FILE, f"Missing file in the storage area: {file_uuid}")

    @off_loop
    def remove(self, file_uuid: str) -> None:
        path = self.path(file_uuid)
        with self.metrics.timer("orthanc_storage_remove_duration_ms"):
            path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            try:
                folder.rmdir()
            except OSError:
                break

    @off_loop
    def journal_removals(self, file_uuids: list[str]) -> Path | None:
        """Record, durably, files about to be removed; call before the index forgets them."""
        if not file_uuids:
            return None
        journal = self.removals / f"{uuid.uuid4()}.txt"
        partial = journal.with_suffix(".partial")
        with open(partial, "w") as f:
            f.write("\n".join(file_uuids))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, journal)
        return journal

    @off_loop
    def remove_journaled(self, journal: Path | None, file_uuids: Iterable[str]) -> None:
        """Remove the files of a journal whose index transaction committed, then the journal."""
        for file_uuid in file_uuids:
            self.remove(file_uuid)
        if journal is not None:
            journal.unlink(missing_ok=True)

    @off_loop
    def replay_removals(self, is_indexed: Callable[[str], bool]) -> int:
        """Finish the removals a crash interrupted: only files the index no longer knows."""
        removed = 0
        for journal in sorted(self.removals.iterdir()):
            if journal.suffix == ".txt":
                for file_uuid in journal.read_text().split():
                    if not is_indexed(file_uuid) and self.path(file_uuid).exists():
                        self.remove(file_uuid)
                        removed += 1
            journal.unlink(missing_ok=True)
        if removed:
            log.warning("Finished interrupted deletions: %d files removed", removed)
        return removed

    @off_loop
    def recover(self, is_indexed: Callable[[str], bool]) -> tuple[int, int]:
        """Finish or roll back the ingests a crash interrupted; returns (published, removed).
        The deletions a crash interrupted are finished too (:meth:`replay_removals`)."""
        self.replay_removals(is_indexed)
        published = removed = 0
        for entry in list(self.tmp.iterdir()):
            if entry.is_file() and is_indexed(entry.name):
                self.publish(entry.name)
                published += 1
            else:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
        return published, removed
