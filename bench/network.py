"""Benchmark the DICOM network services: C-FIND and C-ECHO latency, C-MOVE and C-GET throughput,
Isengard against Orthanc.

Usage: .venv/bin/python bench/network.py [--studies N] [--move M] [--only isengard|orthanc]
                                         [--repeat R] [--retrieve-only] [--json out.json]

Each server in turn (never both at once) gets N single-instance studies (N/10 patients of
10 studies, small uncompressed CT slices), a modality for the benchmark's own SCU and one for
the C-MOVE destination (dcmtk's ``storescp --ignore``, which receives and discards).  Then:

* C-FIND latency, on one open association (pynetdicom), median and p95 of 50 calls after a
  warm-up: a study by StudyInstanceUID (a different one each call), the studies of ten patients
  by a PatientName wildcard, and a StudyDate range returning 10 % of the studies with the
  NumberOfStudyRelatedInstances and ModalitiesInStudy counters;
* C-MOVE throughput: all the studies of M/10 patients (M instances) moved to the destination
  in one request, wall time from the request to the final response, median of R runs;
* C-GET throughput: the same instances retrieved to the benchmark's own SCU (C-STORE
  sub-operations on the same association, answered at once), median of R runs;
* the server's CPU time per instance moved and retrieved (its process tree, user + system),
  median of the same runs (``--retrieve-only`` measures C-MOVE and C-GET alone);
* C-ECHO latency: on one open association (median of 50), and dcmtk's ``echoscu`` from process
  start to exit (median of 10).

Every answer is counted against what the data says; a wrong answer becomes a WARNING line and
exit status 1.  See bench/README.md for how to read ratios.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from report import Metric, Outcome, table
from scratch import scratch_folder
from servers import Server, cpu_seconds, exit_on_sigterm, free_port, make_servers, measure_each
from workload import WrongAnswer, post_all, time_calls

STUDIES_PER_PATIENT = 10
SCU_AET = "BENCHSCU"
DESTINATION_AET = "DEST"
ROOT_UID = "1.2.826.0.1.3680043.10.1049"
FIRST_DATE = datetime.date(2020, 1, 1)


@dataclass(frozen=True)
class Study:
    patient: int
    number: int

    @property
    def patient_id(self) -> str:
        return f"P{self.patient:04d}"

    @property
    def uid(self) -> str:
        return f"{ROOT_UID}.{self.patient}.{self.number}"

    @property
    def date(self) -> str:
        day = FIRST_DATE + datetime.timedelta(days=self.patient * STUDIES_PER_PATIENT + self.number)
        return day.strftime("%Y%m%d")


def make_studies(count: int) -> list[Study]:
    return [Study(i // STUDIES_PER_PATIENT, i % STUDIES_PER_PATIENT) for i in range(count)]


def instance(study: Study) -> bytes:
    """One 64x64 16-bit CT slice, alone in its study and series."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"{study.uid}.1.1"
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = f"{study.uid}.1"
    ds.PatientID = study.patient_id
    ds.PatientName = f"BENCH^P{study.patient:04d}"
    ds.StudyDate = ds.SeriesDate = study.date
    ds.StudyDescription = "NETWORK BENCH"
    ds.AccessionNumber = f"A{study.patient:04d}{study.number}"
    ds.Modality = "CT"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((study.patient + study.number + i) % 256 for i in range(64 * 64 * 2))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="C-FIND latency and C-MOVE throughput, Isengard and Orthanc.")
    parser.add_argument("--studies", type=int, default=1000, help="studies stored (default 1000)")
    parser.add_argument("--move", type=int, default=500, help="instances moved per C-MOVE (default 500)")
    parser.add_argument("--only", choices=("isengard", "orthanc"), help="measure a single server")
    parser.add_argument("--repeat", type=int, default=3, help="C-MOVE runs, the median is reported")
    parser.add_argument("--retrieve-only", action="store_true", help="measure C-MOVE and C-GET only")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    arguments = parser.parse_args(argv)
    if arguments.studies < 100 or not 10 <= arguments.move <= arguments.studies:
        parser.error("--studies must be at least 100 and --move between 10 and --studies")
    return arguments


def _no_delay(event: evt.Event) -> None:
    """Without TCP_NODELAY, every answer waits ~40 ms for a delayed ACK: that would measure TCP."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


HANDLERS = [(evt.EVT_CONN_OPEN, _no_delay)]


def find(assoc: Association, keys: dict[str, str]) -> list[Dataset]:
    identifier = Dataset()
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    answers, final = [], None
    for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if "Status" not in status:
            raise WrongAnswer("C-FIND: the association was lost")
        if status.Status in (0xFF00, 0xFF01):
            answers.append(answer)
        else:
            final = status.Status
    if final != 0:
        raise WrongAnswer(f"C-FIND ended with status {final}")
    return answers


def expect(what: str, count: int, expected: int, warnings: list[str], server: Server) -> None:
    if count != expected:
        warnings.append(f"{server.name}: {what} returned {count} answers, expected {expected}")


def measure_find(server: Server, studies: list[Study], warnings: list[str]) -> dict[str, float]:
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet, evt_handlers=HANDLERS)
    if not assoc.is_established:
        raise WrongAnswer(f"{server.name} refused the C-FIND association")
    ten_percent = studies[: len(studies) // 10]
    cases = {
        "uid": (lambda i: {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": studies[i * 7 % len(studies)].uid,
                           "PatientID": ""}, 1),
        "wildcard": (lambda i: {"QueryRetrieveLevel": "STUDY", "PatientName": "BENCH^P000*",
                                "StudyInstanceUID": ""}, min(100, len(studies))),
        "range": (lambda i: {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "", "StudyDate":
                             f"{ten_percent[0].date}-{ten_percent[-1].date}", "NumberOfStudyRelatedInstances": "",
                             "ModalitiesInStudy": ""}, len(ten_percent)),
    }
    figures: dict[str, float] = {}
    try:
        for key, (keys, expected) in cases.items():
            expect(f"C-FIND {key}", len(find(assoc, keys(0))), expected, warnings, server)
            latency = time_calls(lambda i, keys=keys: find(assoc, keys(i)))
            figures[f"find_{key}_median_ms"] = latency.median_ms
            figures[f"find_{key}_p95_ms"] = latency.p95_ms
    finally:
        assoc.release()
    return figures


def patients_identifier(patients: list[str]) -> Dataset:
    """The C-MOVE / C-GET identifier naming ``patients``."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "PATIENT"
    identifier.PatientID = "\\".join(patients)
    return identifier


def retrieve_once(server: Server, what: str, ae: AE, send: Callable[[Association], Iterator[Any]],
                  **options: Any) -> float:
    """Seconds of one retrieve (``send`` on a new association of ``ae`` with ``server``)."""
    ae.dimse_timeout = ae.network_timeout = 600
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet,
                         **{"evt_handlers": HANDLERS, **options})
    if not assoc.is_established:
        raise WrongAnswer(f"{server.name} refused the {what} association")
    started = time.perf_counter()
    try:
        for _ in send(assoc):
            pass
    finally:
        elapsed = time.perf_counter() - started
        assoc.release()
    return elapsed


def move_once(server: Server, patients: list[str]) -> tuple[float, int]:
    """(seconds, completed sub-operations) of one C-MOVE of ``patients`` to the destination."""
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
    completed = [0]

    def send(assoc: Association) -> Iterator[Any]:
        for status, _ in assoc.send_c_move(patients_identifier(patients), DESTINATION_AET,
                                           PatientRootQueryRetrieveInformationModelMove):
            if "Status" in status and status.Status not in (0xFF00, 0xFF01):
                completed[0] = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
            yield status

    return retrieve_once(server, "C-MOVE", ae, send), completed[0]


def get_once(server: Server, patients: list[str]) -> tuple[float, int]:
    """(seconds, instances received) of one C-GET of ``patients`` (storage on the same association)."""
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid, role.scu_role, role.scp_role = CTImageStorage, False, True
    received = [0]

    def on_store(event: evt.Event) -> int:
        received[0] += 1
        return 0x0000

    seconds = retrieve_once(
        server, "C-GET", ae,
        lambda assoc: assoc.send_c_get(patients_identifier(patients), PatientRootQueryRetrieveInformationModelGet),
        ext_neg=[role], evt_handlers=[*HANDLERS, (evt.EVT_C_STORE, on_store)])
    return seconds, received[0]


def echo_latency(server: Server) -> dict[str, float]:
    """C-ECHO: on one open association, and dcmtk's echoscu from process start to exit (the
    association's set-up and release included, as a monitoring probe would see it)."""
    ae = AE(ae_title=SCU_AET)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet, evt_handlers=HANDLERS)
    if not assoc.is_established:
        raise WrongAnswer(f"{server.name} refused the C-ECHO association")
    try:
        latency = time_calls(lambda i: assoc.send_c_echo())
    finally:
        assoc.release()
    walls = []
    for _ in range(10):
        started = time.perf_counter()
        subprocess.run(["echoscu", "-aet", SCU_AET, "-aec", server.aet, "127.0.0.1", str(server.dicom_port)],
                       check=True, capture_output=True, env={**os.environ, "TCP_NODELAY": "1"}, timeout=30)
        walls.append(time.perf_counter() - started)
    return {"echo_median_ms": latency.median_ms, "echoscu_ms": 1000 * statistics.median(walls)}


def measure(server: Server, studies: list[Study], payloads: list[bytes], arguments: argparse.Namespace,
            destination_port: int, warnings: list[str]) -> tuple[str, dict[str, float]]:
    server.start()
    session = requests.Session()
    for name, params in (("bench", [SCU_AET, "127.0.0.1", 1]),
                         ("dest", [DESTINATION_AET, "127.0.0.1", destination_port])):
        answer = session.put(f"{server.url}/modalities/{name}", data=json.dumps(params), timeout=30)
        answer.raise_for_status()
    print(f"{server.name}: storing {len(payloads)} studies", file=sys.stderr)
    post_all(server, payloads)
    figures = {} if arguments.retrieve_only else measure_find(server, studies, warnings)
    patients = sorted({s.patient_id for s in studies[: arguments.move]})
    for key, what, once in (("move", "C-MOVE", move_once), ("get", "C-GET", get_once)):
        runs, cpu = [], []
        for _ in range(arguments.repeat):
            cpu_before = cpu_seconds(server.pid)
            seconds, count = once(server, patients)
            cpu.append(1000 * (cpu_seconds(server.pid) - cpu_before) / arguments.move)
            expect(what, count, arguments.move, warnings, server)
            runs.append(arguments.move / seconds)
        figures[f"{key}_ips"] = statistics.median(runs)
        figures[f"{key}_cpu_ms"] = statistics.median(cpu)
    if not arguments.retrieve_only:
        figures.update(echo_latency(server))
    version = session.get(f"{server.url}/system", timeout=30).json()
    return version.get("IsengardVersion", version.get("Version", "?")), figures


LABELS = [("find_uid", "C-FIND study by StudyInstanceUID"), ("find_wildcard", "C-FIND PatientName wildcard"),
          ("find_range", "C-FIND StudyDate range + counters")]


def metrics(move: int) -> list[Metric]:
    """The latencies of every C-FIND, then the C-MOVE throughput."""
    return [*(Metric(f"{key}_{stat}_ms", f"{label} {stat} (ms)", False) for key, label in LABELS
              for stat in ("median", "p95")),
            Metric("move_ips", f"C-MOVE of {move} instances (inst/s)", True),
            Metric("get_ips", f"C-GET of {move} instances (inst/s)", True),
            Metric("move_cpu_ms", "C-MOVE: server CPU per instance (ms)", False),
            Metric("get_cpu_ms", "C-GET: server CPU per instance (ms)", False),
            Metric("echo_median_ms", "C-ECHO on an open association, median (ms)", False),
            Metric("echoscu_ms", "C-ECHO by echoscu, process start to exit, median (ms)", False)]


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    exit_on_sigterm()
    studies = make_studies(arguments.studies)
    payloads = [instance(s) for s in studies]
    outcome = Outcome()
    destination_port = free_port()

    def measure_server(server: Server) -> str:
        """Measure ``server``; its figures count only when every phase ran."""
        version, outcome.results[server.name] = measure(server, studies, payloads, arguments, destination_port,
                                                        outcome.warnings)
        return version

    destination = subprocess.Popen(["storescp", "--ignore", "--aetitle", DESTINATION_AET, str(destination_port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})
    try:
        with scratch_folder("isengard-bench-network-") as scratch:
            measure_each(make_servers(Path(scratch), arguments.only), measure_server, outcome)
    finally:
        destination.terminate()
        destination.wait(timeout=10)
    text = table(outcome.results, metrics(arguments.move), [f"{arguments.studies} studies; ratio = Isengard / Orthanc"])
    return outcome.finish(text, arguments.json, {"studies": arguments.studies, "move": arguments.move})


if __name__ == "__main__":
    sys.exit(main())
