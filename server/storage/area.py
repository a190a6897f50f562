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

Several nodes may share one storage area (and one PostgreSQL index): each process
stages and journals in its own folders, ``tmp/<node>/`` and ``removals/<node>/``, and
holds an ``flock`` on ``tmp/<node>/.lock`` for as long as it lives.  Start-up recovery
only touches the folders whose lock nobody holds: those of dead processes, never a
live node's in-flight uploads or deletions.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import mmap
import os
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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

#: The lock file of a node's staging folder, held (``flock``) while its process lives.
LOCK_NAME = ".lock"

#: A node folder without its lock file is being made; past this age, its maker died then.
BIRTH_GRACE_SECONDS = 60.0


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


class NodeFolders:
    """This process's own ``tmp/<node>/`` and ``removals/<node>/``, and the lock that tells
    the other nodes sharing the area that it is alive.

    The lock file is made under a passing name, locked, then renamed into place: a folder
    whose ``.lock`` exists but is not locked is never one being made.
    """

    def __init__(self, root: Path) -> None:
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.tmp = root / "tmp" / self.name
        self.removals = root / "removals" / self.name
        self.tmp.mkdir(parents=True)
        partial = self.tmp / f"{LOCK_NAME}.{uuid.uuid4().hex}"
        self._lock: int | None = os.open(partial, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(partial, self.tmp / LOCK_NAME)
        self.removals.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Remove the folders when nothing is left in them, then let the lock go (what is
        left is then another node's, or the next start's, to recover)."""
        if self._lock is None:
            return
        _remove_if_empty(self.removals)
        if all(path.name == LOCK_NAME for path in self.tmp.rglob("*") if not path.is_dir()):
            shutil.rmtree(self.tmp, ignore_errors=True)  # only the lock and empty folders left
        os.close(self._lock)
        self._lock = None


def _read_file(path: str) -> bytes:
    """The whole file in four system calls (open, fstat, read, close), where ``read_bytes``
    makes nine (a C-MOVE reads a file per sub-operation)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size)
        if len(data) < size:  # a read stops at 2 GB; a file may also change under us
            with os.fdopen(os.dup(fd), "rb") as rest:
                data += rest.read()
        return data
    finally:
        os.close(fd)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


@contextmanager
def _claim(folder: Path) -> Iterator[bool]:
    """Whether ``folder`` is a dead process's node folder; its lock is held by this process
    for the block, so that two nodes starting together do not recover it both."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        try:
            abandoned = time.time() - folder.stat().st_mtime > BIRTH_GRACE_SECONDS
        except FileNotFoundError:
            abandoned = False
        yield abandoned
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class StorageArea:
    """Files named by UUID under ``root/ab/cd/abcd...``, optionally zlib-compressed."""

    def __init__(self, root: Path, compress: bool = False, metrics: Metrics | None = None,
                 node: NodeFolders | None = None, sync: bool = True) -> None:
        self.root = root
        self.compress = compress
        #: ``SyncStorageArea``: each file is on the disk (``fdatasync``) before the index names it.
        self.sync = sync
        self.metrics = metrics or Metrics(enabled=False)
        self.node = node or NodeFolders(root)
        #: Where this process stages its files (and spools large uploads).
        self.tmp = self.node.tmp
        self.removals = self.node.removals
        self.tmp_root, self.removals_root = root / "tmp", root / "removals"
        #: Plain strings for the per-file paths (``pathlib`` costs ~10 us a join).
        self._root, self._tmp = str(root), str(self.tmp)
        self._folders: set[str] = set()

    def close(self) -> None:
        self.node.close()

    @property
    def staging_folder(self) -> str:
        """Where :meth:`stage` writes (what an ingest process is told to write into)."""
        return self._tmp

    def path(self, file_uuid: str) -> Path:
        return self.root / file_uuid[0:2] / file_uuid[2:4] / file_uuid

    @off_loop
    def stage(self, data: bytes | mmap.mmap, compress: bool | None = None) -> Staged:
        """Write ``data`` under ``tmp/`` (see :func:`write_staged`).

        ``compress`` overrides ``StorageCompression`` (``.../compress`` and ``.../uncompress``).
        """
        start = time.monotonic()
        staged = write_staged(self._tmp, data, self.compress if compress is None else compress, self.sync)
        self.count_staged(staged, time.monotonic() - start)
        return staged

    def count_staged(self, staged: Staged, seconds: float) -> None:
        """Count a file staged in this area (by :meth:`stage`, or by an ingest process: see
        :mod:`server.ingest_processes`) in the storage metrics."""
        self.metrics.record_max("orthanc_storage_create_duration_ms", int(seconds * 1000))
        self.metrics.increment("orthanc_storage_written_bytes", staged.size)

    @off_loop
    def adopt(self, path: Path, data: bytes) -> Staged:
        """Stage a file that the caller hands over, ``data`` being its content: moved under
        ``tmp/`` when it is stored as is (no second write), else staged from ``data``
        (compressed) and removed.  ``path`` must be on the storage area's file system."""
        if self.compress:
            staged = self.stage(data)
            path.unlink(missing_ok=True)
            return staged
        if self.sync:
            _sync_file(path)
        file_uuid = str(uuid.uuid4())
        os.replace(path, os.path.join(self._tmp, file_uuid))
        md5 = hashlib.md5(data).hexdigest()
        self.metrics.increment("orthanc_storage_written_bytes", len(data))
        return Staged(file_uuid, len(data), md5, len(data), md5, COMPRESSION_NONE)

    @off_loop
    def publish(self, file_uuid: str) -> None:
        """Move a staged file to its final place (after the index committed it).

        The two folder levels are made once (65,536 at most): a ``mkdir`` per file was
        ~35 us of a ~2 ms ingest.  A folder removed behind the server's back is made again.
        A staged file already gone was removed by a writer that deleted or overwrote the
        instance right after its commit (see :meth:`remove`): nothing is left to publish."""
        folder = os.path.join(self._root, file_uuid[0:2], file_uuid[2:4])
        source, target = os.path.join(self._tmp, file_uuid), os.path.join(folder, file_uuid)
        if folder not in self._folders:
            _make_folder(folder)
            self._folders.add(folder)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            if not os.path.exists(source):
                log.info("Staged file %s removed before it was published", file_uuid)
                return
            _make_folder(folder)
            os.replace(source, target)

    @off_loop
    def discard(self, file_uuid: str) -> None:
        _unlink(os.path.join(self._tmp, file_uuid))

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

    def _places(self, file_uuid: str) -> Iterator[Path]:
        """Where a file may be: its place, else still staged (committed, not yet moved) by
        this node or by another one sharing the area."""
        yield self.path(file_uuid)
        yield self.tmp / file_uuid
        for folder in self._other_staging_folders():
            yield folder / file_uuid

    def _other_staging_folders(self) -> list[Path]:
        try:
            return [Path(entry.path) for entry in os.scandir(self.tmp_root)
                    if entry.is_dir() and entry.name != self.node.name]
        except FileNotFoundError:
            return []

    def _read_raw_range(self, file_uuid: str, offset: int, size: int) -> bytes:
        for candidate in self._places(file_uuid):
            try:
                with candidate.open("rb") as stream:
                    stream.seek(offset)
                    return stream.read(size)
            except FileNotFoundError:
                continue
        raise OrthancError(ErrorCode.INEXISTENT_FILE, f"Missing file in the storage area: {file_uuid}")

    def _read_raw(self, file_uuid: str) -> bytes:
        try:  # where it nearly always is, without pathlib
            return _read_file(os.path.join(self._root, file_uuid[0:2], file_uuid[2:4], file_uuid))
        except FileNotFoundError:
            pass
        for candidate in itertools.islice(self._places(file_uuid), 1, None):  # its place was tried
            try:
                return _read_file(str(candidate))
            except FileNotFoundError:
                continue
        raise OrthancError(ErrorCode.INEXISTENT_FILE, f"Missing file in the storage area: {file_uuid}")

    @off_loop
    def remove(self, file_uuid: str) -> None:
        """Remove a file the index no longer names.  A file not yet at its place is still
        staged by the writer that committed it (on this node or another): removed there,
        its writer's :meth:`publish` finds nothing to move.  A file is only ever moved from
        a staging folder to its place, so looking there, then in the staging folders, then
        there again cannot miss it."""
        path = self.path(file_uuid)
        with self.metrics.timer("orthanc_storage_remove_duration_ms"):
            if not _unlink(path) and not any(
                    _unlink(folder / file_uuid) for folder in (self.tmp, *self._other_staging_folders())):
                _unlink(path)
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
    def replay_removals(self, is_indexed: Callable[[str], bool], journals: Path | None = None) -> int:
        """Finish the removals a crash interrupted (the journals in ``journals``, by default
        those a former version wrote directly under ``removals/``): only files the index no
        longer knows."""
        removed = 0
        folder = journals or self.removals_root
        if not folder.is_dir():
            return 0
        for journal in sorted(folder.iterdir()):
            if not journal.is_file():
                continue
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
        The deletions a crash interrupted are finished too (:meth:`replay_removals`).

        Only the folders of dead processes are recovered (see :class:`NodeFolders`); files
        directly under ``tmp/`` and ``removals/`` are a former version's, recovered as well."""
        self.replay_removals(is_indexed)
        published, removed = self._recover_files(self.tmp_root, is_indexed)
        for folder in list(self.tmp_root.iterdir()):
            if not folder.is_dir() or folder.name == self.node.name:
                continue
            with _claim(folder) as dead:
                if not dead:
                    continue
                journals = self.removals_root / folder.name
                self.replay_removals(is_indexed, journals)
                shutil.rmtree(journals, ignore_errors=True)
                done, gone = self._recover_files(folder, is_indexed)
                published, removed = published + done, removed + gone
                shutil.rmtree(folder, ignore_errors=True)
        for journals in list(self.removals_root.iterdir()):
            # Journals whose node's staging folder is gone: its recovery was interrupted.
            if journals.is_dir() and not (self.tmp_root / journals.name).exists():
                self.replay_removals(is_indexed, journals)
                shutil.rmtree(journals, ignore_errors=True)
        return published, removed

    def _recover_files(self, folder: Path, is_indexed: Callable[[str], bool]) -> tuple[int, int]:
        """Publish the staged files of ``folder`` the index knows, remove the others."""
        published = removed = 0
        for entry in list(folder.iterdir()):
            if not entry.is_file() or entry.name.startswith(LOCK_NAME):
                continue
            if is_indexed(entry.name):
                self._publish_from(entry)
                published += 1
            else:
                entry.unlink(missing_ok=True)
                removed += 1
        return published, removed

    def _publish_from(self, staged: Path) -> None:
        target = self.path(staged.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)


def write_staged(tmp: str, data: bytes | mmap.mmap, compress: bool, sync: bool) -> Staged:
    """Write ``data`` into the staging folder ``tmp`` under a new UUID, piece by piece (see
    :func:`pieces`), hashing it on the way: the work of :meth:`StorageArea.stage`, which the
    ingest processes do too.

    With ``sync`` (``SyncStorageArea``), the file is on the disk when this returns: its data
    and size (``fdatasync``), and its name in ``tmp/``, which the journaling file systems
    (and ext4 without a journal) make durable with a new file's first sync.  After a power
    cut, start-up finds it there and moves it into place if the index committed it.

    Orthanc's zlib format is its own: the uncompressed size as a 64-bit little-endian
    prefix, followed by the zlib stream.
    """
    file_uuid = str(uuid.uuid4())
    compressor = zlib.compressobj(6) if compress else None
    tmp_path = os.path.join(tmp, file_uuid)
    plain_md5 = hashlib.md5()
    try:
        # A plain descriptor: open() adds a buffer and three system calls (fstat, isatty, lseek).
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            if compressor is None:
                # Stored as is, the file's MD5 is the data's: hashing once saves ~45 us per 34 KB.
                for piece in pieces(data):
                    plain_md5.update(piece)
                    _write_all(fd, piece)
                size, stored = len(data), None
            else:
                size, stored = _write_compressed(fd, data, compressor, plain_md5)
            if sync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        _unlink(tmp_path)
        raise OrthancError(ErrorCode.CANNOT_WRITE_FILE, str(e)) from e
    plain = plain_md5.hexdigest()
    return Staged(file_uuid, size, stored if stored is not None else plain,
                  len(data), plain, COMPRESSION_ZLIB if compressor is not None else COMPRESSION_NONE)


def _sync_file(path: Path) -> None:
    """A file written by another hand (a spooled dataset, a transfer's download) onto the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until all of ``data`` is written (a regular file takes it at once, but may not)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_compressed(fd: int, data: bytes | mmap.mmap, compressor: zlib._Compress,
                      plain_md5: hashlib._Hash) -> tuple[int, str]:
    """Orthanc's zlib format (see :meth:`StorageArea.stage`), written to ``fd`` piece by piece
    while ``plain_md5`` takes in the data; the size and MD5 of what was written."""
    stored_md5, size = hashlib.md5(), 0
    def write(chunk: bytes) -> None:
        nonlocal size
        _write_all(fd, chunk)
        stored_md5.update(chunk)
        size += len(chunk)
    write(len(data).to_bytes(8, "little"))
    for piece in pieces(data):
        plain_md5.update(piece)
        write(compressor.compress(piece))
    write(compressor.flush())
    return size, stored_md5.hexdigest()


def _make_folder(folder: str) -> None:
    """``os.makedirs(folder, exist_ok=True)`` in one system call when the parent exists (it
    looks at each level first: two or four calls per new folder)."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)


def _unlink(path: Path | str) -> bool:
    """Whether there was a file to remove."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
