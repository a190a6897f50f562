"""The PostgreSQL index: the same :class:`Index` on both engines, and Isengard serving from
PostgreSQL as with Orthanc's plugin (``EnableIndex``, ``Lock``, ``/system``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_cluster import PostgresCluster

from conftest import TESTDATA, Isengard
from server.dicom.main_tags import Level
from server.storage.index import ATTACHMENT_DICOM, Attachment, Change, Index, Metadata
from server.storage.postgresql import PostgresDatabase, Settings, translate

PATIENT, STUDY, SERIES, INSTANCE = Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE
NAME, PATIENT_ID = (0x0010, 0x0010), (0x0010, 0x0020)


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    if request.param == "sqlite":
        opened = Index(tmp_path / "index.sqlite")
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_server")
        opened = Index(PostgresDatabase(Settings.from_config(cluster.section())))
    yield opened
    opened.close()


def _store(index: Index, suffix: str, name: str) -> dict[Level, int]:
    ids = {level: f"{level.name}-{suffix}" for level in Level}
    tags: dict[Level, dict[tuple[int, int], str]] = {level: {} for level in Level}
    tags[PATIENT] = {NAME: name, PATIENT_ID: f"id{suffix}"}
    with index.transaction() as db:
        internal, _ = index.insert_hierarchy(db, ids, tags, "20240101T000000")
    return internal


def test_hierarchy_changes_and_deletion(index: Index) -> None:
    first = _store(index, "1", "Élodie^Martin")
    second = _store(index, "2", "Jean")
    assert index.list_ids(PATIENT) == ["PATIENT-1", "PATIENT-2"]
    assert index.list_ids(INSTANCE, since=1) == ["INSTANCE-2"]
    assert index.counts()[0][SERIES] == 2
    study = index.lookup("STUDY-1", STUDY)
    assert study is not None and index.main_tags(study.internal_id)[NAME] == "Élodie^Martin"
    assert [r.public_id for r in index.descendants(first[PATIENT], INSTANCE)] == ["INSTANCE-1"]
    changes, done, last = index.changes(0, 100)
    assert done and last == 8 and [c.change for c in changes[:4]] == [
        Change.NewInstance, Change.NewSeries, Change.NewStudy, Change.NewPatient]
    patient = index.lookup("PATIENT-2")
    assert patient is not None
    with index.transaction() as db:
        deleted, _, remaining = index.delete(db, patient)
    assert {r.public_id for r in deleted} == {f"{level.name}-2" for level in Level}
    assert remaining is None and index.lookup("INSTANCE-2") is None
    assert index.changes(0, 100)[2] == 8  # the last change ever logged, even if deleted since
    assert second[PATIENT] not in [r.internal_id for r in index.children(first[PATIENT])]


def test_metadata_revisions_and_key_values(index: Index) -> None:
    internal = _store(index, "1", "A")
    assert index.set_metadata(internal[SERIES], 1024, "x") == 0
    assert index.set_metadata(internal[SERIES], 1024, "y") == 1
    assert index.metadata_revision(internal[SERIES], 1024) == ("y", 1)
    index.store_key_value("s", "b", b"2")
    index.store_key_value("s", "a", b"1")
    index.store_key_value("s", "a", b"3")
    assert index.list_keys_values("s", None, 10) == [("a", b"3"), ("b", b"2")]
    index.enqueue_value("q", b"one")
    index.enqueue_value("q", b"two")
    reserved = index.reserve_queue_value("q", False, 100, 200)
    assert reserved is not None and reserved[1] == b"one"
    assert index.dequeue_value("q", False, 150) == b"two"
    assert index.acknowledge_queue_value("q", reserved[0], 150)
    assert index.queue_size("q") == 0
    assert index.increment_property(3) == 1 and index.increment_property(3) == 2


def test_metadata_and_attachments_of_many(index: Index) -> None:
    """What a C-MOVE looks up for its instances at once: their SOP class and syntax, their files."""
    first, second = _store(index, "1", "A"), _store(index, "2", "B")
    ids = [first[INSTANCE], second[INSTANCE]]
    with index.transaction() as db:
        index.set_metadata_in(db, first[INSTANCE], {Metadata.SopClassUid: "1.2.3", Metadata.TransferSyntax: "1.2.4",
                                                    Metadata.LastUpdate: "20240101T000000"})
        index.add_attachment(db, first[INSTANCE], Attachment(ATTACHMENT_DICOM, "uuid-1", 10, 12, 1, "m1", "m2"))
    assert index.metadata_many(ids, (Metadata.SopClassUid, Metadata.TransferSyntax)) == {
        first[INSTANCE]: {Metadata.SopClassUid: "1.2.3", Metadata.TransferSyntax: "1.2.4"}, second[INSTANCE]: {}}
    assert index.attachments_many(ids, ATTACHMENT_DICOM) == {
        first[INSTANCE]: index.attachments(first[INSTANCE])[ATTACHMENT_DICOM]}


def test_find_in_sql_matches_case_accents_and_wildcards(index: Index) -> None:
    _store(index, "1", "Élodie^Martin")
    _store(index, "2", "elodie^[x]%_")
    sql = "SELECT internalId FROM Resources r WHERE resourceType=0 AND internalId IN " \
          "(SELECT id FROM MainDicomTags WHERE tagGroup=16 AND tagElement=16 AND {})"
    with index.reading() as db:
        for condition, args, expected in [
                ("orthanc_upper(value) GLOB ?", ["ÉLODIE*"], 1),
                ("upper(value) GLOB ?", ["ELODIE*"], 1),
                ("value GLOB ?", ["elodie^[[]x]%_"], 1),
                ("value GLOB ?", ["?lodie*"], 2),
                ("value GLOB ?", ["elodie^_x*"], 0)]:
            rows = db.execute(sql.format(condition), args).fetchall()
            assert len(rows) == expected, (condition, args)
    assert [r.public_id for r in index.lookup_identifier("ID1")] == ["PATIENT-1"]


def _recycling_order(index: Index) -> list[str]:
    with index.reading() as db:
        return [row[0] for row in db.execute(
            "SELECT r.publicId FROM PatientRecyclingOrder o JOIN Resources r "
            "ON r.internalId=o.patientId ORDER BY o.seq")]


def test_recycling_order_moves_a_patient_to_the_end_once(index: Index) -> None:
    patients = {suffix: _store(index, suffix, suffix)[PATIENT] for suffix in "123"}
    for touched, expected in [("1", "231"), ("1", "231"), ("3", "213"), ("2", "132")]:
        with index.transaction() as db:
            index.tag_most_recent_patient(db, patients[touched])
        assert _recycling_order(index) == [f"PATIENT-{n}" for n in expected]
    index.set_protected(patients["1"], True)  # out of the order: touching it keeps it out
    with index.transaction() as db:
        index.tag_most_recent_patient(db, patients["1"])
    assert _recycling_order(index) == ["PATIENT-3", "PATIENT-2"]


def test_a_write_reads_its_own_answers(index: Index) -> None:
    """Inside a write (pipelined on PostgreSQL), keys and counts are those of each statement."""
    with index.transaction() as db:
        first = db.execute("INSERT INTO Resources(resourceType, publicId) VALUES(0, 'a')")
        db.execute("INSERT INTO Resources(resourceType, publicId) VALUES(0, 'b')")
        deleted = db.execute("DELETE FROM Resources WHERE publicId IN ('a', 'b', 'c')")
        assert deleted.rowcount == 2
        assert first.lastrowid is not None and first.lastrowid == first.lastrowid
    assert index.counts()[0][PATIENT] == 0


def test_a_failed_statement_rolls_back_the_whole_write(index: Index) -> None:
    """A statement's error may come later than the statement on PostgreSQL (whose write
    transactions do not wait for answers they do not read): it still rolls back all, and
    the next transactions work."""
    _store(index, "1", "A")
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        with index.transaction() as db:
            db.execute("INSERT INTO Resources(resourceType, publicId) VALUES(0, 'new')")
            db.execute("INSERT INTO Resources(resourceType, publicId) VALUES(0, 'PATIENT-1')")
            db.execute("INSERT INTO Resources(resourceType, publicId) VALUES(0, 'after')")
    with pytest.raises(RuntimeError):
        with index.transaction() as db:
            db.execute("INSERT INTO Resources(resourceType, publicId) VALUES(0, 'new')")
            raise RuntimeError("refused")
    assert index.list_ids(PATIENT) == ["PATIENT-1"]
    _store(index, "2", "B")
    assert index.list_ids(PATIENT) == ["PATIENT-1", "PATIENT-2"]


def test_statements_are_translated_once() -> None:
    assert translate("INSERT OR REPLACE INTO Jobs VALUES(?, ?)") == (
        b"INSERT INTO Jobs VALUES($1, $2) ON CONFLICT (id) DO UPDATE SET document=EXCLUDED.document",
        False)
    assert translate("SELECT 1 WHERE a IS NOT ? AND b LIKE '5%' LIMIT -1 OFFSET ?") == (
        b"SELECT 1 WHERE a IS DISTINCT FROM $1 AND b LIKE '5%' LIMIT ALL OFFSET $2", False)
    assert translate("INSERT INTO Changes(seq) VALUES(?), (?)") == (
        b"INSERT INTO Changes(seq) VALUES($1), ($2) RETURNING seq", True)
    assert translate("INSERT INTO Resources(publicId) VALUES(?)")[1] is True
    assert translate.cache_info().currsize > 0


def _server(tmp_path: Path, name: str, section: dict[str, Any]) -> Isengard:
    return Isengard(tmp_path / name, PostgreSQL=section, StorageDirectory=str(tmp_path / "storage"))


def test_rest_scenario_on_postgresql(postgres_server: PostgresCluster, tmp_path: Path) -> None:
    server = _server(tmp_path, "a", postgres_server.section()).start()
    try:
        system = server.json("/system")
        assert system["DatabaseBackendPlugin"] == "PostgreSQL" and system["DatabaseVersion"] == 6
        files = sorted(TESTDATA.glob("*.dcm"))[:4]
        uploaded = [server.upload(path) for path in files]
        assert server.upload(files[0])["Status"] == "AlreadyStored"
        stats = server.json("/statistics")
        assert stats["CountInstances"] == 4
        assert int(stats["TotalDiskSize"]) == sum(path.stat().st_size for path in files)
        study = uploaded[0]["ParentStudy"]
        name = server.json(f"/studies/{study}")["PatientMainDicomTags"].get("PatientName", "")
        found = server.post("/tools/find", json.dumps({
            "Level": "Study", "Query": {"PatientName": (name[:2] + "*").lower() if name else "*"}}))
        assert found.status_code == 200 and study in found.json()
        assert server.put(f"/studies/{study}/labels/urgent", b"").status_code == 200
        assert server.json("/tools/labels") == ["urgent"]
        by_label = server.post("/tools/find", json.dumps({"Level": "Study", "Query": {},
                                                          "Labels": ["urgent"]})).json()
        assert by_label == [study]
        revision = server.put(f"/studies/{study}/metadata/1024", b"first").headers["ETag"]
        assert server.put(f"/studies/{study}/metadata/1024", b"second",
                          headers={"If-Match": revision}).status_code == 200
        stale = server.put(f"/studies/{study}/metadata/1024", b"third", headers={"If-Match": revision})
        assert stale.status_code == 409
        assert server.get(f"/studies/{study}/metadata/1024").text == "second"
        changes = server.json("/changes?since=0&limit=1000")
        assert changes["Done"] and changes["Changes"][-1]["ChangeType"] == "UpdatedMetadata"
        assert server.delete(f"/studies/{study}").status_code == 200
        assert server.json("/statistics")["CountStudies"] == 3
    finally:
        server.stop()
        server.assert_loop_never_blocked()


def test_lock_refuses_a_second_node_and_lock_false_shares(postgres_server: PostgresCluster,
                                                          tmp_path: Path) -> None:
    database = postgres_server.create_database()
    first = _server(tmp_path, "a", postgres_server.section(database)).start()
    try:
        second = _server(tmp_path, "b", postgres_server.section(database))
        with pytest.raises(RuntimeError, match="exited with status 1"):
            second.start()
        assert '"Lock": false' in second.log() and "locked by another instance" in second.log()
    finally:
        first.stop()
    nodes = [_server(tmp_path, name, postgres_server.section(database, Lock=False)).start()
             for name in ("c", "d")]
    try:
        instance = nodes[0].upload(sorted(TESTDATA.glob("*.dcm"))[0])["ID"]
        assert nodes[1].json("/instances") == [instance]
        assert nodes[1].json("/changes?last")["Last"] == nodes[0].json("/changes?last")["Last"]
        assert nodes[1].delete(f"/instances/{instance}").status_code == 200
        assert nodes[0].json("/instances") == []
    finally:
        for node in nodes:
            node.stop()


def test_enable_index_false_keeps_sqlite(postgres_server: PostgresCluster, tmp_path: Path) -> None:
    server = _server(tmp_path, "a", {**postgres_server.section(), "EnableIndex": False}).start()
    try:
        assert server.json("/system")["DatabaseBackendPlugin"] is None
        assert (tmp_path / "storage" / "index.sqlite").exists()
    finally:
        server.stop()


def test_section_without_the_plugin_keeps_sqlite(tmp_path: Path) -> None:
    """As Orthanc ignores the section when its plugin is not loaded (Orthanc's own suite
    configures it with ``"Plugins": []`` and no database behind)."""
    section = {"EnableIndex": True, "EnableStorage": True, "Host": "127.0.0.1", "Port": 9}
    server = Isengard(tmp_path, PostgreSQL=section, Plugins=[]).start()
    try:
        assert server.json("/system")["DatabaseBackendPlugin"] is None
    finally:
        server.stop()
