"""``Store.ingest_files``, the batch ingest of a transfer's commit, in process: files moved
rather than copied, one transaction, and the same outcome as one ``ingest`` per file when
scripts have a say or the batch fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import ct_slice
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.events import EventBus, Kind
from server.storage.area import StorageArea
from server.storage.index import Index
from server.store import Limits, Origin, Store


def instance(patient: str, number: int) -> bytes:
    return ct_slice(f"1.2.3.{patient}", f"1.2.3.{patient}.1", number, patient=patient)


class Setup:
    def __init__(self, root: Path, limits: Limits | None = None) -> None:
        self.root = root
        self.area = StorageArea(root / "storage")
        self.index = Index(root / "index.sqlite")
        self.bus = EventBus()
        self.store = Store(self.index, self.area, self.bus, limits or Limits())
        self.stored: list[str] = []
        self.bus.subscribe(Kind.STORED, lambda event: self.stored.append(event.status))
        self.incoming = root / "incoming"
        self.incoming.mkdir()

    def hand_over(self, contents: list[bytes]) -> list[Path]:
        paths = []
        for n, data in enumerate(contents):
            path = self.incoming / f"{len(os.listdir(self.incoming))}-{n}"
            path.write_bytes(data)
            paths.append(path)
        return paths

    def stored_files(self) -> list[Path]:
        """The files in Orthanc's two levels of folders (not under ``tmp/``)."""
        return [Path(folder) / name for folder, _, names in os.walk(self.area.root) for name in names
                if Path(folder).parent.parent == self.area.root and len(Path(folder).name) == 2
                and len(Path(folder).parent.name) == 2]

    def staged_files(self) -> list[str]:
        return [name for name in os.listdir(self.area.tmp) if name != ".lock"]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_a_batch_is_moved_into_place_and_indexed(setup: Setup) -> None:
    contents = [instance("7", n) for n in range(5)]
    paths = setup.hand_over(contents)
    results = setup.store.ingest_files(paths, Origin(kind="Plugins"))
    assert [r.status for r in results] == ["Success"] * 5
    assert setup.stored == ["Success"] * 5
    assert not any(path.exists() for path in paths)  # moved, not copied
    assert sorted(p.read_bytes() for p in setup.stored_files()) == sorted(contents)
    assert setup.staged_files() == []
    assert setup.index.counts()[0][Level.INSTANCE] == 5
    one = setup.index.lookup(results[0].ids[Level.INSTANCE])
    assert one is not None and setup.store.read_dicom(one) == contents[0]


def test_an_instance_stored_already_or_twice_in_the_batch(setup: Setup) -> None:
    first = instance("7", 1)
    setup.store.ingest(first, Origin())
    second = instance("7", 2)
    results = setup.store.ingest_files(setup.hand_over([first, second, second]), Origin(kind="Plugins"))
    assert [r.status for r in results] == ["AlreadyStored", "Success", "AlreadyStored"]
    assert len(setup.stored_files()) == 2 and setup.staged_files() == []


def test_a_failed_batch_gives_each_file_its_own_outcome(tmp_path: Path) -> None:
    contents = [instance(str(n), n) for n in range(4)]
    setup = Setup(tmp_path, Limits(max_patients=2, reject_when_full=True))
    with pytest.raises(OrthancError) as error:
        setup.store.ingest_files(setup.hand_over(contents), Origin(kind="Plugins"))
    assert error.value.code == ErrorCode.FULL_STORAGE
    # As one ingest each: the first two are stored, the third is refused.
    assert setup.stored == ["Success", "Success"]
    assert len(setup.stored_files()) == 2 and setup.staged_files() == []


def test_a_bad_file_fails_as_its_own_ingest_would(setup: Setup) -> None:
    good = instance("7", 1)
    with pytest.raises(OrthancError) as error:
        setup.store.ingest_files(setup.hand_over([good, b"not DICOM" * 20]), Origin(kind="Plugins"))
    assert error.value.code == ErrorCode.BAD_FILE_FORMAT
    assert setup.stored == ["Success"] and setup.staged_files() == []


def test_scripts_see_each_instance(setup: Setup) -> None:
    seen: list[str] = []

    def accept(parsed, origin) -> bool:  # type: ignore[no-untyped-def]
        seen.append(parsed.ids[Level.INSTANCE])
        return len(seen) != 2
    setup.bus.interventions.store_instance.install(accept)
    results = setup.store.ingest_files(setup.hand_over([instance("7", n) for n in range(3)]), Origin())
    assert [r.status for r in results] == ["Success", "FilteredOut", "Success"]
    assert len(seen) == 3 and len(setup.stored_files()) == 2
