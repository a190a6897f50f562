"""The transcoder, through the routes that use it: every lossless target decoded by an
independent decoder (dcmtk, GDCM) gives back the source's pixels; lossy targets make a new
instance; archives transcode; one validator answers bad ``Transcode`` values everywhere."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from conftest import Isengard, dcmtk, sample
from helpers import wait_job

GDCM = {"Plugins": ["/usr/share/orthanc/plugins/libOrthancGdcm.so"]}

#: Lossless targets and the independent tool that decompresses them (None: already native).
LOSSLESS = [
    ("1.2.840.10008.1.2", None),
    ("1.2.840.10008.1.2.2", None),
    ("1.2.840.10008.1.2.1.99", None),
    ("1.2.840.10008.1.2.4.57", "dcmdjpeg"),
    ("1.2.840.10008.1.2.4.70", "dcmdjpeg"),
    ("1.2.840.10008.1.2.4.80", "dcmdjpls"),
    ("1.2.840.10008.1.2.4.90", "gdcmconv"),
    ("1.2.840.10008.1.2.5", "dcmdrle"),
]
SOURCES = ["KarstenHilbertRF.dcm", "SignedCT.dcm", "ColorTestImageJ.dcm",
           "TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm", "TransferSyntaxes/1.2.840.10008.1.2.4.80.dcm",
           "MultiframeWindowing.dcm"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    started = Isengard(tmp_path_factory.mktemp("transcode"), **GDCM).start()
    yield started
    started.stop()


def independent_pixels(data: bytes, tool: str | None, workdir: Path) -> np.ndarray:
    """Pixels of a DICOM file, decompressed by dcmtk or GDCM (never by Isengard's code)."""
    source = workdir / "in.dcm"
    source.write_bytes(data)
    if tool is not None:
        target = workdir / "out.dcm"
        if tool == "gdcmconv":
            if shutil.which("gdcmconv") is None:
                pytest.skip("GDCM's gdcmconv is not installed")
            command = ["gdcmconv", "--raw", str(source), str(target)]
        else:
            command = [dcmtk(tool), str(source), str(target)]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        source = target
    ds = pydicom.dcmread(source)
    for keyword, default in (("PixelRepresentation", 0), ("SamplesPerPixel", 1),
                             ("PhotometricInterpretation", "MONOCHROME2")):
        if keyword not in ds:
            setattr(ds, keyword, default)  # MultiframeWindowing.dcm lacks them
    return ds.pixel_array


def transfer_syntax(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta.TransferSyntaxUID)


def modify(server: Isengard, instance: str, syntax: str) -> bytes:
    answer = server.post(f"/instances/{instance}/modify",
                         json={"Transcode": syntax, "Keep": ["SOPInstanceUID"], "Force": True})
    assert answer.status_code == 200, answer.text
    return answer.content


@pytest.mark.parametrize("name", SOURCES)
def test_lossless_targets_give_back_the_source_pixels(server: Isengard, tmp_path: Path, name: str) -> None:
    data = sample(name).read_bytes()
    source_syntax = transfer_syntax(data)
    reference_tool = {"1.2.840.10008.1.2.4.50": "dcmdjpeg", "1.2.840.10008.1.2.4.80": "dcmdjpls"}.get(source_syntax)
    reference = independent_pixels(data, reference_tool, tmp_path)
    instance = server.upload(data)["ID"]
    for syntax, tool in LOSSLESS:
        if name == "MultiframeWindowing.dcm" and syntax == "1.2.840.10008.1.2.4.90":
            continue  # OpenJPEG's default 6 resolution levels need more than 2x2 pixels (known limit)
        transcoded = modify(server, instance, syntax)
        assert transfer_syntax(transcoded) == syntax
        pixels = independent_pixels(transcoded, tool, tmp_path)
        assert pixels.shape == reference.shape, (name, syntax)
        assert np.array_equal(pixels, reference), (name, syntax)


def test_lossy_targets_make_a_new_instance(server: Isengard, tmp_path: Path) -> None:
    data = sample("KarstenHilbertRF.dcm").read_bytes()
    instance = server.upload(data)["ID"]
    original = pydicom.dcmread(io.BytesIO(data))
    for syntax in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"):
        transcoded = modify(server, instance, syntax)
        ds = pydicom.dcmread(io.BytesIO(transcoded))
        assert str(ds.file_meta.TransferSyntaxUID) == syntax
        assert ds.SOPInstanceUID != original.SOPInstanceUID
        assert ds.LossyImageCompression == "01" and float(ds.LossyImageCompressionRatio) > 1
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
        pixels = independent_pixels(transcoded, "dcmdjpeg", tmp_path).astype(np.int64)
        assert np.abs(pixels - original.pixel_array.astype(np.int64)).mean() < 2


def test_sixteen_bit_images_cannot_become_baseline_jpeg(server: Isengard) -> None:
    instance = server.upload(sample("SignedCT.dcm"))["ID"]
    answer = server.post(f"/instances/{instance}/modify",
                         json={"Transcode": "1.2.840.10008.1.2.4.50", "Keep": ["SOPInstanceUID"], "Force": True})
    assert answer.status_code == 500
    assert "Cannot transcode" in answer.json()["Details"]


def test_jpeg2000_needs_the_gdcm_plugin_configuration(isengard: Isengard) -> None:
    instance = isengard.upload(sample("KarstenHilbertRF.dcm"))["ID"]
    answer = isengard.post(f"/instances/{instance}/modify", json={"Transcode": "1.2.840.10008.1.2.4.90"})
    assert answer.status_code == 500
    assert isengard.json("/plugins") == ["explorer.js", "transfers"]
    j2k = isengard.upload(sample("TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm"))["ID"]
    assert isengard.get(f"/instances/{j2k}/preview").status_code == 415


def test_archives_transcode_and_keep_what_cannot_be(server: Isengard, tmp_path: Path) -> None:
    rf = server.upload(sample("KarstenHilbertRF.dcm"))
    signed = server.upload(sample("SignedCT.dcm"))
    for resource, syntax in ((rf, "1.2.840.10008.1.2.4.70"), (signed, "1.2.840.10008.1.2.4.80")):
        answer = server.get(f"/series/{resource['ParentSeries']}/archive?transcode={syntax}")
        assert answer.status_code == 200
        with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
            assert [transfer_syntax(archive.read(n)) for n in archive.namelist()] == [syntax]
    # a 16-bit image cannot be baseline JPEG: the media carries it as it is, as Orthanc's does
    answer = server.get(f"/series/{signed['ParentSeries']}/media?transcode=1.2.840.10008.1.2.4.50")
    with zipfile.ZipFile(io.BytesIO(answer.content)) as media:
        assert transfer_syntax(media.read("IMAGES/IM0")) == "1.2.840.10008.1.2.1"


def test_one_validator_for_transcode(server: Isengard) -> None:
    info = server.upload(sample("KarstenHilbertRF.dcm"))
    instance, series = info["ID"], info["ParentSeries"]
    for method, path, body in (
            ("post", f"/instances/{instance}/modify", {"Transcode": "nope"}),
            ("post", f"/series/{series}/modify", {"Transcode": "nope", "Replace": {"SeriesDescription": "x"}}),
            ("post", f"/series/{series}/archive", {"Transcode": "nope"}),
            ("get", f"/series/{series}/media?transcode=nope", None),
            ("post", f"/series/{series}/modify", {"Transcode": 12, "Replace": {"SeriesDescription": "x"}})):
        answer = getattr(server, method)(path, json=body) if body is not None else server.get(path)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["OrthancStatus"] in (3, 15)


def test_transcoded_instances_can_be_stored_and_rendered(server: Isengard) -> None:
    """A transcoded file is a valid instance for Isengard itself (its own decoder reads it back)."""
    instance = server.upload(sample("SignedCT.dcm"))["ID"]
    before = np.load(io.BytesIO(server.get(f"/instances/{instance}/numpy?rescale=0").content))
    server.delete(f"/instances/{instance}")
    for syntax in ("1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80"):
        stored = server.upload(sample("SignedCT.dcm"))["ID"]
        copy = modify(server, stored, syntax)
        server.delete(f"/instances/{stored}")
        again = server.upload(copy)["ID"]
        assert server.get(f"/instances/{again}/metadata/TransferSyntax").text == syntax
        after = np.load(io.BytesIO(server.get(f"/instances/{again}/numpy?rescale=0").content))
        assert np.array_equal(before, after)
        server.delete(f"/instances/{again}")


def test_store_scu_transcodes_what_the_remote_refuses(make_isengard: Any) -> None:
    """C-STORE of a JPEG-LS instance to a modality accepting only explicit little endian: the file
    travels decompressed, with the source's pixels, as Orthanc does (TranscodeDicomProtocol)."""
    remote = make_isengard(DicomAet="NARROW", AcceptedTransferSyntaxes=["1.2.840.10008.1.2.1"])
    sender = make_isengard(DicomAet="SENDER", DicomModalities={"narrow": ["NARROW", "127.0.0.1", remote.dicom_port]})
    sent = sender.upload(sample("TransferSyntaxes/1.2.840.10008.1.2.4.80.dcm"))
    answer = sender.post("/modalities/narrow/store", json={"Resources": [sent["ID"]]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["FailedInstancesCount"] == 0
    received = remote.json("/instances")
    assert len(received) == 1
    assert remote.get(f"/instances/{received[0]}/metadata/TransferSyntax").text == "1.2.840.10008.1.2.1"
    ours = np.load(io.BytesIO(sender.get(f"/instances/{sent['ID']}/numpy?rescale=0").content))
    theirs = np.load(io.BytesIO(remote.get(f"/instances/{received[0]}/numpy?rescale=0").content))
    assert np.array_equal(ours, theirs)


def test_file_route_transcodes_on_the_fly(server: Isengard, tmp_path: Path) -> None:
    """``GET /instances/{id}/file?transcode=`` (Orthanc 1.12): the transcoded file, nothing stored;
    an unknown UID is Orthanc's 400, an impossible transcoding its NotImplemented (500)."""
    data = sample("SignedCT.dcm").read_bytes()
    instance = server.upload(data)["ID"]
    reference = independent_pixels(data, None, tmp_path)
    for syntax, tool in (("1.2.840.10008.1.2.4.70", "dcmdjpeg"), ("1.2.840.10008.1.2.5", "dcmdrle"),
                         ("1.2.840.10008.1.2.2", None)):
        answer = server.get(f"/instances/{instance}/file?transcode={syntax}")
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/dicom"
        assert transfer_syntax(answer.content) == syntax
        assert np.array_equal(independent_pixels(answer.content, tool, tmp_path), reference)
    assert server.get(f"/instances/{instance}/file").content == data
    assert server.get(f"/instances/{instance}/metadata/TransferSyntax").text == "1.2.840.10008.1.2.1"
    for bad in ("nope", ""):
        answer = server.get(f"/instances/{instance}/file?transcode={bad}")
        assert answer.status_code == 400 and answer.json()["OrthancStatus"] == 3
    impossible = server.get(f"/instances/{instance}/file?transcode=1.2.840.10008.1.2.4.50")
    assert impossible.status_code == 500 and impossible.json()["OrthancStatus"] == 2


def test_file_route_lossy_quality(server: Isengard) -> None:
    """``lossy-quality`` (Orthanc 1.12.7) overrides DicomLossyTranscodingQuality for the answer."""
    instance = server.upload(sample("KarstenHilbertRF.dcm"))["ID"]
    route = f"/instances/{instance}/file?transcode=1.2.840.10008.1.2.4.50"
    low, high = (server.get(f"{route}&lossy-quality={q}") for q in (40, 80))
    assert low.status_code == high.status_code == 200
    assert len(low.content) < len(high.content)
    bad = server.get(f"{route}&lossy-quality=high")
    assert bad.status_code == 400 and bad.json()["OrthancStatus"] == 3


def _zip_sizes(answer: Any) -> list[int]:
    assert answer.status_code == 200, answer.text
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        return [len(archive.read(name)) for name in archive.namelist() if name != "DICOMDIR"]


def test_archive_lossy_quality(server: Isengard) -> None:
    """``lossy-quality`` / ``LossyQuality`` (Orthanc 1.12.7) wherever archives take ``transcode``."""
    study = server.upload(sample("KarstenHilbertRF.dcm"))["ParentStudy"]
    jpeg = "1.2.840.10008.1.2.4.50"
    for route in (f"/studies/{study}/archive", f"/studies/{study}/media", "/tools/create-archive"):
        get = f"{route}?transcode={jpeg}&resources={study}"
        low, high = (_zip_sizes(server.get(f"{get}&lossy-quality={q}")) for q in (40, 80))
        assert low[0] < high[0]
        posted = [_zip_sizes(server.post(route, json={"Resources": [study], "Transcode": jpeg, "LossyQuality": q}))
                  for q in (40, 80)]
        assert posted == [low, high]
    bad = server.post("/tools/create-archive", json={"Resources": [study], "Transcode": jpeg, "LossyQuality": "x"})
    assert bad.status_code == 400 and bad.json()["Details"] == "Unsigned integer value expected in field: LossyQuality"
    job = server.post("/tools/create-media", json={"Resources": [study], "Transcode": jpeg, "LossyQuality": 40,
                                                    "Asynchronous": True}).json()["ID"]
    assert wait_job(server, job)["Content"]["LossyQuality"] == 40


def test_tools_create_archive_by_get(server: Isengard) -> None:
    """Orthanc 1.12.2: ``GET /tools/create-archive|create-media|create-media-extended``."""
    first = server.upload(sample("KarstenHilbertRF.dcm"))
    second = server.upload(sample("SignedCT.dcm"))
    resources = f"{first['ParentPatient']},{second['ID']},{first['ID']}"
    archive = server.get(f"/tools/create-archive?resources={resources}")
    assert archive.headers["Content-Disposition"] == 'filename="Archive.zip"'
    assert len(_zip_sizes(archive)) == 2
    media = server.get(f"/tools/create-media-extended?resources={resources}&filename=toto.zip"
                       "&transcode=1.2.840.10008.1.2.1")
    assert media.headers["Content-Disposition"] == 'filename="toto.zip"'
    with zipfile.ZipFile(io.BytesIO(media.content)) as zipped:
        assert sorted(zipped.namelist()) == ["DICOMDIR", "IMAGES/IM0", "IMAGES/IM1"]
        assert {transfer_syntax(zipped.read(n)) for n in ("IMAGES/IM0", "IMAGES/IM1")} == {"1.2.840.10008.1.2.1"}
    missing = server.get("/tools/create-media")
    assert missing.status_code == 400 and missing.json()["Details"] == "Missing resources argument"
    assert server.get("/tools/create-archive?resources=nope").status_code == 404


def test_modified_instance_lossy_quality(server: Isengard) -> None:
    instance = server.upload(sample("KarstenHilbertRF.dcm"))["ID"]
    low, high = (server.post(f"/instances/{instance}/modify", json={
        "Replace": {"PatientName": "Q"}, "Transcode": "1.2.840.10008.1.2.4.50", "LossyQuality": q}) for q in (40, 80))
    assert low.status_code == high.status_code == 200
    assert len(low.content) < len(high.content)
