"""``ExtraMainDicomTags`` (Orthanc 1.11), the ``MainDicomSequences`` metadata (1.11.1), the
default main tags of the reported API level and the ``/system`` fields that describe them."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

import server
from conftest import Isengard
from server.dicom import main_tags
from server.dicom.main_tags import Level

DATA = Path(__file__).parent / "data"
#: Has RequestAttributesSequence, ProcedureCodeSequence, Rows = 256, ScanningSequence = GR.
JPEG = DATA / "Formats" / "Jpeg.dcm"
EXTRA = {"Study": ["ProcedureCodeSequence"], "Instance": ["Rows", "0018,0020"]}


def test_extra_tags_are_indexed_shown_and_searchable(make_isengard):
    isengard = make_isengard(ExtraMainDicomTags=EXTRA)
    uploaded = isengard.upload(JPEG)
    instance = isengard.json(f"/instances/{uploaded['ID']}")
    assert instance["MainDicomTags"]["Rows"] == "256"
    assert instance["MainDicomTags"]["ScanningSequence"] == "GR"
    study = isengard.json(f"/studies/{uploaded['ParentStudy']}")
    codes = study["MainDicomTags"]["ProcedureCodeSequence"]
    assert isinstance(codes, list) and codes and "CodeValue" in codes[0]
    short = isengard.json(f"/studies/{uploaded['ParentStudy']}?short")["MainDicomTags"]
    assert isinstance(short["0008,1032"], list)
    full = isengard.json(f"/studies/{uploaded['ParentStudy']}?full")["MainDicomTags"]
    assert full["0008,1032"]["Type"] == "Sequence"
    metadata = isengard.json(f"/studies/{uploaded['ParentStudy']}/metadata?expand")
    sequences = json.loads(metadata["MainDicomSequences"])
    assert sequences["Version"] == 1 and "0008,1032" in sequences["Sequences"]
    signatures = isengard.json("/system")["MainDicomTags"]
    assert "0028,0010" in signatures["Instance"].split(";")
    assert "0008,1032" in signatures["Study"].split(";")
    found = isengard.post("/tools/find", json={"Level": "Instance", "Query": {"Rows": "256"}}).json()
    assert found == [uploaded["ID"]]
    none = isengard.post("/tools/find", json={"Level": "Instance", "Query": {"Rows": "512"}}).json()
    assert none == []


def test_a_change_keeps_old_resources_until_reconstruct(make_isengard):
    isengard = make_isengard()
    uploaded = isengard.upload(JPEG)
    old_signature = isengard.get(f"/instances/{uploaded['ID']}/metadata/MainDicomTagsSignature").text \
        if server.ORTHANC_API_VERSION >= 17 else None
    isengard.stop()
    isengard.config["ExtraMainDicomTags"] = EXTRA
    isengard.config_path.write_text(json.dumps(isengard.config))
    isengard.start()
    assert "Rows" not in isengard.json(f"/instances/{uploaded['ID']}")["MainDicomTags"]
    if old_signature is not None:
        assert "0028,0010" not in old_signature
    assert isengard.post(f"/studies/{uploaded['ParentStudy']}/reconstruct", json={}).status_code == 200
    assert isengard.json(f"/instances/{uploaded['ID']}")["MainDicomTags"]["Rows"] == "256"
    if server.ORTHANC_API_VERSION >= 17:
        signature = isengard.get(f"/instances/{uploaded['ID']}/metadata/MainDicomTagsSignature").text
        assert signature == isengard.json("/system")["MainDicomTags"]["Instance"]


def test_a_tag_already_main_or_computed_is_ignored(make_isengard):
    isengard = make_isengard(ExtraMainDicomTags={"Study": ["PatientName", "StudyDate",
                                                           "ModalitiesInStudy"]})
    assert isengard.json("/system")["MainDicomTags"]["Study"] == main_tags.main_tags_signature(Level.STUDY)
    assert "already defined" in isengard.log()


def test_an_unknown_level_or_tag_stops_start_up(tmp_path):
    for option in ({"Nope": ["Rows"]}, {"Study": ["NoSuchTag"]}, {"Study": "Rows"}):
        server_ = Isengard(tmp_path / "bad", ExtraMainDicomTags=option)
        try:
            server_.start()
        except RuntimeError:
            continue
        server_.stop()
        raise AssertionError(f"started with {option}")


def test_default_main_tags_follow_the_api_level():
    """Orthanc 1.12.5 (API 26) added TimezoneOffsetFromUTC, the PPS start date/time and
    RequestAttributesSequence; the 1.11 signature stays what unsigned resources have."""
    signatures = main_tags.configure({}, 26)
    assert signatures == []
    assert "0040,0275" in main_tags.main_tags_signature(Level.SERIES)
    assert "0008,0201" in main_tags.main_tags_signature(Level.STUDY)
    assert (0x0040, 0x0275) in main_tags.SEQUENCES
    assert "0040,0275" not in main_tags.default_signature(Level.SERIES)
    main_tags.configure({}, 16)
    assert main_tags.main_tags_signature(Level.SERIES) == main_tags.default_signature(Level.SERIES)
    assert not main_tags.SEQUENCES
    main_tags.configure({}, server.ORTHANC_API_VERSION)


def test_request_attributes_sequence_at_the_series_level(make_isengard):
    isengard = make_isengard()
    uploaded = isengard.upload(JPEG)
    series = isengard.json(f"/series/{uploaded['ParentSeries']}")
    metadata = isengard.json(f"/series/{uploaded['ParentSeries']}/metadata")
    if server.ORTHANC_API_VERSION >= 26:
        assert series["MainDicomTags"]["RequestAttributesSequence"][0]["RequestedProcedureID"]
        assert "MainDicomSequences" in metadata
    else:
        assert "RequestAttributesSequence" not in series["MainDicomTags"]
        assert "MainDicomSequences" not in metadata


def test_system_reports_the_newer_fields(make_isengard):
    isengard = make_isengard(DatabaseServerIdentifier="Isengard1", ConcurrentJobs=3)
    system = isengard.json("/system")
    assert system["DatabaseServerIdentifier"] == "Isengard1"
    assert system["Performance"]["ConcurrentJobs"] == 3
    assert system["IngestTranscoding"] == ""
    assert system["StoreMD5ForAttachments"] is True
    assert system["ThirdPartyPatches"] == []
    # the versions of the modules in use: the installed packages' (read from the modules, not the disk)
    libraries = ("pydicom", "pynetdicom", "tornado", "lupa", "Pillow", "numpy")
    assert system["ThirdPartyVersions"] == {"Python": platform.python_version(),
                                            **{name: metadata.version(name) for name in libraries}}
    default = make_isengard().json("/system")["DatabaseServerIdentifier"]
    assert len(default) == 44 and default.count("-") == 4


def test_deleting_a_child_updates_the_last_update_of_its_parents(make_isengard):
    """Orthanc 1.12.1 (API 21); Orthanc 1.10.1 leaves the parents' LastUpdate alone."""
    import io
    import time

    import pydicom
    isengard = make_isengard()
    first = isengard.upload(JPEG)
    ds = pydicom.dcmread(JPEG)
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".2"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    second = isengard.upload(buffer.getvalue())
    path = f"/series/{first['ParentSeries']}/metadata/LastUpdate"
    before = isengard.get(path).text
    time.sleep(1.01)
    assert isengard.delete(f"/instances/{second['ID']}").status_code == 200
    assert (isengard.get(path).text != before) == (server.ORTHANC_API_VERSION >= 21)
