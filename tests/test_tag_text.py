"""``tag_text`` reads most main tags without the general path (``find_element`` then
``_leaf``): on every DICOM file of the tests, in its own encoding and in implicit VR, both
give each main tag the same text."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from helpers import crafted_main_tags, implicit_vr_variant
from server.dicom import parse
from server.dicom.elements import find_element
from server.dicom.json_format import _leaf, dataset_decoder, tag_text
from server.dicom.main_tags import BY_LEVEL
from server.errors import OrthancError

DATA = Path(__file__).parent / "data"
FILES = sorted(path for path in DATA.rglob("*.dcm"))
TAGS = sorted({(group << 16) | element for tags in BY_LEVEL.values() for group, element in tags}
              | {0x00080005, 0x00080016})


def general_text(ds: pydicom.Dataset, tag: int, decoder) -> str | None:
    element = find_element(ds, tag)
    if element is None:
        return None
    kind, value = _leaf(element, decoder)
    return value if kind == "String" else None


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the crafted values, as meant
@pytest.mark.parametrize("path", [*FILES, None], ids=[*(str(p.relative_to(DATA)) for p in FILES), "crafted"])
def test_main_tags_read_as_the_general_path_reads_them(path: Path | None) -> None:
    data = path.read_bytes() if path is not None else crafted_main_tags()
    for variant in (data, implicit_vr_variant(data)):
        if variant is None:
            continue
        try:
            ds = _indexed_dataset(variant)
        except OrthancError:
            continue
        for encoding in ("Latin1", "Utf8"):
            decoder = dataset_decoder(ds, encoding)
            for tag in TAGS:
                if tag in ds._dict:
                    assert tag_text(ds, tag, decoder) == general_text(ds, tag, decoder), (hex(tag), encoding)


def _indexed_dataset(data: bytes) -> pydicom.Dataset:
    """The dataset of the main tags as ingest makes it when it does (not all strings)."""
    wanted = parse._wanted()
    walker = parse._Walker(data, wanted=wanted.numbers)
    return parse._read_indexed(data, walker, parse.check_complete(data, walker), wanted)[0]
