"""Benchmark the transfers accelerator against plain peer store, server to server.

Usage: .venv/bin/python bench/transfers.py [--small N] [--large M] [--repeat R] [--json out.json]

Two studies are generated with pydicom: N small CT slices (128x128, ~34 KB each, default
1000) and M large ones (1024x512, ~1 MB each, default 200).  Each is uploaded to a sender,
then moved to an empty receiver (a fresh process each run), timed from the request to the
job's ``Success`` as a client sees it:

* Isengard -> Isengard: ``POST /peers/{p}/store`` (synchronous), ``/transfers/send`` (push,
  gzip and none), and ``/transfers/pull`` on the receiver;
* Orthanc -> Orthanc (the real Orthanc 1.10.1, no transfers plugin here): ``/peers/{p}/store``,
  for reference.

Every run is checked (the receiver holds the study's instance count).  Figures are the
median of R runs (default 1), in instances per second and MB per second.  Like the other
scripts here it imports nothing from ``server/`` and drives the servers over HTTP only.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from scratch import scratch_folder
from servers import ORTHANC_BINARY, Isengard, Orthanc, Server, exit_on_sigterm

POLL_SECONDS = 0.01
TIMEOUT = 1800


def study_files(count: int, rows: int, columns: int) -> list[bytes]:
    """``count`` CT slices of one series, each with its own pixels."""
    study, series = generate_uid(), generate_uid()
    files = []
    for number in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.PatientName, ds.Modality = "BENCH", "Bench^Transfers", "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, series, number + 1
        ds.Rows, ds.Columns = rows, columns
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = bytes(((number * 7 + i) * 13) % 4096 >> 4 for i in range(256)) * (rows * columns * 2 // 256)
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        files.append(out.getvalue())
    return files


def upload(server: Server, files: list[bytes]) -> str:
    """Store the files on ``server`` (4 clients); the study's Orthanc ID."""
    session = requests.Session()

    def post(data: bytes) -> dict[str, Any]:
        answer = session.post(server.url + "/instances", data=data, timeout=120)
        answer.raise_for_status()
        return answer.json()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, files))
    return answers[0]["ParentStudy"]


def wait_job(server: Server, job: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        document = requests.get(f"{server.url}/jobs/{job}", timeout=60).json()
        if document["State"] == "Success":
            return
        if document["State"] == "Failure":
            raise RuntimeError(f"job {job} failed: {document}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"job {job} did not finish")


def post(server: Server, path: str, body: Any) -> Any:
    answer = requests.post(server.url + path, data=json.dumps(body), timeout=TIMEOUT)
    if answer.status_code != 200:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text}")
    return answer.json()


def peer_store(sender: Server, receiver: Server, study: str) -> None:
    post(sender, "/peers/receiver/store", {"Resources": [study], "Synchronous": True})


def push(compression: str) -> Callable[[Server, Server, str], None]:
    def run(sender: Server, receiver: Server, study: str) -> None:
        job = post(sender, "/transfers/send", {"Resources": [{"Level": "Study", "ID": study}],
                                               "Peer": "receiver", "Compression": compression})
        wait_job(sender, job["ID"])
    return run


def pull(sender: Server, receiver: Server, study: str) -> None:
    job = post(receiver, "/transfers/pull", {"Resources": [{"Level": "Study", "ID": study}],
                                             "Peer": "sender", "Compression": "none"})
    wait_job(receiver, job["ID"])


def measure(kind: type[Server], root: Path, files: list[bytes], methods: dict[str, Callable[..., None]],
            repeat: int) -> dict[str, float]:
    """Seconds per method (median of ``repeat`` runs), each run to an empty receiver."""
    sender = kind("sender", root / "sender", "SENDER")
    receiver = kind("receiver", root / "receiver", "RECEIVER")
    sender.extra_config = {"OrthancPeers": {"receiver": [receiver.url + "/"]}}
    receiver.extra_config = {"OrthancPeers": {"sender": [sender.url + "/"]}}
    figures: dict[str, float] = {}
    try:
        sender.start()
        study = upload(sender, files)
        for name, method in methods.items():
            times = []
            for _ in range(repeat):
                receiver.restart_empty()
                started = time.monotonic()
                method(sender, receiver, study)
                times.append(time.monotonic() - started)
                count = len(requests.get(receiver.url + "/instances", timeout=60).json())
                if count != len(files):
                    raise RuntimeError(f"{name}: the receiver holds {count} of {len(files)} instances")
            figures[name] = statistics.median(times)
            print(f"  {kind.__name__} {name}: {figures[name]:.2f} s", file=sys.stderr)
    finally:
        sender.stop()
        receiver.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    exit_on_sigterm()
    isengard_methods = {"peer store": peer_store, "transfers push (none)": push("none"),
                        "transfers push (gzip)": push("gzip"), "transfers pull": pull}
    results: dict[str, dict[str, Any]] = {}
    with scratch_folder("bench-transfers-") as scratch:
        for label, count, rows, columns in (("small", args.small, 128, 128), ("large", args.large, 1024, 512)):
            if count <= 0:
                continue
            print(f"{label}: generating {count} instances", file=sys.stderr)
            files = study_files(count, rows, columns)
            size = sum(len(f) for f in files) / 1024 / 1024
            figures = {f"Isengard {k}": v for k, v in
                       measure(Isengard, Path(scratch) / label / "isengard", files, isengard_methods,
                               args.repeat).items()}
            if ORTHANC_BINARY.exists():
                figures["Orthanc peer store"] = measure(Orthanc, Path(scratch) / label / "orthanc", files,
                                                        {"peer store": peer_store}, args.repeat)["peer store"]
            results[label] = {"instances": count, "megabytes": round(size, 1), "seconds": figures}
    for label, result in results.items():
        print(f"\n{label}: {result['instances']} instances, {result['megabytes']} MB")
        print(f"{'method':<38} {'seconds':>8} {'inst/s':>8} {'MB/s':>8}")
        for name, seconds in result["seconds"].items():
            print(f"{name:<38} {seconds:>8.2f} {result['instances'] / seconds:>8.1f} "
                  f"{result['megabytes'] / seconds:>8.1f}")
        base = result["seconds"].get("Isengard peer store")
        push_none = result["seconds"].get("Isengard transfers push (none)")
        if base and push_none:
            print(f"transfers push (none) vs Isengard peer store: x{base / push_none:.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
