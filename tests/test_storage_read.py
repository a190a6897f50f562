"""Reading a stored file (server/storage/area.py): at its place, still staged by this node
or by another, and whole even when the system hands it over in pieces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from server.errors import OrthancError
from server.storage.area import StorageArea


def test_published_staged_and_another_nodes_files(tmp_path: Path) -> None:
    area, other = StorageArea(tmp_path), StorageArea(tmp_path)
    try:
        published = area.stage(b"published")
        area.publish(published.uuid)
        staged, theirs = area.stage(b"staged"), other.stage(b"theirs")
        assert [area.read(f.uuid, f.compression) for f in (published, staged, theirs)] == \
            [b"published", b"staged", b"theirs"]
        with pytest.raises(OrthancError):
            area.read("0123abcd-0000-0000-0000-000000000000", published.compression)
    finally:
        area.close()
        other.close()


def test_a_short_read_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    area = StorageArea(tmp_path)
    data = bytes(range(256)) * 64
    stored = area.stage(data)
    area.publish(stored.uuid)
    read = os.read
    monkeypatch.setattr(os, "read", lambda fd, size: read(fd, min(size, 1000)))
    assert area.read(stored.uuid, stored.compression) == data
    area.close()
