"""``IngestTranscoding`` and its ``...OfUncompressed``/``...OfCompressed`` switches: what each
client sends (requests, storescu, pynetdicom) is stored in the configured syntax, with its
``TransferSyntax`` metadata, and dcmtk decodes each lossless file back to the source pixels."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pynetdicom import AE
from test_transcode import independent_pixels, transfer_syntax

from conftest import Isengard, dcmtk, dcmtk_env, sample

JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
RLE = "1.2.840.10008.1.2.5"
IMPLICIT = "1.2.840.10008.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"
JPEG_LS_SOURCE = "TransferSyntaxes/1.2.840.10008.1.2.4.80.dcm"


def stored(server: Isengard, instance: str) -> tuple[bytes, str]:
    """The stored file and its TransferSyntax metadata."""
    metadata = server.get(f"/instances/{instance}/metadata/TransferSyntax")
    assert metadata.status_code == 200
    return server.get(f"/instances/{instance}/file").content, metadata.text


def assert_lossless(server: Isengard, instance: str, source: bytes, target: str, tool: str | None,
                    workdir: Path) -> None:
    data, metadata = stored(server, instance)
    assert transfer_syntax(data) == metadata == target
    reference_tool = "dcmdjpls" if transfer_syntax(source) == "1.2.840.10008.1.2.4.80" else None
    assert np.array_equal(independent_pixels(data, tool, workdir),
                          independent_pixels(source, reference_tool, workdir))


def test_rest_uploads_are_stored_in_the_ingest_syntax(make_isengard: Any, tmp_path: Path) -> None:
    server = make_isengard(IngestTranscoding=JPEG_LOSSLESS)
    for name in ("SignedCT.dcm", "KarstenHilbertRF.dcm", JPEG_LS_SOURCE, "ColorTestImageJ.dcm"):
        source = sample(name).read_bytes()
        answer = server.upload(source)
        # lossless: the SOPInstanceUID, thus the Orthanc ID, is the received one
        assert answer["ID"] == server.upload(source)["ID"]
        assert_lossless(server, answer["ID"], source, JPEG_LOSSLESS, "dcmdjpeg", tmp_path)


def test_dicom_uploads_are_stored_in_the_ingest_syntax(make_isengard: Any, tmp_path: Path) -> None:
    server = make_isengard(IngestTranscoding=RLE)
    source = sample("SignedCT.dcm").read_bytes()
    subprocess.run([dcmtk("storescu"), "-aec", server.aet, "127.0.0.1", str(server.dicom_port),
                    str(sample("SignedCT.dcm"))], check=True, capture_output=True, timeout=60, env=dcmtk_env())
    [instance] = server.json("/instances")
    assert_lossless(server, instance, source, RLE, "dcmdrle", tmp_path)
    assert server.json(f"/instances/{instance}/metadata?expand")["Origin"] == "DicomProtocol"

    jpeg_ls = sample(JPEG_LS_SOURCE).read_bytes()
    ds = pydicom.dcmread(io.BytesIO(jpeg_ls))
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(ds.SOPClassUID, [str(ds.file_meta.TransferSyntaxUID)])
    association = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert association.is_established
    status = association.send_c_store(ds)
    association.release()
    assert status.Status == 0
    instance = next(i for i in server.json("/instances")
                    if server.json(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] == ds.SOPInstanceUID)
    assert_lossless(server, instance, jpeg_ls, RLE, "dcmdrle", tmp_path)


def test_switches_for_uncompressed_and_compressed_sources(make_isengard: Any) -> None:
    only_compressed = make_isengard(IngestTranscoding=JPEG_LOSSLESS, IngestTranscodingOfUncompressed=False)
    only_uncompressed = make_isengard(IngestTranscoding=JPEG_LOSSLESS, IngestTranscodingOfCompressed=False)
    for server, uncompressed, compressed in ((only_compressed, EXPLICIT, JPEG_LOSSLESS),
                                             (only_uncompressed, JPEG_LOSSLESS, RLE)):
        for name, expected in (("SignedCT.dcm", uncompressed),
                               ("TransferSyntaxes/1.2.840.10008.1.2.5.dcm", compressed)):
            instance = server.upload(sample(name))["ID"]
            data, metadata = stored(server, instance)
            assert transfer_syntax(data) == metadata == expected, (name, expected)


def test_files_without_pixels_are_only_rewritten_for_an_uncompressed_target(make_isengard: Any) -> None:
    """An SR, a PDF... stays as it is for a compressed target (newer Orthanc's rule), and is
    rewritten for an uncompressed one; a file without meta header is read whole to tell."""
    compressed = make_isengard(IngestTranscoding=JPEG_LOSSLESS)
    uncompressed = make_isengard(IngestTranscoding=IMPLICIT)
    for server, expected in ((compressed, EXPLICIT), (uncompressed, IMPLICIT)):
        for name in ("sample-pdf.dcm", "Issue22-NoPixelData.dcm"):
            instance = server.upload(sample(name))["ID"]
            data, metadata = stored(server, instance)
            assert transfer_syntax(data) == metadata == expected, name
    headerless = compressed.upload(sample("TransferSyntaxes/1.2.840.10008.1.2.dcm"))["ID"]
    assert stored(compressed, headerless)[1] == JPEG_LOSSLESS


def test_lossy_target_and_impossible_transcoding(make_isengard: Any) -> None:
    server = make_isengard(IngestTranscoding="1.2.840.10008.1.2.4.50")
    rf = sample("KarstenHilbertRF.dcm").read_bytes()
    answer = server.upload(rf)
    data, metadata = stored(server, answer["ID"])
    assert metadata == "1.2.840.10008.1.2.4.50"
    assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID != pydicom.dcmread(io.BytesIO(rf)).SOPInstanceUID
    # 16-bit pixels cannot be baseline JPEG: Orthanc stores the file as received
    ct = sample("SignedCT.dcm").read_bytes()
    instance = server.upload(ct)["ID"]
    assert stored(server, instance) == (ct, EXPLICIT)


def test_modifications_that_transcode_skip_ingest_transcoding(make_isengard: Any) -> None:
    server = make_isengard(IngestTranscoding=JPEG_LOSSLESS)
    instance = server.upload(sample("KarstenHilbertRF.dcm"))["ID"]
    series = server.json(f"/instances/{instance}")["ParentSeries"]
    for body, expected in (({"Transcode": RLE}, RLE), ({}, JPEG_LOSSLESS)):
        answer = server.post(f"/series/{series}/modify",
                             json={"Replace": {"SeriesDescription": "x"}, "KeepSource": True, **body})
        assert answer.status_code == 200, answer.text
        [modified] = server.json(f"/series/{answer.json()['ID']}/instances")
        assert stored(server, modified["ID"])[1] == expected


def test_unknown_ingest_syntax_stops_start_up(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "bad", IngestTranscoding="1.2.3.4")
    try:
        server.start()
    except RuntimeError:
        pass
    else:
        server.stop()
        raise AssertionError("started with an unknown ingest transfer syntax")
    assert "Unknown transfer syntax for ingest transcoding: 1.2.3.4" in server.log()
