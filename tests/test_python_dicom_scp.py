"""DICOM services without Orthanc's C-FIND/C-MOVE SCP: worklists (native and Python), find and move callbacks.

The native worklists are checked with dcmtk's ``findscu`` against DCMTK's worklist
samples and the answers Orthanc + its worklists plugin gives (tests/data/worklists).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from conftest import ORTHANC_BINARY, TESTDATA, Isengard, Orthanc, dcmtk, dcmtk_env

WORKLISTS = TESTDATA / "worklists"
SCRIPTS = Path(__file__).parent / "python"
SAMPLES = Path(__file__).parent.parent / "samples" / "python"
WORKLISTS_PLUGIN = Path("/usr/lib/orthanc/libModalityWorklists.so.1.10.1")
PYTHON_PLUGIN = Path("/usr/lib/orthanc/libOrthancPython.so.4.0")
#: Any AET may query and retrieve (authorization is tested elsewhere).
OPEN = {"DicomAlwaysAllowFind": True, "DicomAlwaysAllowFindWorklist": True, "DicomAlwaysAllowMove": True}
#: Tags the suite leaves out of the comparison (character set, and items of no interest).
IGNORED = {"0008,0005", "0040,0004", "0040,0005", "0040,0020"}


def dump2dcm(source: Path, target: Path) -> Path:
    subprocess.run([dcmtk("dump2dcm"), "--write-xfer-little", str(source), str(target)], check=True,
                   capture_output=True)
    return target


def findscu(server: Isengard, query: Path, tmp_path: Path, *options: str, aet: str = "WLSCU") -> list[list[str]]:
    """The top-level lines of each answer, as the suite's ``RunQuery`` reads findscu's output."""
    request = dump2dcm(query, tmp_path / (query.stem + ".dcm"))
    done = subprocess.run([dcmtk("findscu"), "-v", *options, "-aet", aet, "-aec", server.aet, "127.0.0.1",
                           str(server.dicom_port), str(request)], capture_output=True, env=dcmtk_env(),
                          timeout=60)
    answers: list[list[str]] = []
    current: list[str] = []
    in_query = True
    for raw in done.stdout.splitlines() + done.stderr.splitlines():
        line = raw.decode("utf-8", "replace")
        if line.startswith("E:"):
            raise AssertionError(done.stdout.decode() + done.stderr.decode())
        if line.startswith(("I: ---", "W: ---")):
            if in_query:
                in_query = False
            elif current:
                answers.append(current)
                current = []
        elif line.startswith(("I: (", "W: (")) and not in_query and line[4:13].lower() not in IGNORED:
            current.append(re.sub(r"\s*#.*", "", line).replace("\0", "")[3:])
    if current:
        answers.append(current)
    return answers


@pytest.fixture(scope="module")
def worklist_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    workdir = tmp_path_factory.mktemp("worklists")
    database = workdir / "wl"
    database.mkdir()
    for dump in sorted((WORKLISTS / "database").glob("*.dump")):
        dump2dcm(dump, database / (dump.stem + ".wl"))
    (database / "not-a-worklist.txt").write_text("ignored")
    server = Isengard(workdir, Worklists={"Enable": True, "Database": str(database)}, **OPEN).start()
    yield server
    server.stop()


@pytest.mark.parametrize("query", range(13))
def test_folder_worklists_answer_like_orthanc_and_its_plugin(worklist_server: Isengard, tmp_path: Path,
                                                            query: int) -> None:
    expected = json.loads((WORKLISTS / "expected" / f"all-{query}.json").read_text())
    answers = findscu(worklist_server, WORKLISTS / "queries" / f"wlistqry{query}.dump", tmp_path)
    assert sorted(answers) == sorted(expected)


def _query(**keys: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = keys.get("PatientName", "")
    ds.PatientID = ""
    step = Dataset()
    step.ScheduledStationAETitle = keys.get("ScheduledStationAETitle", "")
    step.Modality = keys.get("Modality", "")
    ds.ScheduledProcedureStepSequence = [step]
    return ds


def pynetdicom_worklist(server: Isengard, query: Dataset, aet: str = "WLSCU") -> tuple[list[Dataset], int]:
    ae = AE(ae_title=aet)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    answers, final = [], -1
    try:
        for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
            if status is not None and status.Status in (0xFF00, 0xFF01):
                answers.append(identifier)
            elif status is not None:
                final = status.Status
    finally:
        assoc.release()
    return answers, final


def _summary(answers: list[Dataset]) -> list[tuple[str, str]]:
    return sorted((str(a.get("PatientName", "")), str(a.get("PatientID", ""))) for a in answers)


@pytest.mark.parametrize("options", [{"FilterIssuerAet": True}, {"LimitAnswers": 2}])
def test_folder_worklists_options_answer_like_the_real_plugin(tmp_path: Path, options: dict) -> None:
    if not (ORTHANC_BINARY.exists() and WORKLISTS_PLUGIN.exists()):
        pytest.skip("the real Orthanc or its worklists plugin is not installed")
    database = tmp_path / "wl"
    database.mkdir()
    for n in range(1, 11):
        dump2dcm(WORKLISTS / "database" / f"wklist{n}.dump", database / f"{n}.WL")
    section = {"Enable": True, "Database": str(database), **options}
    ours = Isengard(tmp_path / "isengard", Worklists=section, **OPEN).start()
    real = Orthanc(tmp_path / "orthanc", Worklists=section, Plugins=[str(WORKLISTS_PLUGIN)], **OPEN).start()
    try:
        # ScheduledStationAETitle values: AA32\AA33, AB45, CC56\NN77, AA32, AB45\DD56...
        for aet, query in [("AA32", _query()), ("AB45", _query()), ("NOBODY", _query()),
                           ("AB45", _query(ScheduledStationAETitle="*")),
                           ("AA32", _query(ScheduledStationAETitle="AB45")), ("X", _query(PatientName="*I*"))]:
            mine, final = pynetdicom_worklist(ours, query, aet=aet)
            theirs, real_final = pynetdicom_worklist(real, query, aet=aet)
            assert (_summary(mine), final) == (_summary(theirs), real_final), (aet, query)
    finally:
        ours.stop()
        real.stop()


def test_worklists_disabled_refuse_the_worklist_model(make_isengard: object) -> None:
    server = make_isengard(Worklists={"Enable": False, "Database": "/nowhere"}, **OPEN)  # type: ignore[operator]
    ae = AE(ae_title="WLSCU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    try:
        assert not assoc.is_established or not assoc.accepted_contexts
    finally:
        if assoc.is_established:
            assoc.release()


def test_lua_worklist_request_filter_rewrites_the_query_as_in_orthanc(tmp_path: Path) -> None:
    """``IncomingWorklistRequestFilter`` runs before the worklists, as with Orthanc's worklists plugin."""
    if not (ORTHANC_BINARY.exists() and WORKLISTS_PLUGIN.exists()):
        pytest.skip("the real Orthanc or its worklists plugin is not installed")
    database = tmp_path / "wl"
    database.mkdir()
    for n in range(1, 11):
        dump2dcm(WORKLISTS / "database" / f"wklist{n}.dump", database / f"{n}.wl")
    options = {"Worklists": {"Enable": True, "Database": str(database)}, **OPEN,
               "LuaScripts": [str(Path(__file__).parent / "lua" / "worklist_filter.lua")]}
    ours = Isengard(tmp_path / "isengard", **options).start()
    real = Orthanc(tmp_path / "orthanc", Plugins=[str(WORKLISTS_PLUGIN)], **options).start()
    try:
        for aet, query in [("AA32", _query()), ("AB45", _query()), ("NOBODY", _query()),
                           ("AB45", _query(ScheduledStationAETitle="AA32")), ("AB45", _query(PatientName="*I*")),
                           ("AA32", _query(PatientName="*RESTRICTED*"))]:
            mine, final = pynetdicom_worklist(ours, query, aet=aet)
            theirs, real_final = pynetdicom_worklist(real, query, aet=aet)
            assert (_summary(mine), final) == (_summary(theirs), real_final), (aet, query)
        assert _summary(pynetdicom_worklist(ours, _query(), aet="AB45")[0])  # the filter lets some through
    finally:
        ours.stop()
        real.stop()


# -- Python callbacks -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    """An Isengard running tests/python/dicom_scp.py (worklist, find and move callbacks)."""
    workdir = tmp_path_factory.mktemp("python-scp")
    database = workdir / "wl"
    database.mkdir()
    for n in (1, 2, 3):
        dump2dcm(WORKLISTS / "database" / f"wklist{n}.dump", database / f"{n}.wl")
    shutil.copy(SCRIPTS / "dicom_scp.py", workdir / "dicom_scp.py")
    server = Isengard(workdir, PythonScript="dicom_scp.py", WorklistsFolder=str(database),
                      DicomModalities={"target": {"AET": "TARGET", "Host": "127.0.0.1", "Port": 1}}, **OPEN)
    server.start()
    yield server
    server.stop()


def test_python_worklist_callback_answers_findscu(scp: Isengard, tmp_path: Path) -> None:
    everything = findscu(scp, WORKLISTS / "queries" / "wlistqry0.dump", tmp_path, "-W")
    assert len(everything) == 3
    assert pynetdicom_worklist(scp, _query(PatientName="MOZART*")) == ([], 0)
    answers, final = pynetdicom_worklist(scp, _query(PatientName="VIVALDI*"))
    assert final == 0 and [str(a.PatientName) for a in answers] == ["VIVALDI^ANTONIO"] * 3
    assert {"PatientName", "PatientID", "ScheduledProcedureStepSequence"} <= set(answers[0].dir())
    assert "AccessionNumber" not in answers[0]
    seen = scp.json("/scp/state")["worklist"][-1]
    assert seen["issuer"] == "WLSCU" and seen["called"] == scp.aet and seen["PatientName"] == "VIVALDI*"


def test_python_find_callback_replaces_the_c_find_scp(scp: Isengard, tmp_path: Path) -> None:
    query = tmp_path / "query.dump"
    query.write_text("(0008,0052) CS [STUDY]\n(0010,0010) PN [DOE*]\n(0020,000d) UI []\n")
    answers = findscu(scp, query, tmp_path, "-S", aet="FINDSCU")
    assert len(answers) == 1
    assert answers[0] == ["(0008,0052) CS [HELLO0-STUDY]", "(0010,0010) PN [HELLO1-DOE* ]", "(0020,000d) UI [HELLO2-]"]
    seen = scp.json("/scp/state")["find"][-1]
    assert seen["issuer"] == "FINDSCU" and seen["called"] == scp.aet
    assert seen["keys"] == [["QueryRetrieveLevel", 8, 0x52, "STUDY"], ["PatientName", 0x10, 0x10, "DOE*"],
                            ["StudyInstanceUID", 0x20, 0x0D, ""]]


def test_python_move_callback_replaces_the_c_move_scp(scp: Isengard, tmp_path: Path) -> None:
    query = tmp_path / "move.dump"
    query.write_text("(0008,0052) CS [STUDY]\n(0020,000d) UI [1.2.3.4]\n")
    request = dump2dcm(query, tmp_path / "move.dcm")
    done = subprocess.run([dcmtk("movescu"), "-v", "-S", "-aet", "MOVESCU", "-aec", scp.aet, "-aem", "TARGET",
                           "127.0.0.1", str(scp.dicom_port), str(request)], capture_output=True, text=True,
                          env=dcmtk_env(), timeout=60)
    assert "Received Final Move Response (Success)" in done.stdout + done.stderr
    seen = scp.json("/scp/state")["move"][-1]
    assert seen == {"Level": "STUDY", "PatientID": "", "AccessionNumber": "", "StudyInstanceUID": "1.2.3.4",
                    "SeriesInstanceUID": "", "SOPInstanceUID": "", "OriginatorAET": "MOVESCU",
                    "SourceAET": scp.aet, "TargetAET": "TARGET", "OriginatorID": seen["OriginatorID"]}
    query.write_text("(0008,0052) CS [STUDY]\n(0020,000d) UI [fail]\n")
    failed = subprocess.run([dcmtk("movescu"), "-v", "-S", "-aet", "MOVESCU", "-aec", scp.aet, "-aem", "TARGET",
                             "127.0.0.1", str(scp.dicom_port), str(dump2dcm(query, tmp_path / "fail.dcm"))],
                            capture_output=True, text=True, env=dcmtk_env(), timeout=60)
    assert "Received Final Move Response (Success)" not in failed.stdout + failed.stderr
    assert "move failed on purpose" in scp.log()


def test_python_scp_callbacks_answer_like_the_real_plugin(scp: Isengard, tmp_path: Path) -> None:
    if not (ORTHANC_BINARY.exists() and PYTHON_PLUGIN.exists()):
        pytest.skip("the real Orthanc or its orthanc-python plugin is not installed")
    shutil.copy(SCRIPTS / "dicom_scp.py", tmp_path / "dicom_scp.py")
    real = Orthanc(tmp_path / "real", Plugins=[str(PYTHON_PLUGIN)], PythonScript=str(tmp_path / "dicom_scp.py"),
                   WorklistsFolder=str(scp.workdir / "wl"), DicomAet=scp.aet, **OPEN).start()
    find = tmp_path / "find.dump"
    find.write_text("(0008,0052) CS [PATIENT]\n(0010,0010) PN [DOE*]\n(0010,0020) LO []\n(0010,0030) DA []\n")
    try:
        for query in [WORKLISTS / "queries" / f"wlistqry{n}.dump" for n in (0, 1, 5, 9)]:
            assert findscu(scp, query, tmp_path, "-W") == findscu(real, query, tmp_path, "-W"), query.name
        assert findscu(scp, find, tmp_path, "-P") == findscu(real, find, tmp_path, "-P")
        assert scp.json("/scp/state")["find"][-1]["keys"] == real.json("/scp/state")["find"][-1]["keys"]
    finally:
        real.stop()


def test_sample_worklist(tmp_path: Path) -> None:
    database = tmp_path / "wl"
    database.mkdir()
    for n in range(1, 11):
        dump2dcm(WORKLISTS / "database" / f"wklist{n}.dump", database / f"{n}.wl")
    server = Isengard(tmp_path / "server", PythonScript=str(SAMPLES / "worklist.py"), WorklistsFolder=str(database),
                      **OPEN).start()
    try:
        for query in (1, 5, 9):
            expected = json.loads((WORKLISTS / "expected" / f"all-{query}.json").read_text())
            answers = findscu(server, WORKLISTS / "queries" / f"wlistqry{query}.dump", tmp_path, "-W")
            assert sorted(answers) == sorted(expected)
    finally:
        server.stop()


#: ``DefaultEncoding`` -> (SpecificCharacterSet of the answers, Python codec), as the suite's test_encodings.
ENCODINGS = {"Ascii": ("ISO_IR 6", "ascii"), "Latin1": ("ISO_IR 100", "latin-1"), "Utf8": ("ISO_IR 192", "utf-8"),
             "Cyrillic": ("ISO_IR 144", "iso8859-5"), "Greek": ("ISO_IR 126", "iso8859-7"),
             "Hebrew": ("ISO_IR 138", "iso8859-8"), "Arabic": ("ISO_IR 127", "iso8859-6"),
             "Thai": ("ISO_IR 166", "tis-620"), "Latin2": ("ISO_IR 101", "iso8859-2")}


def test_folder_worklists_answer_in_the_default_encoding(worklist_server: Isengard, tmp_path: Path) -> None:
    name = "Test-éüäöòДΘĝדصķћ๛ﾈİ"
    database = Path(worklist_server.workdir / "wl")
    added = dump2dcm(WORKLISTS / "encodings" / "database.dump", database / "encodings.wl")
    query = pydicom.dcmread(dump2dcm(WORKLISTS / "encodings" / "query.dump", tmp_path / "query.dcm"))
    try:
        for encoding, (term, codec) in ENCODINGS.items():
            assert worklist_server.put("/tools/default-encoding", data=encoding).status_code == 200
            answers, final = pynetdicom_worklist(worklist_server, query)
            assert final == 0 and len(answers) == 1, encoding
            assert answers[0].SpecificCharacterSet == term
            assert str(answers[0].PatientName) == name.encode(codec, "ignore").decode(codec), encoding
    finally:
        added.unlink()
        worklist_server.put("/tools/default-encoding", data="Latin1")
