"""The measured phases: ingest over REST and C-STORE, then listing and /tools/find latencies.

Each phase checks the server's answers (status codes, instance and match counts) so that a
fast but wrong server cannot produce a flattering figure unnoticed.
"""

from __future__ import annotations

import fnmatch
import math
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from dataset import Corpus
from servers import Server, cpu_seconds

REQUEST_TIMEOUT = 120.0
LATENCY_CALLS = 50
WARMUP_CALLS = 3
STORESCU_TIMEOUT = 900.0
NAME_PATTERN = "S*"  # SMITH and SCHMIDT: two of the five patients


class WrongAnswer(RuntimeError):
    """The server answered, but not what the workload expects; its figure would be meaningless."""


@dataclass(frozen=True)
class Ingest:
    instances_per_second: float
    cpu_ms_per_instance: float


@dataclass(frozen=True)
class Latency:
    median_ms: float
    p95_ms: float


def measure_ingest(server: Server, count: int, send: Callable[[], None]) -> Ingest:
    """Run ``send`` and turn its wall time and the server's CPU time into per-instance figures."""
    cpu_before, start = cpu_seconds(server.pid), time.perf_counter()
    send()
    elapsed = time.perf_counter() - start
    with requests.Session() as session:
        stored = len(get_json(session, server, "/instances"))
    cpu = cpu_seconds(server.pid) - cpu_before  # after the check, so that work deferred by the server counts too
    if stored != count:
        raise WrongAnswer(f"{server.name} holds {stored} instances after ingesting {count}")
    return Ingest(count / elapsed, 1000 * cpu / count)


def post_all(server: Server, payloads: list[bytes]) -> None:
    """POST each file in turn on one keep-alive session, as a simple uploader script would."""
    with requests.Session() as session:
        for payload in payloads:
            answer = session.post(server.url + "/instances", data=payload, timeout=REQUEST_TIMEOUT,
                                  headers={"Content-Type": "application/dicom"})
            if answer.status_code != 200:
                raise WrongAnswer(f"{server.name}: POST /instances -> {answer.status_code} {answer.text[:200]}")


def ingest_rest(server: Server, payloads: list[bytes], clients: int) -> Ingest:
    """REST ingest with ``clients`` concurrent uploaders, each with its own session and share of the files."""
    shares = [payloads[k::clients] for k in range(clients)]

    def send() -> None:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            for future in [pool.submit(post_all, server, share) for share in shares]:
                future.result()

    return measure_ingest(server, len(payloads), send)


def ingest_cstore(server: Server, corpus: Corpus) -> Ingest:
    """C-STORE of the whole folder over ONE association, with dcmtk's storescu scanning the folder."""
    command = ["storescu", "-aet", "BENCH", "-aec", server.aet, "+sd", "127.0.0.1", str(server.dicom_port),
               str(corpus.folder)]

    def send() -> None:
        done = subprocess.run(command, env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True, text=True,
                              timeout=STORESCU_TIMEOUT, check=False)
        if done.returncode != 0:
            raise WrongAnswer(f"{server.name}: storescu exited with {done.returncode}: {done.stderr[-500:]}")

    return measure_ingest(server, len(corpus.files), send)


def ingest_cstore_parallel(server: Server, corpus: Corpus, associations: int) -> Ingest:
    """C-STORE of the files over ``associations`` concurrent storescu processes, a share each."""
    shares = [corpus.files[k::associations] for k in range(associations)]

    def send() -> None:
        processes = [subprocess.Popen(["storescu", "-aet", "BENCH", "-aec", server.aet, "127.0.0.1",
                                       str(server.dicom_port), *map(str, share)],
                                      env={**os.environ, "TCP_NODELAY": "1"}, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE) for share in shares]
        for process in processes:
            _, errors = process.communicate(timeout=STORESCU_TIMEOUT)
            if process.returncode != 0:
                raise WrongAnswer(f"{server.name}: storescu exited with {process.returncode}: {errors[-500:]!r}")

    return measure_ingest(server, len(corpus.files), send)


def get_json(session: requests.Session, server: Server, path: str) -> Any:
    answer = session.get(server.url + path, timeout=REQUEST_TIMEOUT)
    if answer.status_code != 200:
        raise WrongAnswer(f"{server.name}: GET {path} -> {answer.status_code} {answer.text[:200]}")
    return answer.json()


def post_json(session: requests.Session, server: Server, path: str, body: dict[str, Any]) -> Any:
    answer = session.post(server.url + path, json=body, timeout=REQUEST_TIMEOUT)
    if answer.status_code != 200:
        raise WrongAnswer(f"{server.name}: POST {path} {body} -> {answer.status_code} {answer.text[:200]}")
    return answer.json()


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile: an actual observed value, no interpolation."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def time_calls(call: Callable[[int], Any]) -> Latency:
    """Median and p95 of ``call(i)`` after a short warm-up that fills caches and opens the connection."""
    for i in range(WARMUP_CALLS):
        call(i)
    samples = []
    for i in range(LATENCY_CALLS):
        start = time.perf_counter()
        call(i)
        samples.append(1000 * (time.perf_counter() - start))
    return Latency(statistics.median(samples), percentile(samples, 0.95))


def expect_count(server: Server, what: str, answer: list[Any], expected: int, warnings: list[str]) -> None:
    if len(answer) != expected:
        warnings.append(f"{server.name}: {what} returned {len(answer)} results, expected {expected}")


def study_date_range(corpus: Corpus) -> tuple[str, str]:
    """A range covering the first two patients' studies: a selective but not trivial query."""
    dates = sorted({s.study_date for s in corpus.series})
    return dates[0].strftime("%Y%m%d"), dates[min(3, len(dates) - 1)].strftime("%Y%m%d")


def latencies(server: Server, corpus: Corpus, warnings: list[str]) -> dict[str, Latency]:
    """Small requests, listing and /tools/find latencies on a server that holds the whole corpus."""
    with requests.Session() as session:
        return _latencies(session, server, corpus, warnings)


def _latencies(session: requests.Session, server: Server, corpus: Corpus, warnings: list[str]) -> dict[str, Latency]:
    patients = get_json(session, server, "/patients")
    expect_count(server, "GET /patients", patients, len({s.patient_id for s in corpus.series}), warnings)
    studies = {s.study_uid: s for s in corpus.series}
    first, last = study_date_range(corpus)
    by_name = {"Level": "Study", "Query": {"PatientName": NAME_PATTERN}}
    by_date = {"Level": "Study", "Query": {"StudyDate": f"{first}-{last}"}}
    expect_count(server, f"find {by_name}", post_json(session, server, "/tools/find", by_name),
                 sum(fnmatch.fnmatchcase(s.patient_name, NAME_PATTERN) for s in studies.values()), warnings)
    expect_count(server, f"find {by_date}", post_json(session, server, "/tools/find", by_date),
                 sum(first <= s.study_date.strftime("%Y%m%d") <= last for s in studies.values()), warnings)
    uids = corpus.sop_instance_uids

    def by_uid(i: int) -> None:
        # a prime stride visits the instances out of insertion order, as unrelated lookups would
        body = {"Level": "Instance", "Query": {"SOPInstanceUID": uids[(i * 7919) % len(uids)]}}
        found = post_json(session, server, "/tools/find", body)
        if len(found) != 1:
            raise WrongAnswer(f"{server.name}: find {body} returned {len(found)} results, expected 1")

    instances = get_json(session, server, "/instances")

    def instance_file(i: int) -> None:
        path = f"/instances/{instances[(i * 7919) % len(instances)]}/file"
        answer = session.get(server.url + path, timeout=REQUEST_TIMEOUT)
        if answer.status_code != 200 or not answer.content.startswith(b"\0" * 128 + b"DICM"):
            raise WrongAnswer(f"{server.name}: GET {path} -> {answer.status_code}, not a DICOM file")

    def instance_tags(i: int) -> None:
        # each instance once (the same stride as above): its file read and parsed, then converted
        tags = get_json(session, server, f"/instances/{instances[(i * 7919) % len(instances)]}/tags")
        if "0010,0010" not in tags:
            raise WrongAnswer(f"{server.name}: an instance's tags without its PatientName")

    return {
        "get_system": time_calls(lambda i: get_json(session, server, "/system")),
        "get_statistics": time_calls(lambda i: get_json(session, server, "/statistics")),
        "get_instance_file": time_calls(instance_file),
        "get_instance_tags": time_calls(instance_tags),
        "get_instances": time_calls(lambda i: get_json(session, server, "/instances")),
        "get_studies_expand": time_calls(lambda i: get_json(session, server, "/studies?expand")),
        "get_patient": time_calls(lambda i: get_json(session, server, f"/patients/{patients[i % len(patients)]}")),
        "find_patient_name": time_calls(lambda i: post_json(session, server, "/tools/find", by_name)),
        "find_study_date": time_calls(lambda i: post_json(session, server, "/tools/find", by_date)),
        "find_sop_instance_uid": time_calls(by_uid),
    }
