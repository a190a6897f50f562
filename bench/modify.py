"""Benchmark the anonymization and modification of one study, Isengard against the real Orthanc.

Usage: .venv/bin/python bench/modify.py [--instances N] [--only isengard|orthanc] [--json out.json]
                                        [--repeat R] [--seed S]

One study of N synthetic CT slices (two series, the files of ``dataset.py``) is uploaded to each
server in turn; then ``POST /studies/{id}/anonymize`` and ``POST /studies/{id}/modify`` run
synchronously, R times each, and the median wall time and server CPU are reported with the
ratio Isengard / Orthanc.  Every run is checked: the new study must hold N instances with the
expected tags.  Like ``run.py``, the two servers never run at the same time.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from dataset import Series, ct_slice, file_meta, noisy_pixels, phantom
from report import Metric, Outcome, heading, progress, table
from scratch import scratch_folder
from servers import Server, cpu_seconds, exit_on_sigterm, make_servers, measure_each
from workload import WrongAnswer, get_json, post_all

REQUEST_TIMEOUT = 900.0
SERIES_IN_STUDY = 2


@dataclass(frozen=True)
class Operation:
    key: str
    label: str
    body: dict[str, Any]


OPERATIONS = (
    Operation("anonymize", "anonymize", {}),
    Operation("modify", "modify (Replace StudyDescription)", {"Replace": {"StudyDescription": "BENCH MODIFIED"}}),
)


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_ms_per_instance: float


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Anonymize and modify one study on Isengard and the real Orthanc.")
    parser.add_argument("--instances", type=int, default=500, help="instances in the study (default 500)")
    parser.add_argument("--only", choices=("isengard", "orthanc"), help="measure a single server")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per operation, the median is reported (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic dataset (default 1)")
    arguments = parser.parse_args(argv)
    if arguments.instances < 1 or arguments.repeat < 1:
        parser.error("--instances and --repeat must be at least 1")
    return arguments


def one_study(folder: Path, count: int, seed: int) -> list[bytes]:
    """``count`` CT slices of one patient's one study, split over two series, deterministic for ``seed``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    series = [Series(0, 0, index, seed) for index in range(SERIES_IN_STUDY)]
    bases = {s: phantom(rng) for s in series}
    payloads = []
    for index in range(count):
        owner = series[index * SERIES_IN_STUDY // count]
        sop_uid = owner.uid("instance", index)
        ds = ct_slice(owner, index + 1, sop_uid, noisy_pixels(bases[owner], rng))
        ds.file_meta = file_meta(sop_uid)
        path = folder / f"{index:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        payloads.append(path.read_bytes())
    return payloads


def run_operation(session: requests.Session, server: Server, study: str, operation: Operation,
                  count: int) -> Run:
    """One synchronous job over the study, timed and checked."""
    cpu_before, start = cpu_seconds(server.pid), time.perf_counter()
    answer = session.post(f"{server.url}/studies/{study}/{operation.key}", json=operation.body,
                          timeout=REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(server.pid) - cpu_before
    if answer.status_code != 200:
        raise WrongAnswer(f"{server.name}: {operation.key} -> {answer.status_code} {answer.text[:200]}")
    check(session, server, answer.json(), operation, count)
    return Run(elapsed, 1000 * cpu / count)


def check(session: requests.Session, server: Server, content: dict[str, Any], operation: Operation,
          count: int) -> None:
    """The new study holds every instance, with what the operation promised."""
    if content.get("InstancesCount") != count or content.get("FailedInstancesCount") != 0:
        raise WrongAnswer(f"{server.name}: {operation.key} answered {content}")
    study = get_json(session, server, content["Path"])
    instances = get_json(session, server, content["Path"] + "/instances")
    if len(instances) != count:
        raise WrongAnswer(f"{server.name}: the {operation.key}d study holds {len(instances)} instances, not {count}")
    tags = get_json(session, server, f"/instances/{instances[0]['ID']}/simplified-tags")
    if operation.key == "anonymize":
        ok = re.fullmatch(r"Anonymized\d+", tags.get("PatientName", "")) and "InstitutionName" not in tags
    else:
        ok = study["MainDicomTags"].get("StudyDescription") == "BENCH MODIFIED"
    if not ok:
        raise WrongAnswer(f"{server.name}: the {operation.key}d instances do not carry the expected tags")


def measure(server: Server, payloads: list[bytes], repeat: int, figures: dict[str, float]) -> str:
    """Upload the study to a fresh server, then run every operation ``repeat`` times."""
    progress(f"{server.name}: upload, then {repeat} run(s) per operation")
    server.restart_empty()
    post_all(server, payloads)
    count = len(payloads)
    with requests.Session() as session:
        studies = get_json(session, server, "/studies")
        if len(studies) != 1:
            raise WrongAnswer(f"{server.name} holds {len(studies)} studies after the upload, expected 1")
        for operation in OPERATIONS:
            runs = []
            for _ in range(repeat):
                runs.append(run_operation(session, server, studies[0], operation, count))
                progress(f"  {server.name} {operation.key}: {runs[-1].seconds:.2f} s, "
                         f"{runs[-1].cpu_ms_per_instance:.2f} ms CPU/instance")
            seconds = statistics.median(r.seconds for r in runs)
            figures[f"{operation.key}_s"] = seconds
            figures[f"{operation.key}_ips"] = count / seconds
            figures[f"{operation.key}_cpu_ms"] = statistics.median(r.cpu_ms_per_instance for r in runs)
        return str(get_json(session, server, "/system").get("Version", "?"))


METRICS = [metric for operation in OPERATIONS for metric in (
    Metric(f"{operation.key}_s", f"{operation.label}, wall time (s)", False),
    Metric(f"{operation.key}_ips", f"{operation.label} (inst/s)", True),
    Metric(f"{operation.key}_cpu_ms", f"{operation.label}, server CPU per instance (ms)", False))]


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    exit_on_sigterm()
    outcome = Outcome()
    with scratch_folder("isengard-bench-modify-") as scratch:
        root = Path(scratch)
        progress(f"generating one study of {arguments.instances} instances")
        payloads = one_study(root / "dataset", arguments.instances, arguments.seed)
        measure_each(make_servers(root, arguments.only),
                     lambda server: measure(server, payloads, arguments.repeat, outcome.figures(server.name)), outcome)
    above = heading(f"one study of {arguments.instances} instances, {os.cpu_count()} CPUs", outcome.versions,
                    "inst/s", "s and ms")
    settings = {"instances": arguments.instances, "seed": arguments.seed, "repeat": arguments.repeat,
                "cpus": os.cpu_count()}
    return outcome.finish(table(outcome.results, METRICS, above), arguments.json, settings, METRICS)


if __name__ == "__main__":
    sys.exit(main())
