"""Benchmark how responsive the REST server stays while heavy requests run, Isengard against Orthanc.

Usage: .venv/bin/python bench/loop_latency.py [--instances N] [--only isengard|orthanc] [--json out.json]
                                              [--seed S]

One patient of N synthetic CT slices (default 2,000, the files of ``dataset.py``) is uploaded to
each server in turn.  ``GET /system``, which needs neither the index nor the disk, is then timed
back to back on one keep-alive session: first on the idle server, then while ``DELETE
/patients/{id}`` removes the whole patient and two more clients run ``POST /tools/lookup`` and
``POST /tools/find`` in a loop.  A server whose event loop blocks on SQLite, the disk or a lock
shows it here as ``/system`` latencies of the order of the delete itself; one that keeps that
work in threads answers in about a millisecond throughout.  Percentiles are nearest-rank, in ms,
client side.  Every answer is checked (all 200s, and the patient gone afterwards).  Like
``run.py``, the two servers never run at the same time.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from modify import one_study
from report import Metric, Outcome, heading, progress, table
from scratch import scratch_folder
from servers import Server, exit_on_sigterm, make_servers, measure_each
from workload import REQUEST_TIMEOUT, WrongAnswer, get_json, percentile, post_all

UPLOADERS = 4
IDLE_CALLS = 300
STATISTICS = (("median", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="GET /system latency while a large delete, lookups and finds run.")
    parser.add_argument("--instances", type=int, default=2000, help="instances of the deleted patient (default 2000)")
    parser.add_argument("--only", choices=("isengard", "orthanc"), help="measure a single server")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic dataset (default 1)")
    arguments = parser.parse_args(argv)
    if arguments.instances < 1:
        parser.error("--instances must be at least 1")
    return arguments


def upload(server: Server, payloads: list[bytes]) -> None:
    with ThreadPoolExecutor(max_workers=UPLOADERS) as pool:
        for future in [pool.submit(post_all, server, payloads[k::UPLOADERS]) for k in range(UPLOADERS)]:
            future.result()


def time_system(session: requests.Session, server: Server, keep_going: Callable[[int], bool]) -> list[float]:
    """``GET /system`` back to back while ``keep_going(calls so far)``; the latencies in ms."""
    samples: list[float] = []
    while keep_going(len(samples)):
        start = time.perf_counter()
        answer = session.get(server.url + "/system", timeout=REQUEST_TIMEOUT)
        samples.append(1000 * (time.perf_counter() - start))
        if answer.status_code != 200:
            raise WrongAnswer(f"{server.name}: GET /system -> {answer.status_code}")
    return samples


def repeat_until(done: threading.Event, server: Server, path: str, **request: Any) -> int:
    """POST to ``path`` (``request``: requests' ``data`` or ``json``) until ``done``; the number of
    answers, all of which must be 200s."""
    count = 0
    with requests.Session() as session:
        while not done.is_set():
            answer = session.post(server.url + path, timeout=REQUEST_TIMEOUT, **request)
            if answer.status_code != 200:
                raise WrongAnswer(f"{server.name}: POST {path} -> {answer.status_code} {answer.text[:200]}")
            count += 1
    return count


def record(figures: dict[str, float], prefix: str, samples: list[float]) -> None:
    for name, fraction in STATISTICS:
        figures[f"{prefix}_{name}_ms"] = statistics.median(samples) if name == "median" \
            else percentile(samples, fraction)


def measure(server: Server, payloads: list[bytes], figures: dict[str, float]) -> str:
    """Upload the patient to a fresh server, time /system idle, then during the delete."""
    progress(f"{server.name}: upload of {len(payloads)} instances")
    server.restart_empty()
    upload(server, payloads)
    with requests.Session() as session:
        [patient] = get_json(session, server, "/patients")
        [study] = get_json(session, server, "/studies")
        study_uid = get_json(session, server, f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"]
        time_system(session, server, lambda calls: calls < 10)  # warm-up
        record(figures, "idle", time_system(session, server, lambda calls: calls < IDLE_CALLS))
        progress(f"{server.name}: DELETE /patients/{patient} with lookups and finds beside it")
        done = threading.Event()
        with ThreadPoolExecutor(max_workers=3) as pool:
            lookups = pool.submit(repeat_until, done, server, "/tools/lookup", data=study_uid)
            finds = pool.submit(repeat_until, done, server, "/tools/find",
                                json={"Level": "Instance", "Query": {"PatientName": "*"}, "Limit": 100})

            def delete() -> float:
                start = time.perf_counter()
                answer = requests.delete(f"{server.url}/patients/{patient}", timeout=REQUEST_TIMEOUT)
                elapsed = time.perf_counter() - start
                done.set()
                if answer.status_code != 200:
                    raise WrongAnswer(f"{server.name}: DELETE /patients -> {answer.status_code}")
                return elapsed

            time.sleep(0.2)  # the lookups and finds are running
            deleted = pool.submit(delete)
            loaded = time_system(session, server, lambda calls: not done.is_set())
            seconds = deleted.result()
            figures["delete_s"] = seconds
            figures["lookups_per_s"] = lookups.result() / (seconds + 0.2)
            figures["finds_per_s"] = finds.result() / (seconds + 0.2)
        record(figures, "loaded", loaded)
        figures["loaded_calls"] = len(loaded)
        if get_json(session, server, "/patients"):
            raise WrongAnswer(f"{server.name}: the patient is still there after its DELETE")
        return str(get_json(session, server, "/system").get("Version", "?"))


METRICS = [
    *(Metric(f"idle_{name}_ms", f"GET /system, idle, {name} (ms)", False) for name, _ in STATISTICS),
    *(Metric(f"loaded_{name}_ms", f"GET /system, during the delete, {name} (ms)", False) for name, _ in STATISTICS),
    Metric("loaded_calls", "GET /system answered during the delete", True),
    Metric("delete_s", "DELETE /patients/{id}, wall time (s)", False),
    Metric("lookups_per_s", "/tools/lookup answered per s meanwhile", True),
    Metric("finds_per_s", "/tools/find answered per s meanwhile", True),
]


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    exit_on_sigterm()
    outcome = Outcome()
    with scratch_folder("isengard-bench-loop-") as scratch:
        root = Path(scratch)
        progress(f"generating one patient of {arguments.instances} instances")
        payloads = one_study(root / "dataset", arguments.instances, arguments.seed)
        measure_each(make_servers(root, arguments.only),
                     lambda server: measure(server, payloads, outcome.figures(server.name)), outcome)
    above = heading(f"GET /system latency while a {arguments.instances}-instance patient is deleted, "
                    f"{os.cpu_count()} CPUs", outcome.versions, "calls and answers per s", "ms and s")
    settings = {"instances": arguments.instances, "seed": arguments.seed, "cpus": os.cpu_count()}
    return outcome.finish(table(outcome.results, METRICS, above), arguments.json, settings, METRICS)


if __name__ == "__main__":
    sys.exit(main())
