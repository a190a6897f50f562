"""The SQLite index syncs its WAL after each commit, outside the writers' lock, and one sync
covers every commit made before it began (``SqliteDatabase._sync_wal``).  The order against
the staged files and the answers, seen from outside, is in ``test_sync_storage.py``."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from server.storage.index import SqliteDatabase


def _synced_files(monkeypatch: pytest.MonkeyPatch, database: SqliteDatabase,
                  release: threading.Event | None = None) -> list[tuple[str, bool]]:
    """The paths ``os.fdatasync`` is called on from now, each with whether another thread
    could have taken the database's lock meanwhile; with ``release``, the first call waits
    for it before syncing."""
    synced: list[tuple[str, bool]] = []
    real = os.fdatasync

    def lock_free() -> bool:
        free: list[bool] = []

        def attempt() -> None:
            free.append(database._lock.acquire(blocking=False))
            if free[0]:
                database._lock.release()
        other = threading.Thread(target=attempt)
        other.start()
        other.join()
        return free[0]

    def fdatasync(fd: int) -> None:
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), lock_free()))
        if release is not None and len(synced) == 1:
            assert release.wait(10)
        real(fd)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return synced


def _write(database: SqliteDatabase, value: str, synced: bool = True) -> None:
    with database.transaction(synced=synced) as db:
        db.execute("INSERT OR REPLACE INTO GlobalProperties VALUES(?, ?)", (1000, value))


def test_a_commit_returns_with_its_wal_synced_by_a_writer_that_let_the_lock_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = SqliteDatabase(tmp_path / "index.sqlite")
    synced = _synced_files(monkeypatch, database)
    _write(database, "a")
    # Synced before it returned, while the next writer could already write.
    assert synced == [(f"{tmp_path}/index.sqlite-wal", True)]
    _write(database, "b", synced=False)  # the jobs' snapshots: safe from kill -9 only
    assert len(synced) == 1
    database.close()


def test_one_sync_covers_the_commits_made_while_another_synced(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    database = SqliteDatabase(tmp_path / "index.sqlite")
    release = threading.Event()
    synced = _synced_files(monkeypatch, database, release)
    first = threading.Thread(target=_write, args=(database, "first"))
    first.start()
    while not synced:  # its commit made, its sync under way
        first.join(0.001)
    later = [threading.Thread(target=_write, args=(database, f"later {n}")) for n in range(3)]
    for thread in later:
        thread.start()
    while database._commits < 4:  # committed, each waiting to sync
        first.join(0.001)
    release.set()
    for thread in (first, *later):
        thread.join(10)
    # The first sync, then one for the three commits that came while it ran.
    assert synced == [(f"{tmp_path}/index.sqlite-wal", True)] * 2
    assert database._synced_commits == database._commits == 4
    database.close()


def test_without_sync_no_commit_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = SqliteDatabase(tmp_path / "index.sqlite", sync=False)
    synced = _synced_files(monkeypatch, database)
    _write(database, "a")
    assert synced == []
    database.close()
