"""Benchmark the image routes and the transcoder, Isengard against the real Orthanc.

Usage: .venv/bin/python bench/images.py [--requests N] [--repeat R] [--only isengard|orthanc]

A 512x512 16-bit CT slice (``SignedCT.dcm`` of the test data) in four syntaxes (uncompressed,
JPEG lossless, JPEG-LS, and JPEG 2000 where the server has it; the compressed ones made by
dcmtk and GDCM) is uploaded to each server; then ``/preview``, ``/rendered`` and
``/frames/0/raw`` are fetched N times each (frames per second), and the uncompressed slice
is transcoded by ``POST /instances/{id}/modify`` to JPEG lossless N times (MB/s of source).
Each frames/s figure comes with the server's CPU time per request (user + system of its
process tree, in ms), which depends far less than the rate on what else the machine runs.
With ``--repeat R`` every figure is measured R times and the median is shown.

Both servers run side by side and the requests alternate between them one at a time (never
two at once, the first server of each pair alternating too), so that both meet the same load
from the rest of the machine: measured one after the other, minutes apart, on a shared
machine, the rates of either server swung by up to 2x.  JPEG 2000 needs Orthanc's GDCM plugin (Debian's
``orthanc-gdcm``): the real Orthanc loads it for the JPEG 2000 syntaxes only, so that the
other rows measure Orthanc's own decoders.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
from scratch import scratch_folder
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


def alternate(servers: list[Server], sessions: dict[str, requests.Session], urls: dict[str, str], count: int,
              body: object = None) -> dict[str, tuple[float, float]]:
    """``count`` requests to each server, alternating: per server, the requests per second (of its
    own answering time) and its CPU milliseconds per request; (0, 0) for a server that failed."""
    elapsed = dict.fromkeys(urls, 0.0)
    failed: set[str] = set()
    cpu = {server.name: cpu_seconds(server.pid) for server in servers}
    for i in range(count):
        for server in servers if i % 2 == 0 else servers[::-1]:
            start = time.perf_counter()
            answer = sessions[server.name].request("POST" if body else "GET", urls[server.name], json=body,
                                                   timeout=120)
            elapsed[server.name] += time.perf_counter() - start
            if answer.status_code != 200:
                failed.add(server.name)
    return {server.name: (0.0, 0.0) if server.name in failed else
            (count / elapsed[server.name], (cpu_seconds(server.pid) - cpu[server.name]) * 1000 / count)
            for server in servers}


def measure(servers: list[Server], files: dict[str, bytes], count: int, repeat: int) -> dict[str, dict[str, float]]:
    sessions = {server.name: requests.Session() for server in servers}
    figures: dict[str, dict[str, float]] = {server.name: {} for server in servers}

    def upload(server: Server, data: bytes) -> str:
        return sessions[server.name].post(server.url + "/instances", data=data, timeout=60).json()["ID"]

    for label, data in files.items():
        instances = {server.name: upload(server, data) for server in servers}
        for route in ROUTES:
            urls = {server.name: f"{server.url}/instances/{instances[server.name]}/{route}" for server in servers}
            runs = [alternate(servers, sessions, urls, count) for _ in range(repeat)]
            for name in figures:
                figures[name][f"{label} {route} (frames/s)"] = statistics.median(run[name][0] for run in runs)
                figures[name][f"{label} {route}, server CPU (ms)"] = statistics.median(run[name][1] for run in runs)
        for server in servers:
            sessions[server.name].delete(f"{server.url}/instances/{instances[server.name]}")
    instances = {server.name: upload(server, files["uncompressed"]) for server in servers}
    urls = {server.name: f"{server.url}/instances/{instances[server.name]}/modify" for server in servers}
    body = {"Transcode": "1.2.840.10008.1.2.4.70", "Keep": ["SOPInstanceUID"], "Force": True}
    runs = [alternate(servers, sessions, urls, count, body) for _ in range(repeat)]
    for name in figures:
        rate = statistics.median(run[name][0] for run in runs)
        figures[name]["transcode to JPEG lossless (MB/s)"] = rate * len(files["uncompressed"]) / 1e6
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per figure (default 50)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, the median is shown (default 1)")
    parser.add_argument("--only", choices=("isengard", "orthanc"), help="measure a single server")
    args = parser.parse_args(argv)
    with scratch_folder("isengard-bench-images-") as folder:
        root = Path(folder)
        files = variants(root)
        servers = make_servers(root, args.only)
        for server in servers:
            if server.name.lower().startswith("isengard"):
                server.extra_config = {**server.extra_config, **GDCM}
            elif Path(GDCM_PLUGIN).exists():
                server.extra_config = {**server.extra_config, **ORTHANC_GDCM}
        try:
            for server in servers:
                server.start()
            results = measure(servers, files, args.requests, args.repeat)
        finally:
            for server in servers:
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
