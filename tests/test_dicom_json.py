"""Parity of the DICOM renderings with the real Orthanc 1.10.1.

Every file of ``fixtures/orthanc/instances`` is what Orthanc answered for one
DICOM file (``source`` "testdata": a file of ``tests/data``; "synthetic":
a crafted file of ``fixtures/orthanc/synthetic`` probing a corner case):
``/tags`` in its three formats, ``/header`` likewise, and ``/content`` for
every element down to the first item of nested sequences plus a few bad
paths.  They were captured by uploading each file to a real Orthanc 1.10.1
with default options (``DefaultEncoding`` Latin1, private dictionary loaded).
``fixtures/orthanc/refused.json`` lists the testdata files Orthanc refused.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest

from server.dicom.content import NoSuchContent, content_children, parse_tag
from server.dicom.json_format import (
    header_full,
    header_short,
    header_simplified,
    simplify,
    tags_full,
    tags_short,
    tags_simplified,
)
from server.errors import ErrorCode, OrthancError

FIXTURES = Path(__file__).parent / "fixtures" / "orthanc"
TESTDATA = Path(__file__).resolve().parent / "data"

#: pydicom itself warns about the crafted file with an unknown character set.
pytestmark = pytest.mark.filterwarnings("ignore:Unknown encoding:UserWarning")

CASES = sorted(p.name for p in (FIXTURES / "instances").iterdir())


def _fixture(name: str) -> dict[str, Any]:
    path = FIXTURES / "instances" / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _dataset(fixture: dict[str, Any]) -> pydicom.Dataset:
    if fixture["source"] == "synthetic":
        path = FIXTURES / "synthetic" / fixture["file"]
    else:
        path = TESTDATA / fixture["file"]
    return pydicom.dcmread(BytesIO(path.read_bytes()), force=True)


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], pydicom.Dataset]:
    fixture = _fixture(request.param)
    return fixture, _dataset(fixture)


def _keys_in_order(value: Any) -> bool:
    """Every object's keys come sorted, as in Orthanc's JSON."""
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(map(_keys_in_order, value.values()))
    if isinstance(value, list):
        return all(map(_keys_in_order, value))
    return True


def test_tags(case: tuple[dict[str, Any], pydicom.Dataset]) -> None:
    fixture, ds = case
    full = tags_full(ds)
    assert full == fixture["tags"]
    assert tags_simplified(ds) == fixture["simplified"]
    assert tags_short(ds) == fixture["short"]
    assert _keys_in_order(full) and _keys_in_order(simplify(full))


def test_header(case: tuple[dict[str, Any], pydicom.Dataset]) -> None:
    fixture, ds = case
    assert header_full(ds) == fixture["header"]
    assert header_simplified(ds) == fixture["header_simplified"]
    assert header_short(ds) == fixture["header_short"]


def _answer(ds: pydicom.Dataset, path: str) -> tuple[int, Any]:
    try:
        return 200, content_children(ds, [part for part in path.split("/") if part])
    except NoSuchContent:
        return 404, None
    except OrthancError as error:
        return error.status, error.code


def test_content(case: tuple[dict[str, Any], pydicom.Dataset]) -> None:
    fixture, ds = case
    for path, expected in fixture["content"].items():
        status, got = _answer(ds, path)
        assert status == expected["status"], path
        if status == 500:
            assert got == ErrorCode.UNKNOWN_DICOM_TAG, path
        if status != 200:
            continue
        if "json" in expected:
            assert got == expected["json"], path
        elif "sha1" in expected:
            assert isinstance(got, bytes), path
            assert (len(got), hashlib.sha1(got).hexdigest()) == (
                expected["len"], expected["sha1"]), path
        else:
            assert got == base64.b64decode(expected["body_b64"]), path


def test_header_of_file_meta_alone() -> None:
    """Given only ``file_meta``, the header lacks what dcmtk takes from the dataset."""
    ds = _dataset({"source": "synthetic", "file": "meta-overflow.dcm"})
    assert "0008,0000" in header_full(ds)
    assert "0008,0000" not in header_full(ds.file_meta)
    assert "0008,0000" not in tags_full(ds)


def test_default_encoding() -> None:
    """Without SpecificCharacterSet the ``DefaultEncoding`` option decides."""
    ds = _dataset({"source": "synthetic", "file": "charset-absent.dcm"})
    assert tags_short(ds)["0008,0080"] == "caf\u00e9"
    assert tags_short(ds, default_encoding="Latin2")["0008,0080"] == "caf\u00e9"
    assert tags_short(ds, default_encoding="Ascii")["0008,0080"] == "caf"
    assert tags_short(ds, default_encoding="Greek")["0008,0080"] == "caf\u03b9"


@pytest.mark.parametrize("text, tag", [
    ("0010-0010", 0x00100010), ("0010,0010", 0x00100010), ("00100010", 0x00100010),
    ("7FE0-0010", 0x7FE00010), ("PatientName", 0x00100010), ("10,10", 0x00100010),
    ("OverlayRows", 0x60000010), ("RETIRED_OtherPatientIDs", 0x00101000),
])
def test_parse_tag(text: str, tag: int) -> None:
    assert parse_tag(text) == tag


@pytest.mark.parametrize("text", ["nonsense", "OtherPatientIDs", "0010-001"])
def test_parse_tag_unknown(text: str) -> None:
    with pytest.raises(OrthancError) as raised:
        parse_tag(text)
    assert raised.value.code == ErrorCode.UNKNOWN_DICOM_TAG
