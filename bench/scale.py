"""Ingest at scale: is the rate flat up to 200,000 instances, and does /tools/find stay fast?

Usage: .venv/bin/python bench/scale.py [--instances 200000] [--clients 4] [--only isengard|orthanc]
                                       [--json out.json]

Each server in turn gets N small instances (~2 KB: a CT header without pixels, 10 instances per
series, one series per study, 5 studies per patient) over REST by C clients, with its default
SQLite index.  The rate (instances/s, wall clock) and the server's CPU per instance are taken on
each tenth of the run; the figures compare the last tenth with the first.  `/tools/find` of one
study by PatientName (an exact name, case ignored as by default) and by a PatientName prefix
(``NAME0001*``) are timed after the first 1,000 instances (not counted in the tenths) and at
the end (median of 20 calls).

Orthanc gets the time Isengard took (or --time-limit): it is measured as far as it gets.
Instances are generated from one template by replacing fixed-width UIDs in its bytes, so that
the client costs next to nothing.
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from report import Metric, Outcome, progress, table
from scratch import scratch_folder
from servers import Server, cpu_seconds, exit_on_sigterm, make_servers
from workload import WrongAnswer

ROOT = "1.2.826.0.1.3680043.10.1049.7"
PER_SERIES, PER_PATIENT = 10, 5
TENTHS = 10


def template() -> tuple[bytes, dict[str, int]]:
    """A ~2 KB DICOM file whose identifiers are fixed-width placeholders, and where each is."""
    # digits, so that the UIDs are valid; no other value of the file holds these runs
    placeholders = {"patient": "P" * 8, "name": "N" * 8, "study": "901234567891", "series": "902345678912",
                    "sop": "903456789123"}
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = f"{ROOT}.3.{placeholders['sop']}"
    ds.StudyInstanceUID = f"{ROOT}.1.{placeholders['study']}"
    ds.SeriesInstanceUID = f"{ROOT}.2.{placeholders['series']}"
    ds.PatientID = placeholders["patient"]
    ds.PatientName = f"NAME{placeholders['name']}^SCALE"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyDescription = "20260101", "120000", "Scale test study"
    ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = "ACC1", "1", "Doctor^Who"
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = "CT", "1", "Scale test series"
    ds.InstanceNumber, ds.ImageType = "1", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Manufacturer, ds.InstitutionName, ds.BodyPartExamined = "Isengard", "Bench", "CHEST"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    ds.SliceThickness, ds.PixelSpacing, ds.KVP = "1.0", [0.5, 0.5], "120"
    ds.ImageComments = "x" * 1200      # the rest of the ~2 KB of a small header
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data, {key: value for key, value in placeholders.items()}


def instances(count: int) -> Iterator[bytes]:
    """The N files: the template with each placeholder replaced by a number of the same width."""
    data, placeholders = template()
    for number in range(count):
        series = number // PER_SERIES
        patient = series // PER_PATIENT
        values = {"patient": f"{patient:08d}", "name": f"{patient:08d}", "study": f"9{series:011d}",
                  "series": f"9{series:011d}", "sop": f"9{number:011d}"}
        file = data
        for key, placeholder in placeholders.items():
            file = file.replace(placeholder.encode(), values[key].encode())
        yield file


def find_latency(session: requests.Session, server: Server, body: dict) -> float:
    """Median of 20 calls, ms; the answer must name exactly the expected number of studies."""
    times = []
    for _ in range(20):
        start = time.perf_counter()
        answer = session.post(server.url + "/tools/find", json=body, timeout=120)
        times.append(time.perf_counter() - start)
        if answer.status_code != 200 or len(answer.json()) != PER_PATIENT:
            raise WrongAnswer(f"{server.name}: find {body} answered {answer.status_code} {answer.text[:200]}")
    return 1000 * statistics.median(times)


EXACT = {"Level": "Study", "Query": {"PatientName": "name00000000^scale"}}
PREFIX = {"Level": "Study", "Query": {"PatientName": "NAME00000000*"}}


def finds(server: Server) -> dict[str, float]:
    with requests.Session() as session:
        return {"exact": find_latency(session, server, EXACT), "prefix": find_latency(session, server, PREFIX)}


def send(server: Server, source: Iterator[bytes], clients: int, deadline: float | None,
         on_tenth: int, marks: list[tuple[int, float, float]]) -> int:
    """POST what ``source`` yields with ``clients`` sessions until it ends or ``deadline``; a mark
    (count, time, server CPU) every ``on_tenth`` instances.  Answers the number sent."""
    lock, sent = threading.Lock(), [0]
    errors: list[Exception] = []

    def work() -> None:
        with requests.Session() as session:
            while not errors and (deadline is None or time.perf_counter() < deadline):
                with lock:
                    data = next(source, None)
                if data is None:
                    return
                try:
                    answer = session.post(server.url + "/instances", data=data, timeout=120)
                    if answer.status_code != 200:
                        raise WrongAnswer(f"{server.name}: POST /instances answered {answer.status_code}")
                except (WrongAnswer, requests.RequestException) as error:
                    errors.append(error)
                    return
                with lock:
                    sent[0] += 1
                    done = sent[0]
                if on_tenth and done % on_tenth == 0:
                    marks.append((done, time.perf_counter(), cpu_seconds(server.pid)))
                    progress(f"  {server.name}: {done} instances")

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sent[0]


def ingest(server: Server, count: int, clients: int, time_limit: float | None) -> dict[str, float]:
    """1,000 instances first (not counted) and the finds, then the rest in tenths, then the finds."""
    source = instances(count)
    warm = send(server, itertools.islice(source, 1000), clients, None, 0, [])
    early = finds(server)
    rest = count - warm
    started = time.perf_counter()
    marks = [(0, started, cpu_seconds(server.pid))]
    deadline = started + time_limit if time_limit is not None else None
    sent = send(server, source, clients, deadline, max(1, rest // TENTHS), marks)
    figures = {"instances": float(warm + sent), "seconds": time.perf_counter() - started}
    if len(marks) >= 3:
        (n0, t0, c0), (n1, t1, c1) = marks[0], marks[1]
        (n8, t8, c8), (n9, t9, c9) = marks[-2], marks[-1]
        figures.update({
            "first_rate": (n1 - n0) / (t1 - t0), "last_rate": (n9 - n8) / (t9 - t8),
            "first_cpu_ms": 1000 * (c1 - c0) / (n1 - n0), "last_cpu_ms": 1000 * (c9 - c8) / (n9 - n8)})
        figures["rate_kept"] = figures["last_rate"] / figures["first_rate"]
    late = finds(server)
    figures.update({"find_exact_1k": early["exact"], "find_exact_end": late["exact"],
                    "find_prefix_1k": early["prefix"], "find_prefix_end": late["prefix"]})
    return figures


METRICS = [
    Metric("instances", "instances stored", True),
    Metric("seconds", "ingest time (s)", False),
    Metric("first_rate", "rate over the first tenth (inst/s)", True),
    Metric("last_rate", "rate over the last tenth (inst/s)", True),
    Metric("rate_kept", "last tenth / first tenth", True),
    Metric("first_cpu_ms", "server CPU per instance, first tenth (ms)", False),
    Metric("last_cpu_ms", "server CPU per instance, last tenth (ms)", False),
    Metric("find_exact_1k", "find PatientName exact at 1,000 (ms)", False),
    Metric("find_exact_end", "find PatientName exact at the end (ms)", False),
    Metric("find_prefix_1k", "find PatientName prefix* at 1,000 (ms)", False),
    Metric("find_prefix_end", "find PatientName prefix* at the end (ms)", False),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--only", choices=["isengard", "orthanc"])
    parser.add_argument("--time-limit", type=float, help="seconds each server gets (default: Isengard's time)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    exit_on_sigterm()
    outcome = Outcome()
    with scratch_folder("isengard-scale-") as root:
        limit = args.time_limit
        for server in make_servers(Path(root), args.only):
            try:
                progress(f"{server.name}: {args.instances} instances, {args.clients} clients")
                server.start()
                outcome.versions[server.name] = requests.get(server.url + "/system", timeout=10).json()["Version"]
                outcome.results[server.name] = ingest(server, args.instances, args.clients, limit)
                if limit is None and server.name == "isengard":
                    limit = outcome.results[server.name]["seconds"]
            except (RuntimeError, OSError, requests.RequestException) as error:
                outcome.warnings.append(f"{server.name} failed: {error}\n{server.log_tail()}")
            finally:
                server.stop()
    text = table(outcome.results, METRICS, [
        f"{args.instances} small instances over REST, {args.clients} clients, SQLite index; "
        f"Isengard {outcome.versions.get('isengard', '-')}, Orthanc {outcome.versions.get('orthanc', '-')} "
        "(Orthanc gets Isengard's time)", ""])
    return outcome.finish(text, args.json, vars(args) | {"json": str(args.json)}, METRICS)


if __name__ == "__main__":
    sys.exit(main())
