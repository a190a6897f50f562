"""The sweep of orphaned archive ZIPs (:class:`server.jobs.archive.ArchiveFiles`): once, when
the first archive job starts, it deletes the files no job claims, and never the file of a job
submitted and started while it runs (a second worker starts the next job meanwhile)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.jobs import archive
from server.jobs.archive import ArchiveFiles


def _zip(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(b"PK")
    return path


def test_the_sweep_deletes_the_unclaimed_zips_once(tmp_path: Path) -> None:
    files = ArchiveFiles(tmp_path, 10)
    kept, orphan = _zip(tmp_path, "archive-kept.zip"), _zip(tmp_path, "media-orphan.zip")
    files.claim(kept)
    files.sweep()
    assert kept.exists() and not orphan.exists()
    later = _zip(tmp_path, "archive-later.zip")  # a job's file, made after the sweep
    files.sweep()
    assert later.exists()


def test_a_job_started_during_the_sweep_keeps_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the sweep's listings of archives and of media, another job is submitted (its
    file claimed) and started (its file made): the sweep must see the claim."""
    files = ArchiveFiles(tmp_path, 10)
    orphan = _zip(tmp_path, "media-orphan.zip")
    started = tmp_path / "media-started.zip"

    def patterns() -> Iterator[str]:
        yield "archive-*.zip"
        files.claim(started)
        _zip(tmp_path, started.name)
        yield "media-*.zip"

    monkeypatch.setattr(archive, "ZIP_PATTERNS", patterns())
    files.sweep()
    assert started.exists() and not orphan.exists()


def test_a_cluster_node_sweeps_what_no_saved_job_names(tmp_path: Path) -> None:
    files = ArchiveFiles(tmp_path, 10, shared=True)
    another_nodes, orphan = _zip(tmp_path, "archive-other.zip"), _zip(tmp_path, "archive-orphan.zip")
    files.sweep()  # the cluster's queue is not known yet: nothing is touched
    assert orphan.exists()
    files = ArchiveFiles(tmp_path, 10, shared=True)
    files.saved_files = lambda: {another_nodes.name}
    files.sweep()
    assert another_nodes.exists() and not orphan.exists()


def test_a_sweep_that_cannot_read_the_queue_is_tried_again(tmp_path: Path) -> None:
    files = ArchiveFiles(tmp_path, 10, shared=True)
    orphan = _zip(tmp_path, "archive-orphan.zip")

    def unreachable() -> set[str]:
        raise OSError("the database is gone")

    files.saved_files = unreachable
    files.sweep()  # logged; the job that started it goes on
    assert orphan.exists()
    files.saved_files = set
    files.sweep()
    assert not orphan.exists()
