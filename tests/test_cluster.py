"""Several Isengard nodes on one PostgreSQL index and one storage directory (docs/cluster.md):
real processes, concurrent clients, a node killed."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pg_cluster import PostgresCluster
from test_metrics import scrape

from conftest import REPO, Isengard, sample
from server.storage.area import StorageArea

BASE = sample("PatientIdsCollision/Image1.dcm")

#: Each node's Lua script: the stable events it fired, in the index's key-value store
#: (shared), keyed by resource and node, so that the test counts them over the cluster.
STABLE_LUA = """
function OnStableStudy(id, tags, metadata) StoreKeyValue('stable', id .. '@{node}', 'study') end
function OnStableSeries(id, tags, metadata) StoreKeyValue('stable', id .. '@{node}', 'series') end
function OnStablePatient(id, tags, metadata) StoreKeyValue('stable', id .. '@{node}', 'patient') end
"""


def _instances(count: int, patients: int = 3) -> list[bytes]:
    """Distinct instances built from one real file: ``patients`` patients (one study
    each), two series per study."""
    ds = pydicom.dcmread(BASE)
    files = []
    for i in range(count):
        patient = i % patients
        ds.PatientID = f"CLUSTER-{patient}"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1.{patient}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.2.{patient}.{i % 2}"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.3.{i}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


class Cluster:
    """Nodes on one database and one storage folder, ``"Lock": false`` on each."""

    def __init__(self, postgres: PostgresCluster, root: Path, **options: Any) -> None:
        self.postgres = postgres
        self.database = postgres.create_database()
        self.root = root
        self.storage = root / "storage"
        self.options = options
        self.nodes: list[Isengard] = []

    def node(self, name: str, **options: Any) -> Isengard:
        lua = self.root / f"{name}.lua"
        lua.write_text(STABLE_LUA.replace("{node}", name))
        node = Isengard(self.root / name, PostgreSQL=self.postgres.section(self.database, Lock=False),
                        StorageDirectory=str(self.storage), LuaScripts=[str(lua)],
                        **{**self.options, **options})
        self.nodes.append(node)
        return node

    def start(self, *names: str) -> list[Isengard]:
        nodes = [self.node(name) for name in names]
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(lambda node: node.start(), nodes))
        return nodes

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.stop()
                node.assert_loop_never_blocked()

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with self.postgres.connect(self.database) as connection:
            return connection.execute(query).fetchall()

    def stable_events(self) -> Counter[str]:
        """How many nodes fired each resource's stable event (Lua, in the shared store)."""
        return Counter(key.split("@")[0] for (key,) in self.sql(
            "SELECT key FROM KeyValueStores WHERE storeId='stable'"))

    def stored_files(self) -> set[str]:
        return {p.name for p in self.storage.glob("??/??/*") if p.is_file()}

    def staged_files(self) -> list[Path]:
        """Files under ``tmp/`` but the running nodes' lock files."""
        return [p for p in (self.storage / "tmp").rglob("*") if p.is_file() and p.name != ".lock"]


@pytest.fixture
def cluster(postgres_server: PostgresCluster, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def factory(**options: Any) -> Cluster:
        made.append(Cluster(postgres_server, tmp_path, **options))
        return made[-1]

    yield factory
    for each in made:
        each.stop()


def _upload_all(node: Isengard, files: list[bytes], threads: int = 3) -> list[tuple[int, str]]:
    """Every file to ``node``, ``threads`` at a time: (HTTP status, Status) of each."""
    local = threading.local()

    def one(data: bytes) -> tuple[int, str]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        answer = local.session.post(node.url + "/instances", data=data, timeout=60)
        return answer.status_code, answer.json().get("Status", "") if answer.ok else answer.text

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, files))


def _upload_everywhere(nodes: list[Isengard], files: list[bytes]) -> list[list[tuple[int, str]]]:
    with ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(lambda node: _upload_all(node, files), nodes))


def _wait(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _changes(node: Isengard, kind: str) -> Counter[str]:
    answer = node.json("/changes?since=0&limit=100000")
    return Counter(c["ID"] for c in answer["Changes"] if c["ChangeType"] == kind)


def test_three_nodes_store_the_same_instances_once_and_agree(cluster: Callable[..., Cluster]) -> None:
    nodes_of = cluster(StableAge=1)
    nodes = nodes_of.start("a", "b", "c")
    files = _instances(60)
    answers = _upload_everywhere(nodes, files)
    for i in range(len(files)):
        statuses = sorted(answers[n][i] for n in range(len(nodes)))
        assert statuses == [(200, "AlreadyStored"), (200, "AlreadyStored"), (200, "Success")], statuses
    statistics = [node.json("/statistics") for node in nodes]
    assert statistics[0]["CountInstances"] == 60 and statistics[0]["CountStudies"] == 3
    assert statistics[0]["CountSeries"] == 6 and statistics[0]["CountPatients"] == 3
    assert all(s == statistics[0] for s in statistics)
    for node in nodes:  # every batch took the writers' lock late; those that ran again are counted
        counted = scrape(node)
        batches = counted["isengard_ingest_late_lock_batches_total"]
        assert 1 <= batches <= 60 and 0 <= counted["isengard_ingest_late_lock_conflicts_total"] <= batches
    instances = sorted(nodes[0].json("/instances"))
    find = json.dumps({"Level": "Series", "Query": {"PatientID": "CLUSTER-1"}})
    for node in nodes:
        assert sorted(node.json("/instances")) == instances
        assert sorted(node.post("/tools/find", find).json()) == sorted(nodes[0].post("/tools/find", find).json())
    uuids = {nodes[1].json(f"/instances/{i}")["FileUuid"] for i in instances}
    assert nodes_of.stored_files() == uuids  # one file per instance, no orphan
    assert nodes_of.staged_files() == []
    studies = nodes[0].json("/studies")
    series = nodes[0].json("/series")
    patients = nodes[0].json("/patients")
    _wait(lambda: len(nodes_of.stable_events()) == 12)
    # Each stable event fired once over the cluster, on one node; logged once in /changes.
    assert nodes_of.stable_events() == Counter({i: 1 for i in studies + series + patients})
    for node in nodes:
        assert node.json("/changes?since=0&limit=100000") == nodes[0].json("/changes?since=0&limit=100000")
        assert _changes(node, "StableStudy") == Counter({study: 1 for study in studies})
        assert _changes(node, "StableSeries") == Counter({s: 1 for s in series})
        assert _changes(node, "StablePatient") == Counter({p: 1 for p in patients})
        assert node.json(f"/studies/{studies[0]}")["IsStable"] is True


def test_overwriting_nodes_leave_one_file_per_instance(cluster: Callable[..., Cluster]) -> None:
    nodes_of = cluster(OverwriteInstances=True)
    nodes = nodes_of.start("a", "b")
    files = _instances(30)
    answers = _upload_everywhere(nodes, files)
    assert {answer for each in answers for answer in each} == {(200, "Success")}
    instances = nodes[0].json("/instances")
    assert len(instances) == 30
    uuids = {nodes[1].json(f"/instances/{i}")["FileUuid"] for i in instances}
    assert nodes_of.stored_files() == uuids
    assert nodes_of.staged_files() == []
    for node in nodes:
        for instance in instances[:3]:
            assert node.get(f"/instances/{instance}/file").content in files


def test_a_dead_nodes_stabilities_fire_on_a_live_node(cluster: Callable[..., Cluster]) -> None:
    """A node killed (-9) right after an ingest: another node makes the study stable. The
    dead node's staged files are recovered at its restart, never a live node's."""
    nodes_of = cluster(StableAge=3)  # the kill comes well before the doomed node could claim
    doomed, live = nodes_of.start("doomed", "live")
    stored = doomed.upload(_instances(1)[0])
    assert live.process is not None and doomed.process is not None
    live_staging, = (nodes_of.storage / "tmp").glob(f"{live.process.pid}-*")
    doomed_staging, = (nodes_of.storage / "tmp").glob(f"{doomed.process.pid}-*")
    (doomed_staging / "interrupted-upload").write_bytes(b"staged, never indexed")
    in_flight = live_staging / "in-flight-upload"
    in_flight.write_bytes(b"an upload the live node is staging")
    doomed.kill()
    study = stored["ParentStudy"]
    assert live.json(f"/studies/{study}")["IsStable"] is False
    _wait(lambda: live.json(f"/studies/{study}")["IsStable"])
    _wait(lambda: len(nodes_of.stable_events()) == 3)
    assert nodes_of.stable_events() == Counter(
        {stored["ParentStudy"]: 1, stored["ParentSeries"]: 1, stored["ParentPatient"]: 1})
    assert set(nodes_of.sql("SELECT key FROM KeyValueStores")) == {
        (f"{stored[k]}@live",) for k in ("ParentStudy", "ParentSeries", "ParentPatient")}
    assert _changes(live, "StableStudy") == Counter({study: 1})
    doomed.start()
    assert in_flight.read_bytes() == b"an upload the live node is staging"
    assert not doomed_staging.exists()  # the dead process's folder was recovered
    assert len(list((nodes_of.storage / "tmp").iterdir())) == 2


def test_a_restarted_sqlite_node_still_fires_its_pending_stabilities(tmp_path: Path) -> None:
    node = Isengard(tmp_path / "node", StableAge=2).start()
    try:
        stored = node.upload(_instances(1)[0])
        node.kill()
        node.start()
        _wait(lambda: node.json(f"/studies/{stored['ParentStudy']}")["IsStable"])
        assert _changes(node, "StableStudy") == Counter({stored["ParentStudy"]: 1})
    finally:
        node.stop()


def test_recycling_and_revisions_with_two_writers(cluster: Callable[..., Cluster]) -> None:
    nodes_of = cluster(MaximumPatientCount=2, CheckRevisions=True)
    nodes = nodes_of.start("a", "b")
    files = _instances(8, patients=8)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda pair: _upload_all(pair[0], pair[1], 2),
                                [(nodes[0], files[0::2]), (nodes[1], files[1::2])]))
    assert {a for each in answers for a in each} == {(200, "Success")}
    for node in nodes:
        assert node.json("/statistics")["CountPatients"] == 2
    uuids = {nodes[0].json(f"/instances/{i}")["FileUuid"] for i in nodes[0].json("/instances")}
    assert nodes_of.stored_files() == uuids

    study = nodes[0].json("/studies")[0]
    path = f"/studies/{study}/metadata/1024"
    etag = nodes[0].put(path, b"first").headers["ETag"]

    def edit(pair: tuple[Isengard, bytes]) -> int:
        return requests.put(pair[0].url + path, data=pair[1], headers={"If-Match": etag},
                            timeout=30).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(edit, [(nodes[0], b"from a"), (nodes[1], b"from b")]))
    assert statuses == [200, 409]
    assert nodes[0].get(path).text == nodes[1].get(path).text in ("from a", "from b")
    assert nodes[1].put(path, b"stale", headers={"If-Match": etag}).status_code == 409


def test_removing_a_file_another_node_has_not_published_yet(tmp_path: Path) -> None:
    """A writer deletes (or overwrites) an instance right after another node committed it,
    before that node moved the file into place: the staged file is removed, the late
    publish finds nothing, and no orphan is left."""
    writer, deleter = StorageArea(tmp_path), StorageArea(tmp_path)
    staged = writer.stage(b"committed, not yet published")
    deleter.remove(staged.uuid)
    writer.publish(staged.uuid)
    assert not writer.path(staged.uuid).exists() and not (writer.tmp / staged.uuid).exists()
    published = writer.stage(b"published")
    writer.publish(published.uuid)
    assert deleter.read(published.uuid, staged.compression) == b"published"
    deleter.remove(published.uuid)
    assert not writer.path(published.uuid).exists()
    writer.close()
    deleter.close()


def test_recovery_leaves_live_nodes_folders_alone(tmp_path: Path) -> None:
    """Another process stages a file and journals a removal: a node starting meanwhile
    leaves them alone; once that process is killed, the next start recovers them."""
    script = ("import sys, time; from pathlib import Path; from server.storage.area import StorageArea; "
              "area = StorageArea(Path(sys.argv[1])); staged = area.stage(b'in flight'); "
              "area.journal_removals(['not-indexed']); print(staged.uuid, area.tmp, flush=True); "
              "time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        staged, folder = other.stdout.readline().split()
        starting = StorageArea(tmp_path)
        assert starting.recover(lambda _: False) == (0, 0)
        assert (Path(folder) / staged).exists() and list((tmp_path / "removals").glob("*/*.txt"))
    finally:
        other.kill()
        other.wait()
    restarted = StorageArea(tmp_path)
    assert restarted.recover(lambda uuid: uuid == staged) == (1, 0)
    assert restarted.read(staged, 1) == b"in flight"
    assert not Path(folder).exists() and not list((tmp_path / "removals").glob("*/*.txt"))
    for area in (starting, restarted):
        area.close()
    assert list((tmp_path / "tmp").iterdir()) == [] and list((tmp_path / "removals").iterdir()) == []
