"""Reading a stored file (server/storage/area.py, server/store.py): at its place, still staged
by this node or by another, whole even when the system hands it over in pieces, and by an
attachment looked up earlier."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from test_store_batch import instance

from server.dicom.main_tags import Level
from server.errors import OrthancError
from server.events import EventBus
from server.storage.area import StorageArea
from server.storage.index import Index
from server.store import Limits, Origin, Store


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


def test_a_dicom_file_read_by_a_stale_attachment_is_looked_up_again(tmp_path: Path) -> None:
    """A C-MOVE looks its instances' attachments up ahead: one replaced since (its file gone)
    is looked up again rather than failing the sub-operation."""
    store = Store(Index(tmp_path / "index.sqlite"), StorageArea(tmp_path / "storage"), EventBus(), Limits())
    data = instance("1", 1)
    result = store.ingest(data, Origin())
    resource = store.index.lookup(result.ids[Level.INSTANCE], Level.INSTANCE)
    assert resource is not None
    current = store.dicom_attachment(resource)
    assert store.read_dicom(resource, current) == store.read_dicom(resource) == data
    stale = dataclasses.replace(current, uuid="0123abcd-0000-0000-0000-000000000000")
    assert store.read_dicom(resource, stale) == data
