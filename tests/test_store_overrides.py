"""``/modalities/{id}/store`` with ``CalledAet``, ``Host`` and ``Port`` (Orthanc 1.11.3, API 19):
the request overrides the modality's parameters for this store only.  Run on a real Isengard
reporting 1.13.0, sending to another Isengard."""

from __future__ import annotations

from pathlib import Path

from conftest import sample
from helpers import IsengardAtLevel, orthanc_error


def test_store_overrides_the_modality_parameters(make_isengard, tmp_path: Path) -> None:
    receiver = make_isengard(DicomAet="RECEIVER")
    sender = IsengardAtLevel(tmp_path / "sender", "1.13.0", 31,
                             DicomModalities={"nowhere": ["NOBODY", "127.0.0.1", 1]}).start()
    try:
        instance = sender.post("/instances", data=sample("SignedCT.dcm").read_bytes()).json()["ID"]
        answer = sender.post("/modalities/nowhere/store", json={
            "Resources": [instance], "CalledAet": "RECEIVER", "Host": "127.0.0.1", "Port": receiver.dicom_port})
        assert answer.status_code == 200, answer.text
        assert receiver.json("/instances") == [instance]
        bad = sender.post("/modalities/nowhere/store", json={"Resources": [instance], "Port": 70000})
        assert orthanc_error(bad)[:2] == (400, 3)
        assert sender.json("/modalities/nowhere/configuration")["Port"] == 1
    finally:
        sender.stop()
