"""Benchmark Isengard against the real Orthanc with the same workload, in one invocation.

Usage: .venv/bin/python bench/run.py [--instances N] [--only isengard|orthanc] [--json out.json]
                                     [--repeat R] [--seed S] [--profile DIR]

Each server runs alone (never both at once, so they do not compete for the CPUs), on free
loopback ports and an empty storage, restarted before each ingest phase. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from dataset import Corpus, generate
from profiling import Profiler, report
from servers import Server, make_servers
from workload import Ingest, ingest_cstore, ingest_rest, latencies

CONCURRENT_CLIENTS = 8
PROFILED_PHASES = ("rest8", "cstore")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool


LATENCY_LABELS = {
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
    "cstore": "C-STORE, 1 association",
}
METRICS = (
    [Metric(f"{key}_ips", f"ingest {label} (inst/s)", True) for key, label in INGEST_LABELS.items()]
    + [Metric(f"{key}_cpu_ms", f"server CPU per instance, {label} (ms)", False) for key, label in INGEST_LABELS.items()]
    + [Metric(f"{key}_{stat}_ms", f"{label} {stat} (ms)", False)
       for key, label in LATENCY_LABELS.items() for stat in ("median", "p95")]
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
                        help="sample Isengard with py-spy during the 8-client REST and C-STORE phases into DIR")
    arguments = parser.parse_args(argv)
    if arguments.instances < 1 or arguments.repeat < 1:
        parser.error("--instances and --repeat must be at least 1")
    return arguments


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ingest_phases(corpus: Corpus, payloads: list[bytes]) -> dict[str, Callable[[Server], Ingest]]:
    """The ingest phases in the order they run; C-STORE last, so its data serves the latency phase."""
    return {
        "rest1": lambda server: ingest_rest(server, payloads, 1),
        "rest8": lambda server: ingest_rest(server, payloads, CONCURRENT_CLIENTS),
        "cstore": lambda server: ingest_cstore(server, corpus),
    }


def repeated_ingest(server: Server, key: str, phase: Callable[[Server], Ingest], repeat: int,
                    profiler: Profiler) -> Ingest:
    """Median of ``repeat`` runs, each on a fresh server and storage: one run of ~1 s is too noisy alone."""
    runs = []
    for attempt in range(repeat):
        server.restart_empty()
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
    for key, phase in ingest_phases(corpus, payloads).items():
        ingest = repeated_ingest(server, key, phase, arguments.repeat, profiler)
        figures[f"{key}_ips"] = ingest.instances_per_second
        figures[f"{key}_cpu_ms"] = ingest.cpu_ms_per_instance
    progress(f"  {server.name}: latencies")
    for key, latency in latencies(server, corpus, warnings).items():
        figures[f"{key}_median_ms"] = latency.median_ms
        figures[f"{key}_p95_ms"] = latency.p95_ms
    return str(requests.get(server.url + "/system", timeout=10).json().get("Version", "?"))


def ratios(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """Isengard / Orthanc for every figure both servers produced."""
    mine, theirs = results.get("isengard", {}), results.get("orthanc", {})
    return {key: mine[key] / theirs[key] for key in mine if theirs.get(key)}


def table(results: dict[str, dict[str, float]], versions: dict[str, str], count: int) -> str:
    """One plain-text table: figure, Isengard, Orthanc, ratio, and which way is good for Isengard."""
    ratio = ratios(results)

    def cell(server: str, key: str) -> str:
        value = results.get(server, {}).get(key)
        return "-" if value is None else f"{value:.2f}"

    header = (f"{count} instances, {os.cpu_count()} CPUs; Isengard {versions.get('isengard', '-')}, "
              f"Orthanc {versions.get('orthanc', '-')}\n"
              "ratio = Isengard / Orthanc. For inst/s, ratio > 1 is better for Isengard; "
              "for ms (latency, CPU), ratio < 1 is better for Isengard.")
    width = max(len(m.label) for m in METRICS)
    rows = [f"{'figure':<{width}}  {'Isengard':>10}  {'Orthanc':>10}  {'ratio':>7}  better",
            "-" * (width + 44)]
    for metric in METRICS:
        shown = f"{ratio[metric.key]:.2f}" if metric.key in ratio else "-"
        rows.append(f"{metric.label:<{width}}  {cell('isengard', metric.key):>10}  {cell('orthanc', metric.key):>10}"
                    f"  {shown:>7}  {'higher' if metric.higher_is_better else 'lower'}")
    return header + "\n\n" + "\n".join(rows)


def write_json(path: Path, arguments: argparse.Namespace, results: dict[str, dict[str, float]],
               versions: dict[str, str], warnings: list[str]) -> None:
    document: dict[str, Any] = {
        "instances": arguments.instances,
        "seed": arguments.seed,
        "repeat": arguments.repeat,
        "cpus": os.cpu_count(),
        "versions": versions,
        "results": results,
        "ratios_isengard_over_orthanc": ratios(results),
        "higher_is_better": {m.key: m.higher_is_better for m in METRICS},
        "warnings": warnings,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def exit_on_sigterm(signum: int, frame: object) -> None:
    """Turn SIGTERM into SystemExit so that the ``finally`` blocks stop the servers and remove the scratch folder."""
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    results: dict[str, dict[str, float]] = {}
    versions: dict[str, str] = {}
    warnings: list[str] = []
    profiler = Profiler(arguments.profile)
    with tempfile.TemporaryDirectory(prefix="isengard-bench-") as scratch:
        root = Path(scratch)
        progress(f"generating {arguments.instances} instances")
        corpus = generate(root / "dataset", arguments.instances, arguments.seed)
        payloads = [path.read_bytes() for path in corpus.files]
        for server in make_servers(root, arguments.only):
            figures = results.setdefault(server.name, {})
            try:
                versions[server.name] = measure(server, corpus, payloads, arguments, profiler, figures, warnings)
            except (RuntimeError, OSError, subprocess.SubprocessError, requests.RequestException) as error:
                warnings.append(f"{server.name} failed: {error}\n{server.log_tail()}")
            finally:
                server.stop()
    print(table(results, versions, arguments.instances))
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if profiler.outputs:
        print(report(profiler.outputs))
    if arguments.json is not None:
        write_json(arguments.json, arguments, results, versions, warnings)
    return 1 if warnings else 0


if __name__ == "__main__":
    sys.exit(main())
