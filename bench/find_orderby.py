"""Sorted, paged and counted finds on many studies: Isengard against the real Orthanc 1.10.1.

Isengard answers ``/tools/find`` with ``OrderBy`` + ``Limit`` and ``/tools/count-resources``
(Orthanc 1.12.5's API) in SQL.  Orthanc 1.10.1 has neither, so its closest equivalents are
measured: an unsorted ``/tools/find`` with ``Limit`` (its paging), and a ``/tools/find``
whose identifiers the client counts.  Both servers hold the same studies (one small
instance each, no pixels), ingested over REST by 8 clients.

    .venv/bin/python bench/find_orderby.py                    # 100,000 studies
    .venv/bin/python bench/find_orderby.py --studies 5000 --only isengard

Standalone like ``run.py``: it drives the servers through HTTP only.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from report import Outcome, progress
from scratch import scratch_folder
from servers import Server, exit_on_sigterm, make_servers, measure_each
from workload import time_calls

CLIENTS = 8
FIRST_DATE = datetime.date(2000, 1, 1)
#: The date range of the filtered queries: about a tenth of the studies.
RANGE_DAYS = 365


def study_file(index: int) -> bytes:
    """One study of one series of one tiny instance; dates cycle over ~27 years."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=["instance", str(index)])
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", str(index)])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", str(index)])
    ds.PatientID = f"P{index % 20000:05d}"
    ds.PatientName = f"PATIENT^{index % 20000:05d}"
    ds.StudyDate = (FIRST_DATE + datetime.timedelta(days=(index * 7919) % 10000)).strftime("%Y%m%d")
    ds.StudyDescription = f"Study {index}"
    ds.AccessionNumber = f"A{index:08d}"
    ds.Modality = "CT"
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ingest(server: Server, payloads: list[bytes]) -> float:
    """Seconds to POST every file with :data:`CLIENTS` clients."""
    def send(part: list[bytes]) -> None:
        with requests.Session() as session:
            for data in part:
                session.post(server.url + "/instances", data=data, timeout=120).raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(send, [payloads[i::CLIENTS] for i in range(CLIENTS)]))
    return time.perf_counter() - start


def post(session: requests.Session, server: Server, path: str, body: dict[str, Any]) -> Any:
    answer = session.post(server.url + path, json=body, timeout=600)
    answer.raise_for_status()
    return answer.json()


def date_range() -> str:
    end = FIRST_DATE + datetime.timedelta(days=RANGE_DAYS)
    return f"{FIRST_DATE:%Y%m%d}-{end:%Y%m%d}"


def measure(server: Server, payloads: list[bytes], results: dict[str, dict[str, str]]) -> str:
    server.start()
    progress(f"{server.name}: ingesting {len(payloads)} studies")
    seconds = ingest(server, payloads)
    session = requests.Session()
    system = session.get(server.url + "/system", timeout=10).json()
    extended = system.get("Capabilities", {}).get("HasExtendedFind", False)
    figures = {"ingest (studies/s)": f"{len(payloads) / seconds:.0f}"}
    in_range = {"Level": "Study", "Query": {"StudyDate": date_range()}}
    everything: dict[str, Any] = {"Level": "Study", "Query": {}}
    newest = [{"Type": "DicomTag", "Key": "StudyDate", "Direction": "DESC"}]
    if extended:
        queries = {
            "find OrderBy StudyDate + Limit 10 (ms)": lambda i: post(
                session, server, "/tools/find", everything | {"OrderBy": newest, "Limit": 10}),
            "find range + OrderBy + Limit 10 (ms)": lambda i: post(
                session, server, "/tools/find", in_range | {"OrderBy": newest, "Limit": 10}),
            "count all studies (ms)": lambda i: post(
                session, server, "/tools/count-resources", everything),
            "count studies in range (ms)": lambda i: post(
                session, server, "/tools/count-resources", in_range),
        }
    else:  # Orthanc 1.10.1: no ordering, and counting means listing
        queries = {
            "find OrderBy StudyDate + Limit 10 (ms)": lambda i: post(
                session, server, "/tools/find", everything | {"Limit": 10}),
            "find range + OrderBy + Limit 10 (ms)": lambda i: post(
                session, server, "/tools/find", in_range | {"Limit": 10}),
            "count all studies (ms)": lambda i: len(post(
                session, server, "/tools/find", everything)),
            "count studies in range (ms)": lambda i: len(post(
                session, server, "/tools/find", in_range)),
        }
    for name, call in queries.items():
        progress(f"{server.name}: {name}")
        latency = time_calls(call)
        figures[name] = f"{latency.median_ms:.1f} (p95 {latency.p95_ms:.1f})"
    results[server.name] = figures
    return str(system.get("Version"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--only", choices=("isengard", "orthanc"))
    options = parser.parse_args()
    exit_on_sigterm()
    progress(f"generating {options.studies} studies")
    payloads = [study_file(i) for i in range(options.studies)]
    results: dict[str, dict[str, str]] = {}
    outcome = Outcome()
    with scratch_folder("bench-find-") as root:
        servers = make_servers(Path(root), options.only, {"StableAge": 3600})
        measure_each(servers, lambda s: measure(s, payloads, results), outcome)
    names = list(results)
    print(f"{options.studies} studies; Orthanc 1.10.1 has no OrderBy nor count-resources: its "
          "rows are an unsorted find with Limit, and a find whose answer is counted")
    print("| figure | " + " | ".join(f"{n} ({outcome.versions.get(n, '?')})" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for figure in next(iter(results.values()), {}):
        print(f"| {figure} | " + " | ".join(results[n][figure] for n in names) + " |")
    for warning in outcome.warnings:
        print("WARNING:", warning, file=sys.stderr)
    return 1 if outcome.warnings else 0


if __name__ == "__main__":
    sys.exit(main())
