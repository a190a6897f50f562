"""Ingest on a PostgreSQL index, one node and two, Isengard against Orthanc + orthanc-postgresql.

Usage: .venv/bin/python bench/cluster.py [--instances 3000] [--only isengard|orthanc]
                                         [--scale N] [--json out.json]

The bench starts a PostgreSQL server of its own (Debian's ``postgresql``: ``initdb`` into a
temporary folder, as the ``postgres`` user when run as root, on a free loopback port, with
PostgreSQL's default durability), then for each server and each cluster size (1 and 2 nodes
on one fresh database and one storage folder, ``"Lock": false``):

* REST: N small instances (the ~2 KB files of ``scale.py``) posted by 8 clients, spread
  evenly over the nodes (an upload answered 503, Orthanc's "try again" when its writers
  collide, is posted again, and counted);
* C-STORE: N other instances by 4 ``storescu`` associations, spread over the nodes.

Figures: instances per second (wall clock), CPU per instance of the nodes and of PostgreSQL,
the two-node / one-node ratio, and how many of the machine's cores were busy (every process:
nodes, PostgreSQL, clients): a phase with every core busy is bound by the machine.
Orthanc 1.10.1 runs with Debian's orthanc-postgresql 4.0 index plugin (``EnableIndex``;
files in the shared folder, as Isengard's).

``--scale N`` adds one Isengard node ingesting N instances over REST (4 clients) with the
rate and CPU taken on each tenth, as ``scale.py`` does on SQLite: is it flat on PostgreSQL?
"""

from __future__ import annotations

import argparse
import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import requests
from report import Metric, Outcome, progress, table
from scale import instances, send
from scratch import scratch_folder
from servers import ORTHANC_BINARY, Isengard, Orthanc, Server, cpu_seconds, exit_on_sigterm, free_port
from workload import WrongAnswer

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so")
REST_CLIENTS, ASSOCIATIONS = 8, 4
TIMEOUT = 1800
#: How many times a client posts a file again that was answered 503.
RETRIES = 20


def _binary(name: str) -> str:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


class Postgres:
    """A throw-away PostgreSQL server; ``cpu`` is the CPU time of all its processes."""

    def __init__(self) -> None:
        # a folder of its own: PostgreSQL's user must reach it, not the bench's private scratch
        self.root, self.port = Path(tempfile.mkdtemp(prefix="isengard-cluster-pg-")), free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._databases = itertools.count()

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, self.user)
        data = self.root / "data"
        self._run(_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C.UTF-8")
        self._run(_binary("pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200", "start")
        self.postmaster = int((data / "postmaster.pid").read_text().split()[0])
        return self

    def stop(self) -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def cpu(self) -> float:
        return cpu_seconds(self.postmaster)

    def database(self) -> str:
        name = f"bench{next(self._databases)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return name


def section(postgres: Postgres, database: str) -> dict[str, Any]:
    return {"EnableIndex": True, "EnableStorage": False, "Host": "127.0.0.1", "Port": postgres.port,
            "Database": database, "Username": "postgres", "Password": "", "Lock": False}


def start_nodes(kind: str, count: int, root: Path, postgres: Postgres) -> list[Server]:
    """``count`` nodes of one kind on a fresh database and one (empty) storage folder."""
    database, storage = postgres.database(), root / f"{kind}-{count}-storage"
    shutil.rmtree(storage, ignore_errors=True)
    nodes: list[Server] = []
    for number in range(count):
        name = f"{kind}{count}-{number}"
        config: dict[str, Any] = {"StorageDirectory": str(storage), "PostgreSQL": section(postgres, database),
                                  "ConcurrentJobs": 2}
        if kind == "orthanc":
            node: Server = Orthanc(name, root / name, "ORTHANC", extra_config={**config, "Plugins": [str(PLUGIN)]})
        else:
            node = Isengard(name, root / name, "ISENGARD", extra_config=config)
        node.owns_storage = False
        node.start()
        nodes.append(node)
    return nodes


def count_instances(node: Server) -> int:
    return len(requests.get(node.url + "/instances", timeout=TIMEOUT).json())


def late_lock_counters(nodes: list[Server]) -> tuple[float, float]:
    """Isengard's ingest batches that took the writers' lock late, and those another node's
    writes made run again (``/tools/metrics-prometheus``), summed over ``nodes``."""
    counted = {"isengard_ingest_late_lock_batches_total": 0.0, "isengard_ingest_late_lock_conflicts_total": 0.0}
    for node in nodes:
        for line in requests.get(node.url + "/tools/metrics-prometheus", timeout=TIMEOUT).text.splitlines():
            name, _, rest = line.partition(" ")
            if name in counted:
                counted[name] += float(rest.split(" ")[0])
    return counted["isengard_ingest_late_lock_batches_total"], counted["isengard_ingest_late_lock_conflicts_total"]


def conflict_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of the ingest batches between two counts that ran again, lock first (%)."""
    return 100 * (after[1] - before[1]) / max(1.0, after[0] - before[0])


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all cores) since boot:
    whether a phase was bound by the machine's cores or by something else."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(nodes: list[Server], postgres: Postgres, expected: int, send_all: Callable[[], None]) -> dict[str, float]:
    cpu_nodes = sum(cpu_seconds(node.pid) for node in nodes)
    cpu_db, busy, started = postgres.cpu(), machine_busy_seconds(), time.perf_counter()
    send_all()
    elapsed = time.perf_counter() - started
    busy = machine_busy_seconds() - busy
    counts = [count_instances(node) for node in nodes]
    if counts != [expected] * len(nodes):
        raise WrongAnswer(f"the nodes hold {counts} instances, expected {expected} each")
    return {"rate": expected / elapsed,
            "cpu_ms": 1000 * (sum(cpu_seconds(node.pid) for node in nodes) - cpu_nodes) / expected,
            "db_cpu_ms": 1000 * (postgres.cpu() - cpu_db) / expected,
            "busy_cores": busy / elapsed}


def rest(nodes: list[Server], files: list[bytes], retried: list[int]) -> Callable[[], None]:
    """Each client posts its share of ``files`` to its node; a 503 (Orthanc's "cannot
    serialize" between writers, an invitation to try again) is retried, and counted in
    ``retried``."""
    def post_share(client: int) -> None:
        node = nodes[client % len(nodes)]
        with requests.Session() as session:
            for data in files[client::REST_CLIENTS]:
                answer = session.post(node.url + "/instances", data=data, timeout=TIMEOUT)
                for _ in range(RETRIES):
                    if answer.status_code != 503:
                        break
                    retried.append(1)
                    time.sleep(0.01)
                    answer = session.post(node.url + "/instances", data=data, timeout=TIMEOUT)
                if answer.status_code != 200:
                    raise WrongAnswer(f"{node.name}: POST /instances answered {answer.status_code}")

    def send_all() -> None:
        with ThreadPoolExecutor(REST_CLIENTS) as pool:
            list(pool.map(post_share, range(REST_CLIENTS)))
    return send_all


def cstore(nodes: list[Server], paths: list[Path]) -> Callable[[], None]:
    def send_all() -> None:
        processes = []
        for association in range(ASSOCIATIONS):
            node = nodes[association % len(nodes)]
            processes.append(subprocess.Popen(
                ["storescu", "-aet", "BENCH", "-aec", node.aet, "127.0.0.1", str(node.dicom_port),
                 *map(str, paths[association::ASSOCIATIONS])],
                env={**os.environ, "TCP_NODELAY": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        for process in processes:
            errors, _ = process.communicate(timeout=TIMEOUT)
            if process.returncode != 0:
                raise WrongAnswer(f"storescu exited with {process.returncode}: {errors[-300:]!r}")
    return send_all


def run_kind(kind: str, count: int, root: Path, postgres: Postgres, figures: dict[str, float]) -> None:
    """Both phases with 1 then 2 nodes, into ``figures`` (what was measured stays there
    when a later phase fails: Orthanc's nodes sometimes refuse an instance)."""
    files = list(instances(2 * count))
    rest_files, store_files = files[:count], files[count:]
    folder = root / "cstore-files"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    paths = []
    for number, data in enumerate(store_files):
        paths.append(folder / f"{number:06d}.dcm")
        paths[-1].write_bytes(data)
    for size in (1, 2):
        nodes = start_nodes(kind, size, root, postgres)
        try:
            progress(f"{kind}, {size} node(s): REST, {REST_CLIENTS} clients")
            retried: list[int] = []
            counted = late_lock_counters(nodes) if kind == "isengard" else None
            for key, value in measure(nodes, postgres, count, rest(nodes, rest_files, retried)).items():
                figures[f"rest{size}_{key}"] = value
            if counted is not None and size == 2:
                before, counted = counted, late_lock_counters(nodes)
                figures["rest2_conflicts"] = conflict_share(before, counted)
            figures[f"rest{size}_retried"] = len(retried)
            progress(f"{kind}, {size} node(s): C-STORE, {ASSOCIATIONS} associations")
            for key, value in measure(nodes, postgres, 2 * count, cstore(nodes, paths)).items():
                figures[f"store{size}_{key}"] = value
            if counted is not None and size == 2:
                figures["store2_conflicts"] = conflict_share(counted, late_lock_counters(nodes))
        finally:
            for node in nodes:
                node.stop()
    figures["rest_scaling"] = figures["rest2_rate"] / figures["rest1_rate"]
    figures["store_scaling"] = figures["store2_rate"] / figures["store1_rate"]


def scale(count: int, root: Path, postgres: Postgres) -> dict[str, float]:
    """One Isengard node, ``count`` instances in tenths: the first and last tenth's rates."""
    [node] = start_nodes("isengard", 1, root, postgres)
    try:
        marks = [(0, time.perf_counter(), cpu_seconds(node.pid))]
        send(node, instances(count), 4, None, max(1, count // 10), marks)
    finally:
        node.stop()
    (n0, t0, c0), (n1, t1, c1) = marks[0], marks[1]
    (n8, t8, c8), (n9, t9, c9) = marks[-2], marks[-1]
    first, last = (n1 - n0) / (t1 - t0), (n9 - n8) / (t9 - t8)
    return {"scale_first_rate": first, "scale_last_rate": last, "scale_kept": last / first,
            "scale_first_cpu_ms": 1000 * (c1 - c0) / (n1 - n0), "scale_last_cpu_ms": 1000 * (c9 - c8) / (n9 - n8)}


METRICS = [
    Metric("rest1_rate", "REST 8 clients, 1 node (inst/s)", True),
    Metric("rest2_rate", "REST 8 clients, 2 nodes (inst/s)", True),
    Metric("rest_scaling", "REST: 2 nodes / 1 node", True),
    Metric("rest1_cpu_ms", "REST, 1 node: server CPU per instance (ms)", False),
    Metric("rest1_db_cpu_ms", "REST, 1 node: PostgreSQL CPU per instance (ms)", False),
    Metric("rest1_busy_cores", f"REST, 1 node: machine busy (cores of {os.cpu_count()})", False),
    Metric("rest2_busy_cores", f"REST, 2 nodes: machine busy (cores of {os.cpu_count()})", False),
    Metric("rest2_retried", "REST, 2 nodes: uploads answered 503 and posted again", False),
    Metric("rest2_conflicts", "REST, 2 nodes: ingest batches run again, lock first (%)", False),
    Metric("store1_rate", "C-STORE 4 associations, 1 node (inst/s)", True),
    Metric("store2_rate", "C-STORE 4 associations, 2 nodes (inst/s)", True),
    Metric("store_scaling", "C-STORE: 2 nodes / 1 node", True),
    Metric("store1_cpu_ms", "C-STORE, 1 node: server CPU per instance (ms)", False),
    Metric("store1_db_cpu_ms", "C-STORE, 1 node: PostgreSQL CPU per instance (ms)", False),
    Metric("store1_busy_cores", f"C-STORE, 1 node: machine busy (cores of {os.cpu_count()})", False),
    Metric("store2_busy_cores", f"C-STORE, 2 nodes: machine busy (cores of {os.cpu_count()})", False),
    Metric("store2_conflicts", "C-STORE, 2 nodes: ingest batches run again, lock first (%)", False),
    Metric("scale_first_rate", "scale: rate over the first tenth (inst/s)", True),
    Metric("scale_last_rate", "scale: rate over the last tenth (inst/s)", True),
    Metric("scale_kept", "scale: last tenth / first tenth", True),
    Metric("scale_first_cpu_ms", "scale: CPU per instance, first tenth (ms)", False),
    Metric("scale_last_cpu_ms", "scale: CPU per instance, last tenth (ms)", False),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3000)
    parser.add_argument("--only", choices=["isengard", "orthanc"])
    parser.add_argument("--scale", type=int, default=0, help="also ingest N instances into one Isengard node")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    exit_on_sigterm()
    outcome = Outcome()
    kinds = [kind for kind in ("isengard", "orthanc") if args.only in (None, kind)]
    if "orthanc" in kinds and not (ORTHANC_BINARY.exists() and PLUGIN.exists()):
        print(f"note: {ORTHANC_BINARY} or {PLUGIN} missing, measuring Isengard alone", file=sys.stderr)
        kinds.remove("orthanc")
    with scratch_folder("isengard-cluster-") as scratch:
        root = Path(scratch)
        postgres = Postgres().start()
        try:
            for kind in kinds:
                try:
                    run_kind(kind, args.instances, root, postgres, outcome.results.setdefault(kind, {}))
                except (WrongAnswer, RuntimeError, OSError, requests.RequestException) as error:
                    outcome.warnings.append(f"{kind} failed: {error}")
            if args.scale and "isengard" in kinds:
                outcome.results.setdefault("isengard", {}).update(scale(args.scale, root, postgres))
        finally:
            postgres.stop()
    text = table(outcome.results, METRICS, [f"Ingest on PostgreSQL 15 (loopback), {args.instances} instances a phase"])
    return outcome.finish(text, args.json, {"instances": args.instances, "scale": args.scale}, METRICS)


if __name__ == "__main__":
    sys.exit(main())
