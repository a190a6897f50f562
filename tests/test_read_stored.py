"""``read_stored_dataset`` (one walk of the element headers, every top-level element raw) gives
the tags pydicom's reader gives, on every DICOM file of the test data, and is pydicom's reader
where the walk cannot go."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from server.dicom.json_format import Json, tags_full, tags_simplified
from server.dicom.parse import read_dataset, read_stored_dataset
from server.errors import OrthancError

TESTS = Path(__file__).parent
DATA = TESTS / "data"
#: The test data, and the edge cases made for the JSON tests (character sets, big endian,
#: implicit VR, a meta group length that swallows dataset elements, unknown VRs...).
FILES = sorted(DATA.rglob("*.dcm")) + sorted((TESTS / "fixtures" / "orthanc" / "synthetic").glob("*.dcm"))


@pytest.mark.parametrize("whole", [False, True])
@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(TESTS)))
def test_same_tags_as_pydicoms_reader(path: Path, whole: bool) -> None:
    data = path.read_bytes()

    def full(ds: Dataset) -> Json:
        return tags_full(ds, whole=whole)

    assert _converted(read_stored_dataset, full, data) == _converted(lambda d: read_dataset(d)[0], full, data)


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(TESTS)))
def test_same_tags_before_the_pixels_as_pydicoms_reader(path: Path) -> None:
    """What Lua's ``OnStoredInstance`` and filters get: the simplified tags, pixel data and
    what follows left out."""
    data = path.read_bytes()
    assert _converted(lambda d: read_stored_dataset(d, stop_before_pixels=True), tags_simplified, data) == \
        _converted(lambda d: read_dataset(d, stop_before_pixels=True)[0], tags_simplified, data)


def _converted(read: Callable[[bytes], Dataset], convert: Callable[[Dataset], Json], data: bytes) -> Json | str:
    """The tags, or the error's message (a file nested too deep for pydicom's reader)."""
    try:
        return convert(read(data))
    except OrthancError as error:
        return str(error)


def test_elements_are_raw_until_read() -> None:
    ds = read_stored_dataset((DATA / "DicomSeg.dcm").read_bytes())
    assert any(ds.get_item(tag).VR == "SQ" for tag in ds.keys())
    assert all(isinstance(ds.get_item(tag), RawDataElement) for tag in ds.keys() if tag != 0x00080005)


def test_an_incomplete_file_is_read_as_far_as_it_goes() -> None:
    data = (DATA / "ColorTestMalaterre.dcm").read_bytes()
    cut = data[:len(data) - 100]
    assert tags_full(read_stored_dataset(cut)) == tags_full(read_dataset(cut)[0])
