"""The storage area's files: staged and published as Orthanc lays them out, whatever happens to
its folders meanwhile (the folders it made are remembered, not looked at again per file)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zlib
from pathlib import Path

from server.storage.area import COMPRESSION_NONE, COMPRESSION_ZLIB, StorageArea

DATA = bytes(range(256)) * 200


def test_a_file_is_staged_then_published_with_its_sizes_and_hashes(tmp_path: Path) -> None:
    area = StorageArea(tmp_path)
    staged = area.stage(DATA)
    md5 = hashlib.md5(DATA).hexdigest()
    assert (staged.size, staged.uncompressed_size, staged.md5, staged.uncompressed_md5, staged.compression) == (
        len(DATA), len(DATA), md5, md5, COMPRESSION_NONE)
    assert (area.tmp / staged.uuid).read_bytes() == DATA
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((area.tmp / staged.uuid).stat().st_mode) == 0o666 & ~umask  # as open(..., "wb") makes it
    area.publish(staged.uuid)
    path = tmp_path / staged.uuid[:2] / staged.uuid[2:4] / staged.uuid
    assert path.read_bytes() == DATA and not (area.tmp / staged.uuid).exists()
    assert area.read(staged.uuid, staged.compression) == DATA
    area.close()


def test_a_compressed_file_has_orthancs_zlib_format(tmp_path: Path) -> None:
    area = StorageArea(tmp_path, compress=True)
    staged = area.stage(DATA)
    stored = (area.tmp / staged.uuid).read_bytes()
    assert staged.compression == COMPRESSION_ZLIB and staged.size == len(stored) < len(DATA)
    assert int.from_bytes(stored[:8], "little") == len(DATA) and zlib.decompress(stored[8:]) == DATA
    assert staged.md5 == hashlib.md5(stored).hexdigest()
    assert staged.uncompressed_md5 == hashlib.md5(DATA).hexdigest()
    area.publish(staged.uuid)
    assert area.read(staged.uuid, staged.compression) == DATA
    area.close()


def _stage_as(area: StorageArea, name: str) -> str:
    """A file staged under a chosen name (``stage`` draws a random UUID), to aim at a folder."""
    (area.tmp / name).write_bytes(DATA)
    return name


def test_folders_removed_behind_the_areas_back_are_made_again(tmp_path: Path) -> None:
    area = StorageArea(tmp_path)
    first = area.stage(DATA).uuid
    area.publish(first)
    level1, level2 = tmp_path / first[:2], tmp_path / first[:2] / first[2:4]
    # Its second-level folder removed (the area remembers having made it)...
    os.unlink(level2 / first)
    level2.rmdir()
    area.publish(_stage_as(area, first))
    assert (level2 / first).read_bytes() == DATA
    # ... and both levels removed.
    shutil.rmtree(level1)
    area.publish(_stage_as(area, first))
    assert (level2 / first).read_bytes() == DATA
    area.close()


def test_a_new_folder_beside_existing_ones(tmp_path: Path) -> None:
    """The first level exists already, the second does not: the file still finds its place."""
    area = StorageArea(tmp_path)
    first = area.stage(DATA).uuid
    area.publish(first)
    other = first[:2] + ("00" if first[2:4] != "00" else "11") + first[4:]
    area.publish(_stage_as(area, other))
    assert (tmp_path / other[:2] / other[2:4] / other).read_bytes() == DATA
    assert (tmp_path / first[:2] / first[2:4] / first).read_bytes() == DATA
    area.close()


def test_discard_removes_the_staged_file_once(tmp_path: Path) -> None:
    area = StorageArea(tmp_path)
    staged = area.stage(DATA)
    area.discard(staged.uuid)
    area.discard(staged.uuid)  # already gone: nothing to do
    assert not (area.tmp / staged.uuid).exists()
    area.close()
