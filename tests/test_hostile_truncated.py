"""Only complete DICOM files are stored: truncated uploads are refused as the real Orthanc refuses them."""

from __future__ import annotations

import pytest

from conftest import Isengard, Orthanc, dicom_files, sample

#: Orthanc 1.10.1 crashes on truncated copies of this one: nothing to compare with.
CRASHES_ORTHANC = {"2026-05-06-Deeply-Nested-Sequence.dcm"}
PERCENTS = (1, 5, 25, 50, 90, 99)


def _answer(server: Isengard | Orthanc, data: bytes) -> tuple[int, object]:
    answer = server.post("/instances", data)
    if answer.status_code == 200:
        server.delete(answer.json()["Path"])
        return 200, answer.json()["Status"]
    return answer.status_code, answer.json()["OrthancStatus"]


@pytest.mark.parametrize("percent", PERCENTS)
def test_truncated_files_are_refused_as_orthanc_refuses_them(
        isengard: Isengard, orthanc: Orthanc, percent: int) -> None:
    differences = []
    for path in dicom_files():
        if path.name in CRASHES_ORTHANC:
            continue
        data = path.read_bytes()
        cut = data[:len(data) * percent // 100]
        ours, theirs = _answer(isengard, cut), _answer(orthanc, cut)
        if ours != theirs:
            differences.append((path.name, ours, theirs))
    assert differences == []


def test_complete_file_is_stored_after_its_truncated_copy_was_refused(isengard: Isengard) -> None:
    isengard.clear()
    data = sample("ColorTestMalaterre.dcm").read_bytes()
    for end in (len(data) // 20, len(data) - 1, len(data) - 100):
        answer = isengard.post("/instances", data[:end])
        assert answer.status_code == 400 and answer.json()["OrthancStatus"] == 15
    assert isengard.json("/instances") == []
    assert isengard.upload(data)["Status"] == "Success"


def test_pixel_data_shorter_than_declared_is_refused(isengard: Isengard) -> None:
    data = bytearray(sample("ColorTestMalaterre.dcm").read_bytes())
    tag = data.rfind(b"\xe0\x7f\x10\x00")
    assert tag > 0
    del data[-16:]
    answer = isengard.post("/instances", bytes(data))
    assert answer.status_code == 400 and answer.json()["OrthancStatus"] == 15


def test_deeply_nested_file_is_refused(isengard: Isengard) -> None:
    """100,000 nested sequences: refused as Orthanc 1.13 refuses them (CVE-2026-10528), by an
    iterative walk (the depth costs no recursion), and the server stays up."""
    path = sample("2026-05-06-Deeply-Nested-Sequence.dcm")
    answer = isengard.post("/instances", path.read_bytes())
    assert answer.status_code == 400 and answer.json()["OrthancStatus"] == 15, answer.text
    assert isengard.json("/system")["Name"]
