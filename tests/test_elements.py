"""``code_string_bytes`` writes a CS value (the SpecificCharacterSet pydicom converts as it
reads each file) byte for byte as pydicom's ``write_data_element`` does, or declines."""

from __future__ import annotations

import pytest
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue

from server.dicom.elements import code_string_bytes


def _written(value: object) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_data_element(fp, DataElement(0x00080005, "CS", value))
    return fp.getvalue()[8:]


@pytest.mark.parametrize("value", [
    "ISO_IR 100", "ISO_IR 192", "ISO_IR 6", "A",
    ["", "ISO 2022 IR 87"], ["ISO 2022 IR 6", "ISO 2022 IR 87", "ISO 2022 IR 159"],
    MultiValue(str, ["ISO 2022 IR 13", "ISO 2022 IR 87"]),
])
def test_as_pydicom_writes_it(value: object) -> None:
    assert code_string_bytes(value) == _written(value)


@pytest.mark.parametrize("value", ["ISO_IR 100\u00e9", 100, ["A", 1], None])
def test_declines_other_values(value: object) -> None:
    assert code_string_bytes(value) is None
