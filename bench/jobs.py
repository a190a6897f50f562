"""Benchmark the jobs engine with Archive jobs, Isengard against the real Orthanc.

Usage: .venv/bin/python bench/jobs.py [--instances N] [--jobs J] [--only isengard|orthanc]
                                      [--json out.json] [--repeat R] [--seed S]

The N synthetic CT slices of ``dataset.py`` (5 patients) are uploaded to each server in turn, then:

* one asynchronous archive of all N instances (``POST /tools/create-archive`` with every
  patient), from submission to ``Success`` (the client polls ``/jobs/{id}`` every 5 ms), and
  the size of its ZIP against the instances' (Isengard's ``ZipCompressionLevel`` trades one
  for the other);
* J small asynchronous archive jobs (one instance each) submitted back to back, then awaited:
  jobs per second from the first submission to the last ``Success``, and server CPU per job;
* the latency of one small job from submission to ``Success``, jobs run one at a time.

Each figure is the median of R runs; every run is checked (state, InstancesCount, and the
downloaded ZIP of the large archive).  Both servers get ``JobsHistorySize`` = J + 100 so that
no awaited job leaves the history.  Like ``run.py``, the two servers never run at the same
time.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from dataset import generate
from report import Metric, Outcome, Results, heading, progress, table
from scratch import scratch_folder
from servers import Server, cpu_seconds, exit_on_sigterm, make_servers, measure_each
from workload import WrongAnswer, get_json, ingest_rest, post_json

POLL_SECONDS = 0.005
JOB_TIMEOUT = 600.0
LATENCY_JOBS = 20
UPLOAD_CLIENTS = 4


METRICS = (
    Metric("archive_s", "archive of N instances, submit to Success (s)", False),
    Metric("archive_mbps", "archive of N instances, uncompressed MB/s", True),
    Metric("archive_cpu_ms", "archive of N instances, server CPU per instance (ms)", False),
    Metric("archive_ratio", "archive of N instances, ZIP size / uncompressed size", False),
    Metric("small_jobs_per_s", "J small archive jobs, throughput (jobs/s)", True),
    Metric("small_cpu_ms", "J small archive jobs, server CPU per job (ms)", False),
    Metric("small_latency_ms", "one small archive job, submit to Success, median (ms)", False),
)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Archive jobs on Isengard and the real Orthanc; prints ratios.")
    parser.add_argument("--instances", type=int, default=500, help="instances in the large archive (default 500)")
    parser.add_argument("--jobs", type=int, default=200, help="small archive jobs per run (default 200)")
    parser.add_argument("--only", choices=("isengard", "orthanc"), help="measure a single server")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase, the median is reported (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic dataset (default 1)")
    arguments = parser.parse_args(argv)
    if arguments.instances < 1 or arguments.jobs < 1 or arguments.repeat < 1:
        parser.error("--instances, --jobs and --repeat must be at least 1")
    return arguments


def submit(session: requests.Session, server: Server, resources: list[str]) -> str:
    return post_json(session, server, "/tools/create-archive", {"Resources": resources, "Asynchronous": True})["ID"]


def wait_success(session: requests.Session, server: Server, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        document = get_json(session, server, f"/jobs/{job}")
        if document["State"] == "Success":
            return document
        if document["State"] == "Failure":
            raise WrongAnswer(f"{server.name}: job {job} failed: {document}")
        time.sleep(POLL_SECONDS)
    raise WrongAnswer(f"{server.name}: job {job} did not finish within {JOB_TIMEOUT} s")


def large_archive(session: requests.Session, server: Server, patients: list[str], count: int) -> dict[str, float]:
    cpu_before, start = cpu_seconds(server.pid), time.perf_counter()
    document = wait_success(session, server, submit(session, server, patients))
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server.pid) - cpu_before
    content = document["Content"]
    if content["InstancesCount"] != count:
        raise WrongAnswer(f"{server.name}: the archive holds {content['InstancesCount']} instances, not {count}")
    archive = session.get(f"{server.url}/jobs/{document['ID']}/archive", timeout=JOB_TIMEOUT)
    if archive.status_code != 200 or len(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) != count:
        raise WrongAnswer(f"{server.name}: the archive output is not a ZIP of {count} files")
    uncompressed = int(content["UncompressedSize"])
    return {"archive_s": elapsed, "archive_mbps": uncompressed / 1e6 / elapsed,
            "archive_cpu_ms": 1000 * cpu / count, "archive_ratio": len(archive.content) / uncompressed}


def small_jobs(session: requests.Session, server: Server, instances: list[str], jobs: int) -> dict[str, float]:
    chosen = [instances[i % len(instances)] for i in range(jobs)]
    cpu_before, start = cpu_seconds(server.pid), time.perf_counter()
    submitted = [submit(session, server, [instance]) for instance in chosen]
    for job in submitted:
        if wait_success(session, server, job)["Content"]["InstancesCount"] != 1:
            raise WrongAnswer(f"{server.name}: job {job} did not archive one instance")
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server.pid) - cpu_before
    return {"small_jobs_per_s": jobs / elapsed, "small_cpu_ms": 1000 * cpu / jobs}


def small_latency(session: requests.Session, server: Server, instances: list[str]) -> dict[str, float]:
    samples = []
    for i in range(LATENCY_JOBS):
        start = time.perf_counter()
        wait_success(session, server, submit(session, server, [instances[i % len(instances)]]))
        samples.append(1000 * (time.perf_counter() - start))
    return {"small_latency_ms": statistics.median(samples)}


def measure(server: Server, payloads: list[bytes], arguments: argparse.Namespace,
            figures: dict[str, float]) -> str:
    """Upload the corpus to a fresh server, then run every phase ``repeat`` times."""
    progress(f"{server.name}: upload, then {arguments.repeat} run(s) per phase")
    server.restart_empty()
    ingest_rest(server, payloads, UPLOAD_CLIENTS)
    with requests.Session() as session:
        patients = get_json(session, server, "/patients")
        instances = get_json(session, server, "/instances")
        phases: list[Callable[[], dict[str, float]]] = [
            lambda: large_archive(session, server, patients, len(payloads)),
            lambda: small_jobs(session, server, instances, arguments.jobs),
            lambda: small_latency(session, server, instances),
        ]
        for phase in phases:
            runs = [phase() for _ in range(arguments.repeat)]
            for key in runs[0]:
                figures[key] = statistics.median(run[key] for run in runs)
                progress(f"  {server.name} {key}: " + ", ".join(f"{run[key]:.2f}" for run in runs))
        return str(get_json(session, server, "/system").get("Version", "?"))


def table_of(results: Results, versions: dict[str, str], count: int, jobs: int) -> str:
    """The table, with N and J in the labels replaced by the run's figures."""
    metrics = [Metric(m.key, m.label.replace("N instances", f"{count} instances").replace("J small", f"{jobs} small"),
                      m.higher_is_better) for m in METRICS]
    above = heading(f"{count} instances, {jobs} small jobs, {os.cpu_count()} CPUs", versions, "jobs/s and MB/s",
                    "s and ms")
    return table(results, metrics, above)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    exit_on_sigterm()
    outcome = Outcome()
    with scratch_folder("isengard-bench-jobs-") as scratch:
        root = Path(scratch)
        progress(f"generating {arguments.instances} instances")
        corpus = generate(root / "dataset", arguments.instances, arguments.seed)
        payloads = [path.read_bytes() for path in corpus.files]
        servers = make_servers(root, arguments.only, {"JobsHistorySize": arguments.jobs + 100})
        measure_each(servers, lambda server: measure(server, payloads, arguments, outcome.figures(server.name)),
                     outcome)
    settings = {"instances": arguments.instances, "jobs": arguments.jobs, "seed": arguments.seed,
                "repeat": arguments.repeat, "cpus": os.cpu_count()}
    return outcome.finish(table_of(outcome.results, outcome.versions, arguments.instances, arguments.jobs),
                          arguments.json, settings, METRICS)


if __name__ == "__main__":
    sys.exit(main())
