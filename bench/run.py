"""Benchmark Isengard against the real Orthanc with the same workload, in one invocation.

Usage: .venv/bin/python bench/run.py [--instances N] [--only isengard|orthanc] [--json out.json]
                                     [--repeat R] [--seed S] [--profile DIR]

Each server runs alone (never both at once, so they do not compete for the CPUs), on free
loopback ports and an empty storage, restarted before each ingest phase. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import requests
from dataset import Corpus, generate
from profiling import Profiler, report
from report import Metric, Outcome, heading, progress, table
from scratch import scratch_folder
from servers import Server, exit_on_sigterm, make_servers, measure_each
from workload import Ingest, ingest_cstore, ingest_cstore_parallel, ingest_rest, latencies

CONCURRENT_CLIENTS = 8
PROFILED_PHASES = ("rest8", "cstore4", "cstore")


LATENCY_LABELS = {
    "get_system": "GET /system",
    "get_statistics": "GET /statistics",
    "get_instance_file": "GET /instances/{id}/file",
    "get_instance_tags": "GET /instances/{id}/tags",
    "get_instances": "GET /instances",
    "get_studies_expand": "GET /studies?expand",
    "get_patient": "GET /patients/{id}",
    "find_patient_name": "find Study PatientName=S*",
    "find_study_date": "find Study StudyDate range",
    "find_sop_instance_uid": "find Instance SOPInstanceUID",
}
INGEST_LABELS = {
    "rest1": "REST, 1 client",
    "rest8": f"REST, {CONCURRENT_CLIENTS} clients",
    "cstore4": "C-STORE, 4 associations",
    "cstore": "C-STORE, 1 association",
}
METRICS = (
    [Metric(f"{key}_ips", f"ingest {label} (inst/s)", True) for key, label in INGEST_LABELS.items()]
    + [Metric(f"{key}_cpu_ms", f"server CPU per instance, {label} (ms)", False) for key, label in INGEST_LABELS.items()]
    + [Metric(f"{key}_{stat}_ms", f"{label} {stat} (ms)", False)
       for key, label in LATENCY_LABELS.items() for stat in ("median", "p95")]
    + [Metric("startup_s", "start-up to the first answer of GET /system, median (s)", False),
       Metric("peak_rss_mb", "peak resident memory over the whole run (MB)", False)]
)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Same workload against Isengard and the real Orthanc; prints ratios.")
    parser.add_argument("--instances", type=int, default=500, help="number of synthetic instances (default 500)")
    parser.add_argument("--only", choices=("isengard", "orthanc"), help="measure a single server")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per ingest phase, each on a fresh server; the median is reported (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic dataset (default 1)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample Isengard with py-spy during the 8-client REST and both C-STORE phases into DIR")
    arguments = parser.parse_args(argv)
    if arguments.instances < 1 or arguments.repeat < 1:
        parser.error("--instances and --repeat must be at least 1")
    return arguments


def ingest_phases(corpus: Corpus, payloads: list[bytes]) -> dict[str, Callable[[Server], Ingest]]:
    """The ingest phases in the order they run; C-STORE last, so its data serves the latency phase."""
    return {
        "rest1": lambda server: ingest_rest(server, payloads, 1),
        "rest8": lambda server: ingest_rest(server, payloads, CONCURRENT_CLIENTS),
        "cstore4": lambda server: ingest_cstore_parallel(server, corpus, 4),
        "cstore": lambda server: ingest_cstore(server, corpus),
    }


def repeated_ingest(server: Server, key: str, phase: Callable[[Server], Ingest], repeat: int,
                    profiler: Profiler, startups: list[float], peaks: list[float]) -> Ingest:
    """Median of ``repeat`` runs, each on a fresh server and storage: one run of ~1 s is too noisy alone.
    Each fresh server's start-up time goes to ``startups``, its peak memory after the run to ``peaks``."""
    runs = []
    for attempt in range(repeat):
        if server.process is not None and server.process.poll() is None:
            peaks.append(server.peak_rss_mb())
        server.restart_empty()
        startups.append(server.startup_seconds)
        if attempt == 0 and key in PROFILED_PHASES:
            with profiler.record(server, key):
                runs.append(phase(server))
        else:
            runs.append(phase(server))
        progress(f"  {server.name} ingest {INGEST_LABELS[key]}: {runs[-1].instances_per_second:.1f} inst/s, "
                 f"{runs[-1].cpu_ms_per_instance:.2f} ms CPU/instance")
    return Ingest(statistics.median(r.instances_per_second for r in runs),
                  statistics.median(r.cpu_ms_per_instance for r in runs))


def measure(server: Server, corpus: Corpus, payloads: list[bytes], arguments: argparse.Namespace,
            profiler: Profiler, figures: dict[str, float], warnings: list[str]) -> str:
    """Run every phase on ``server``, filling ``figures`` as they come; returns the version /system reports."""
    progress(f"{server.name}: {arguments.repeat} run(s) per ingest phase")
    startups, peaks = [], []
    for key, phase in ingest_phases(corpus, payloads).items():
        ingest = repeated_ingest(server, key, phase, arguments.repeat, profiler, startups, peaks)
        figures[f"{key}_ips"] = ingest.instances_per_second
        figures[f"{key}_cpu_ms"] = ingest.cpu_ms_per_instance
    progress(f"  {server.name}: latencies")
    for key, latency in latencies(server, corpus, warnings).items():
        figures[f"{key}_median_ms"] = latency.median_ms
        figures[f"{key}_p95_ms"] = latency.p95_ms
    figures["startup_s"] = statistics.median(startups)
    figures["peak_rss_mb"] = max([*peaks, server.peak_rss_mb()])
    return str(requests.get(server.url + "/system", timeout=10).json().get("Version", "?"))


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    exit_on_sigterm()
    outcome = Outcome()
    profiler = Profiler(arguments.profile)
    with scratch_folder("isengard-bench-") as scratch:
        root = Path(scratch)
        progress(f"generating {arguments.instances} instances")
        corpus = generate(root / "dataset", arguments.instances, arguments.seed)
        payloads = [path.read_bytes() for path in corpus.files]
        measure_each(make_servers(root, arguments.only), lambda server: measure(
            server, corpus, payloads, arguments, profiler, outcome.figures(server.name), outcome.warnings), outcome)
    above = heading(f"{arguments.instances} instances, {os.cpu_count()} CPUs", outcome.versions, "inst/s",
                    "ms (latency, CPU)")
    settings = {"instances": arguments.instances, "seed": arguments.seed, "repeat": arguments.repeat,
                "cpus": os.cpu_count()}
    status = outcome.finish(table(outcome.results, METRICS, above), arguments.json, settings, METRICS)
    if profiler.outputs:
        print(report(profiler.outputs))
    return status


if __name__ == "__main__":
    sys.exit(main())
