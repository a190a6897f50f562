"""Benchmark the image routes and the transcoder, Isengard against the real Orthanc.

Usage: .venv/bin/python bench/images.py [--requests N] [--repeat R] [--only isengard|orthanc]

A 512x512 16-bit CT slice (``SignedCT.dcm`` of the test data) in four syntaxes (uncompressed,
JPEG lossless, JPEG-LS, and JPEG 2000 where the server has it; the compressed ones made by
dcmtk and GDCM) is uploaded to each server in turn; then ``/preview``, ``/rendered`` and
``/frames/0/raw`` are fetched N times each (frames per second), and the uncompressed slice
is transcoded by ``POST /instances/{id}/modify`` to JPEG lossless N times (MB/s of source).
Each frames/s figure comes with the server's CPU time per request (user + system of its
process tree, in ms), which depends far less than the rate on what else the machine runs.
With ``--repeat R`` every figure is measured R times and the median is shown.
The servers never run at the same time.  JPEG 2000 needs Orthanc's GDCM plugin (Debian's
``orthanc-gdcm``): the real Orthanc loads it for the JPEG 2000 syntaxes only, so that the
other rows measure Orthanc's own decoders.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from servers import Server, cpu_seconds, make_servers

SOURCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "SignedCT.dcm"
SYNTAXES = {
    "uncompressed": None,
    "JPEG lossless": ["dcmcjpeg", "+e1"],
    "JPEG-LS": ["dcmcjpls"],
    "JPEG 2000": ["gdcmconv", "--j2k"],
}
ROUTES = ("preview", "rendered", "frames/0/raw")
GDCM_PLUGIN = "/usr/share/orthanc/plugins/libOrthancGdcm.so"
GDCM = {"Plugins": [GDCM_PLUGIN]}
#: The real Orthanc with GDCM for JPEG 2000 only (its own decoders for the rest).
ORTHANC_GDCM = {"Plugins": [GDCM_PLUGIN],
                "Gdcm": {"RestrictTransferSyntaxes": ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"]}}


def variants(workdir: Path) -> dict[str, bytes]:
    """The CT slice in each syntax, compressed by dcmtk or GDCM (independent of both servers)."""
    files = {}
    for label, command in SYNTAXES.items():
        if command is None:
            files[label] = SOURCE.read_bytes()
            continue
        if shutil.which(command[0]) is None:
            continue
        target = workdir / f"{label}.dcm"
        subprocess.run([*command, str(SOURCE), str(target)], check=True, capture_output=True)
        files[label] = target.read_bytes()
    return files


def per_second(session: requests.Session, url: str, count: int, method: str = "GET",
               body: object = None) -> float:
    start = time.perf_counter()
    for _ in range(count):
        answer = session.request(method, url, json=body, timeout=120)
        if answer.status_code != 200:
            return 0.0
    return count / (time.perf_counter() - start)


def rate_and_cpu(server: Server, session: requests.Session, url: str, count: int) -> tuple[float, float]:
    """Requests per second, and the server's CPU milliseconds per request."""
    before = cpu_seconds(server.pid)
    rate = per_second(session, url, count)
    return rate, (cpu_seconds(server.pid) - before) * 1000 / count


def measure(server: Server, files: dict[str, bytes], count: int, repeat: int) -> dict[str, float]:
    session = requests.Session()
    figures: dict[str, float] = {}
    for label, data in files.items():
        answer = session.post(server.url + "/instances", data=data, timeout=60)
        instance = answer.json()["ID"]
        for route in ROUTES:
            url = f"{server.url}/instances/{instance}/{route}"
            runs = [rate_and_cpu(server, session, url, count) for _ in range(repeat)]
            figures[f"{label} {route} (frames/s)"] = statistics.median(r[0] for r in runs)
            figures[f"{label} {route}, server CPU (ms)"] = statistics.median(r[1] for r in runs)
        session.delete(f"{server.url}/instances/{instance}")
    instance = session.post(server.url + "/instances", data=files["uncompressed"], timeout=60).json()["ID"]
    rate = statistics.median(
        per_second(session, f"{server.url}/instances/{instance}/modify", count, "POST",
                   {"Transcode": "1.2.840.10008.1.2.4.70", "Keep": ["SOPInstanceUID"], "Force": True})
        for _ in range(repeat))
    figures["transcode to JPEG lossless (MB/s)"] = rate * len(files["uncompressed"]) / 1e6
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per figure (default 50)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, the median is shown (default 1)")
    parser.add_argument("--only", choices=("isengard", "orthanc"), help="measure a single server")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = variants(root)
        results: dict[str, dict[str, float]] = {}
        for server in make_servers(root, args.only):
            if server.name.lower().startswith("isengard"):
                server.extra_config = {**server.extra_config, **GDCM}
            elif Path(GDCM_PLUGIN).exists():
                server.extra_config = {**server.extra_config, **ORTHANC_GDCM}
            server.start()
            try:
                results[server.name] = measure(server, files, args.requests, args.repeat)
            finally:
                server.stop()
    names = list(results)
    keys = list(next(iter(results.values())))
    two = len(names) == 2
    print("| figure | " + " | ".join(names) + (" | ratio | better |" if two else " |"))
    print("|---" * (len(names) + 1 + 2 * two) + "|")
    for key in keys:
        values = [results[name].get(key, 0.0) for name in names]
        ratio = ""
        if two:
            ratio = f" {values[0] / values[1]:.2f} |" if values[1] else " - |"
            ratio += " lower |" if key.endswith("(ms)") else " higher |"
        print(f"| {key} | " + " | ".join(f"{v:.1f}" for v in values) + " |" + ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
