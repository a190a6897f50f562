"""``AcceptedSopClasses`` / ``RejectedSopClasses`` (Orthanc 1.12.6): which storage SOP classes
the C-STORE SCP accepts, seen by dcmtk's storescu and pynetdicom, and
``GET /tools/accepted-sop-classes``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pydicom
from pynetdicom import AE, build_context

from conftest import REPO, Isengard, dcmtk, dcmtk_env, sample
from server.net.sop_classes import accepted_sop_classes

CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
CR = "1.2.840.10008.5.1.4.1.1.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
PRIVATE = "1.2.276.0.19.55.1.5.1.1.1"  # tests/data/UnknownSopClassUid.dcm
CT_FILE = "2019-06-17-VedranZdesic.dcm"
CR_FILE = "HierarchicalAnonymization/2019-03-28/CR000000.dcm"
PRIVATE_FILE = "UnknownSopClassUid.dcm"
IMPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


def test_selection_rules() -> None:
    known = [CT, ENHANCED_CT, CR, MR]
    assert accepted_sop_classes([], [], known) == known
    # wildcards select among the known classes only; a plain UID is taken as is
    assert accepted_sop_classes(["1.2.840.10008.5.1.4.1.1.?", "9.9", "1.2.*"], [], known) == \
        [CT, CR, MR, "9.9", ENHANCED_CT]
    assert accepted_sop_classes(["*"], ["*.1.2*", "1.2.840.10008.5.1.4.1.1.4"], known) == [CR]
    assert accepted_sop_classes([], ["7.7", "1.2.840.10008.5.1.4.1.1.1"], known) == [CT, ENHANCED_CT, MR]
    assert accepted_sop_classes(["9.9"], ["9.9"], known) == []


def _storescu(server: Isengard, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([dcmtk("storescu"), "-aec", server.aet, "127.0.0.1", str(server.dicom_port),
                           str(sample(name))], capture_output=True, text=True, timeout=60, env=dcmtk_env())


def _negotiate(server: Isengard, *classes: str) -> dict[str, Any]:
    """The proposed classes the server accepted (abstract syntax -> its context)."""
    ae = AE(ae_title="PYNETDICOM")
    contexts = [build_context(uid, [EXPLICIT_LITTLE_ENDIAN, IMPLICIT_LITTLE_ENDIAN]) for uid in classes]
    assoc = ae.associate("127.0.0.1", server.dicom_port, contexts, ae_title=server.aet)
    assert assoc.is_established
    try:
        return {str(cx.abstract_syntax): cx for cx in assoc.accepted_contexts}
    finally:
        assoc.release()


def _send(server: Isengard, name: str) -> int | None:
    """C-STORE of a test file by pynetdicom; the DIMSE status, None when no context took it."""
    dataset = pydicom.dcmread(sample(name))
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(str(dataset.SOPClassUID), str(dataset.file_meta.TransferSyntaxUID))
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    try:
        if not assoc.accepted_contexts:
            return None
        status = assoc.send_c_store(dataset)
        return int(status.Status) if "Status" in status else None
    finally:
        assoc.release()


def test_default_accepts_every_known_storage_class(isengard: Isengard) -> None:
    classes = isengard.json("/tools/accepted-sop-classes")
    assert classes == sorted(classes)
    assert {CT, ENHANCED_CT, CR, MR} <= set(classes)
    assert PRIVATE not in classes
    assert len(classes) > 150


def test_accepted_and_rejected_classes_govern_the_contexts(make_isengard: Any) -> None:
    server = make_isengard(AcceptedSopClasses=["1.2.840.10008.5.1.4.1.1.*", PRIVATE],
                           RejectedSopClasses=[CT, "1.2.840.10008.5.1.4.1.1.4*"])
    classes = server.json("/tools/accepted-sop-classes")
    assert classes == sorted(classes)
    assert {CR, ENHANCED_CT, PRIVATE} <= set(classes)
    assert not {CT, MR, ENHANCED_MR} & set(classes)
    assert all(uid.startswith("1.2.840.10008.5.1.4.1.1.") for uid in classes if uid != PRIVATE)

    accepted = _negotiate(server, CT, CR, MR, ENHANCED_CT, PRIVATE)
    assert set(accepted) == {CR, ENHANCED_CT, PRIVATE}

    refused = _storescu(server, CT_FILE)
    assert refused.returncode != 0
    assert server.json("/instances") == []
    stored = _storescu(server, CR_FILE)
    assert stored.returncode == 0, stored.stderr
    assert _send(server, PRIVATE_FILE) == 0
    assert len(server.json("/instances")) == 2


def test_only_the_listed_classes_and_the_misspelled_option(make_isengard: Any) -> None:
    server = make_isengard(AcceptedSopClasses=[MR, CR], RejectSopClasses=[CR])
    assert server.json("/tools/accepted-sop-classes") == [MR]
    assert set(_negotiate(server, CT, CR, MR)) == {MR}


def test_promiscuous_mode_keeps_rejected_known_classes_out(make_isengard: Any) -> None:
    server = make_isengard(UnknownSopClassAccepted=True, RejectedSopClasses=[CT])
    assert _send(server, PRIVATE_FILE) == 0
    assert _send(server, CT_FILE) != 0
    assert len(server.json("/instances")) == 1


def test_bad_entries_are_refused_at_start_up(tmp_path: Path) -> None:
    server = Isengard(tmp_path, AcceptedSopClasses=["CT Image Storage"])
    result = subprocess.run([sys.executable, "-m", "server", str(server.config_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert '"AcceptedSopClasses' in result.stderr
    assert "expected a SOP class UID" in result.stderr
