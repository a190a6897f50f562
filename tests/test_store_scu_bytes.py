"""C-STORE requests of ours carry the stored file's dataset bytes as they are: what dcmtk's
``storescp`` / ``getscu`` (bit-preserving) and a pynetdicom SCU receive is the stored dataset,
byte for byte, in C-MOVE, C-GET and store jobs, whatever the syntax the peer accepted it in.
Conversions (another uncompressed syntax, transcoding) and ``OutgoingCStoreInstanceFilter``
still decode the dataset."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import PatientRootQueryRetrieveInformationModelGet

from conftest import Isengard, dcmtk, dcmtk_env, free_port, sample

EXPLICIT = "TransferSyntaxes/1.2.840.10008.1.2.1.dcm"
IMPLICIT = "ColorTestMalaterre.dcm"
JPEG = "TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm"
RLE = "Formats/Rle.dcm"
BIG_ENDIAN = "TransferSyntaxes/1.2.840.10008.1.2.2.dcm"
FILES = [EXPLICIT, IMPLICIT, JPEG, RLE, BIG_ENDIAN]

#: Each storescp destination: AET and the transfer syntax options it accepts with.
DESTINATIONS = {"all": ("DESTALL", ["+xa"]), "implicit": ("DESTIMPL", ["+xi"]), "big": ("DESTBIG", ["+xb"]),
                "uncompressed": ("DESTUNC", [])}

LUA = """
function OutgoingCStoreInstanceFilter(tags, destination)
  return tags['PatientName'] ~= 'FILTERED^OUT'
end
"""


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def dataset_bytes(data: bytes) -> bytes:
    """The bytes of a DICOM file past its file meta group (explicit VR little endian)."""
    offset = 132
    while data[offset:offset + 2] == b"\x02\x00":
        vr = data[offset + 4:offset + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR"):
            offset += 12 + int.from_bytes(data[offset + 8:offset + 12], "little")
        else:
            offset += 8 + int.from_bytes(data[offset + 6:offset + 8], "little")
    return data[offset:]


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=dcmtk_env())


@pytest.fixture(scope="module")
def destinations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, int, Path]]]:
    """dcmtk's storescp, bit-preserving: what it writes past the file meta is what it received."""
    started, found = [], {}
    for name, (aet, options) in DESTINATIONS.items():
        folder, port = tmp_path_factory.mktemp(name), free_port()
        started.append(subprocess.Popen([dcmtk("storescp"), "--aetitle", aet, "+B", *options, "-od", str(folder),
                                         str(port)], env=dcmtk_env(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        found[name] = (aet, port, folder)
    time.sleep(0.3)
    yield found
    for process in started:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           destinations: dict[str, tuple[str, int, Path]]) -> Iterator[Isengard]:
    script = tmp_path_factory.mktemp("lua") / "filter.lua"
    script.write_text(LUA)
    modalities = {name: [aet, "127.0.0.1", port] for name, (aet, port, _) in destinations.items()}
    modalities["scu"] = ["SCU", "127.0.0.1", 1]
    instance = Isengard(tmp_path_factory.mktemp("rawsend"), DicomModalities=modalities,
                        LuaScripts=[str(script)]).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def stored(server: Isengard) -> dict[str, tuple[str, bytes]]:
    """Each test file: its Orthanc ID and the file as the server stored it."""
    found = {}
    for name in FILES:
        instance_id = server.upload(sample(name))["ID"]
        found[name] = (instance_id, server.get(f"/instances/{instance_id}/file").content)
    return found


def emptied(folder: Path) -> Path:
    """``folder`` without the files received before (storescp names them by SOP instance)."""
    for path in folder.iterdir():
        path.unlink()
    return folder


def received(folder: Path, sop_instance: str) -> Path | None:
    """The file a destination wrote for ``sop_instance``."""
    return next((path for path in folder.iterdir() if path.name.endswith(sop_instance)), None)


def move(server: Isengard, destination: str, sop_instance: str) -> subprocess.CompletedProcess:
    return _run(dcmtk("movescu"), "-aet", "SCU", "-aec", server.aet, "-aem", destination, "-S",
                "-k", "QueryRetrieveLevel=IMAGE", "-k", f"SOPInstanceUID={sop_instance}",
                "127.0.0.1", str(server.dicom_port))


def sop_instance_of(data: bytes) -> str:
    return str(pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), stop_before_pixels=True).SOPInstanceUID)


@pytest.mark.parametrize(("name", "destination", "raw"), [
    (EXPLICIT, "all", True), (JPEG, "all", True), (RLE, "all", True), (BIG_ENDIAN, "big", True),
    (IMPLICIT, "implicit", True),
    (IMPLICIT, "all", False),  # accepted as explicit VR: pynetdicom converts it
    (EXPLICIT, "implicit", False),
])
def test_c_move_sends_the_stored_bytes(server: Isengard, stored: dict[str, tuple[str, bytes]],
                                       destinations: dict[str, tuple[str, int, Path]], name: str,
                                       destination: str, raw: bool) -> None:
    aet, _, folder = destinations[destination]
    data = stored[name][1]
    uid = sop_instance_of(data)
    emptied(folder)
    result = move(server, aet, uid)
    assert result.returncode == 0 and "Failed" not in result.stderr, result.stderr
    path = received(folder, uid)
    assert path is not None
    got = path.read_bytes()
    assert (md5(dataset_bytes(got)) == md5(dataset_bytes(data))) is raw
    sent, original = pydicom.dcmread(path), pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    assert sent.SOPInstanceUID == uid and sent.PixelData == original.PixelData


def test_store_job_and_transcoding(server: Isengard, stored: dict[str, tuple[str, bytes]],
                                   destinations: dict[str, tuple[str, int, Path]]) -> None:
    """``/modalities/{m}/store``: the stored bytes when the syntax was accepted; a JPEG to a
    modality accepting only uncompressed syntaxes is transcoded (decoded, new bytes)."""
    for name, destination, raw in ((EXPLICIT, "all", True), (JPEG, "all", True), (IMPLICIT, "implicit", True),
                                   (JPEG, "uncompressed", False)):
        aet, _, folder = destinations[destination]
        instance_id, data = stored[name]
        emptied(folder)
        answer = server.post(f"/modalities/{destination}/store", json={"Resources": [instance_id],
                                                                       "Synchronous": True})
        assert answer.status_code == 200, answer.text
        assert answer.json()["InstancesCount"] == 1 and answer.json()["FailedInstancesCount"] == 0
        path = received(folder, sop_instance_of(data))
        assert path is not None, name
        got = path.read_bytes()
        assert (md5(dataset_bytes(got)) == md5(dataset_bytes(data))) is raw, (name, destination)
        if not raw:
            assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"


def test_store_straight_sends_the_body(server: Isengard, destinations: dict[str, tuple[str, int, Path]]) -> None:
    aet, _, folder = destinations["all"]
    data = sample(JPEG).read_bytes()
    emptied(folder)
    answer = server.post("/modalities/all/store-straight", data)
    assert answer.status_code == 200, answer.text
    assert answer.json()["SOPInstanceUID"] == sop_instance_of(data)
    path = received(folder, sop_instance_of(data))
    assert path is not None and md5(dataset_bytes(path.read_bytes())) == md5(dataset_bytes(data))
    truncated = server.post("/modalities/all/store-straight", data[:len(data) // 2])
    assert truncated.status_code == 400 and truncated.json()["Details"] == "Cannot parse the DICOM file to send"


def test_outgoing_filter_still_reads_the_dataset(server: Isengard, stored: dict[str, tuple[str, bytes]],
                                                 destinations: dict[str, tuple[str, int, Path]]) -> None:
    """The Lua filter sees the decoded dataset; what it lets through is still sent as stored."""
    ds = pydicom.dcmread(sample(EXPLICIT))
    ds.PatientName = "FILTERED^OUT"
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    ds.PatientID = "FILTERED"
    buffer = pydicom.filebase.DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    filtered_id = server.upload(buffer.getvalue())["ID"]
    aet, _, folder = destinations["all"]
    emptied(folder)
    result = move(server, aet, ds.SOPInstanceUID)
    assert result.returncode == 0, result.stderr
    assert received(folder, ds.SOPInstanceUID) is None
    answer = server.post("/modalities/all/store", json={"Resources": [filtered_id, stored[EXPLICIT][0]]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["FailedInstancesCount"] == 0
    assert received(folder, ds.SOPInstanceUID) is None
    path = received(folder, sop_instance_of(stored[EXPLICIT][1]))
    assert path is not None and md5(dataset_bytes(path.read_bytes())) == md5(dataset_bytes(stored[EXPLICIT][1]))


def test_getscu_receives_the_stored_bytes(server: Isengard, stored: dict[str, tuple[str, bytes]],
                                          tmp_path: Path) -> None:
    data = stored[EXPLICIT][1]
    uid = sop_instance_of(data)
    result = _run(dcmtk("getscu"), "-aet", "SCU", "-aec", server.aet, "-od", str(tmp_path), "+B",
                  "-S", "-k", "QueryRetrieveLevel=IMAGE",
                  "-k", f"SOPInstanceUID={uid}", "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stderr
    [path] = list(tmp_path.iterdir())
    assert md5(dataset_bytes(path.read_bytes())) == md5(dataset_bytes(data))


@pytest.mark.parametrize(("name", "syntax", "raw"), [
    (IMPLICIT, "1.2.840.10008.1.2", True), (EXPLICIT, "1.2.840.10008.1.2.1", True),
    (JPEG, "1.2.840.10008.1.2.4.50", True),
    (IMPLICIT, "1.2.840.10008.1.2.1", False),  # converted by pynetdicom
    (JPEG, "1.2.840.10008.1.2.1", False),  # transcoded
])
def test_c_get_in_the_accepted_syntax(server: Isengard, stored: dict[str, tuple[str, bytes]], name: str,
                                      syntax: str, raw: bool) -> None:
    data = stored[name][1]
    original = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), stop_before_pixels=True)
    ae = AE(ae_title="SCU")
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(original.SOPClassUID, [syntax])
    got: list[tuple[str, bytes]] = []

    def on_store(event: evt.Event) -> int:
        got.append((event.context.transfer_syntax, event.request.DataSet.getvalue()))
        return 0

    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet,
                         ext_neg=[build_role(original.SOPClassUID, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.SOPInstanceUID = original.SOPInstanceUID
    try:
        statuses = [status.Status for status, _ in
                    assoc.send_c_get(identifier, PatientRootQueryRetrieveInformationModelGet)]
    finally:
        assoc.release()
    assert statuses[-1] == 0x0000
    [(context_syntax, dataset)] = got
    assert context_syntax == syntax
    assert (md5(dataset) == md5(dataset_bytes(data))) is raw


def test_compressed_storage_sends_the_dicom_file(make_isengard, destinations: dict[str, tuple[str, int, Path]]) -> None:
    """With ``StorageCompression`` the file on disk is not the DICOM file: what is sent is the
    dataset of the DICOM file the storage gives back."""
    aet, port, folder = destinations["all"]
    server = make_isengard(StorageCompression=True, DicomModalities={"all": [aet, "127.0.0.1", port],
                                                                      "scu": ["SCU", "127.0.0.1", 1]})
    data = sample(EXPLICIT).read_bytes()
    server.upload(data)
    emptied(folder)
    result = move(server, aet, sop_instance_of(data))
    assert result.returncode == 0 and "Failed" not in result.stderr, result.stderr
    path = received(folder, sop_instance_of(data))
    assert path is not None and md5(dataset_bytes(path.read_bytes())) == md5(dataset_bytes(data))
