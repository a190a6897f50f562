"""What scripts reach of the database since Orthanc 1.12.9-1.13: the key-value stores and
queues kept in the index (Lua ``StoreKeyValue``..., orthanc-python 7.0's functions),
``SetStableStatus``, and Lua's ``OutgoingCStoreInstanceFilter`` before our C-STOREs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from test_lua import MALATERRE, execute, variant, wait_for

from conftest import ON_POSTGRESQL, Isengard, sample

#: Lua: the stable study is noted in a key-value store; the outgoing filter notes what it
#: saw and lets everything go but the patient SKIP.
LUA_SCRIPT = """
function OnStableStudy(id, tags, metadata)
  StoreKeyValue('stable', id, tags['StudyInstanceUID'])
end

function OutgoingCStoreInstanceFilter(instance, destination)
  StoreKeyValue('outgoing', instance['PatientID'], DumpJson(destination))
  return instance['PatientID'] ~= 'SKIP'
end
"""

#: Python: ``/kv/{store}`` lists a store with the iterator; ``/queues`` and ``/stable/{id}``
#: run the queue and stability functions and answer what they returned.
PYTHON_SCRIPT = '''
import json
import time
import orthanc


def error(call):
    try:
        call()
    except orthanc.OrthancException as e:
        return ["OrthancException", e.args[0]]
    except TypeError:
        return ["TypeError"]
    return None


def pairs(output, uri, **request):
    iterator = orthanc.CreateKeysValuesIterator(request["groups"][0])
    found = []
    while iterator.Next():
        found.append([iterator.GetKey(), iterator.GetValue().decode()])
    output.AnswerBuffer(json.dumps(found), "application/json")


def queues(output, uri, **request):
    front, back = orthanc.QueueOrigin.FRONT, orthanc.QueueOrigin.BACK
    for value in (b"a", "b", b"c"):
        orthanc.EnqueueValue("q", value)
    result = {"size": orthanc.GetQueueSize("q"), "front": orthanc.DequeueValue("q", front).decode(),
              "back": orthanc.DequeueValue("q", back).decode()}
    value, value_id = orthanc.ReserveQueueValue("q", front, 60)
    result["reserved"] = value.decode()
    result["size_while_reserved"] = orthanc.GetQueueSize("q")
    result["dequeue_while_reserved"] = orthanc.DequeueValue("q", front)
    result["reserve_while_reserved"] = list(orthanc.ReserveQueueValue("q", front, 60))
    orthanc.AcknowledgeQueueValue("q", value_id)
    result["size_after_ack"] = orthanc.GetQueueSize("q")
    result["ack_twice"] = error(lambda: orthanc.AcknowledgeQueueValue("q", value_id))
    orthanc.EnqueueValue("expiring", b"x")
    # Reservations count whole seconds: one of 1 s, made just before a second ends, would
    # count as expired within a few milliseconds; one of 2 s holds for one second at least.
    _, expiring = orthanc.ReserveQueueValue("expiring", front, 2)
    result["reserved_elsewhere"] = list(orthanc.ReserveQueueValue("expiring", back, 60))
    time.sleep(3.1)  # past the reservation for sure
    result["ack_expired"] = error(lambda: orthanc.AcknowledgeQueueValue("expiring", expiring))
    result["released"] = orthanc.ReserveQueueValue("expiring", back, 60)[0].decode()
    result["empty_value"] = error(lambda: orthanc.EnqueueValue("q", b""))
    result["no_store"] = error(lambda: orthanc.StoreKeyValue("", "k", b"v"))
    result["no_queue"] = error(lambda: orthanc.GetQueueSize(""))
    result["zero_timeout"] = error(lambda: orthanc.ReserveQueueValue("q", front, 0))
    result["absent"] = orthanc.GetKeyValue("python", "absent")
    orthanc.StoreKeyValue("python", "k", b"\\x00\\xff")
    result["binary"] = list(orthanc.GetKeyValue("python", "k"))
    orthanc.DeleteKeyValue("python", "k")
    result["deleted"] = orthanc.GetKeyValue("python", "k")
    output.AnswerBuffer(json.dumps(result), "application/json")


def stable(output, uri, **request):
    resource = request["groups"][0]
    result = [orthanc.SetStableStatus(resource, orthanc.StableStatus.STABLE),
              orthanc.SetStableStatus(resource, orthanc.StableStatus.STABLE),
              orthanc.SetStableStatus(resource, orthanc.StableStatus.UNSTABLE)]
    output.AnswerBuffer(json.dumps(result), "application/json")


orthanc.RegisterRestCallback("/kv/(.*)", pairs)
orthanc.RegisterRestCallback("/queues", queues)
orthanc.RegisterRestCallback("/stable/(.*)", stable)
'''


def scripted(workdir: Path, **options: object) -> Isengard:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "database.lua").write_text(LUA_SCRIPT)
    (workdir / "database.py").write_text(PYTHON_SCRIPT)
    return Isengard(workdir, ExecuteLuaEnabled=True, StableAge=600, LuaScripts=["database.lua"],
                    PythonScript=str(workdir / "database.py"), **options)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    running = scripted(tmp_path_factory.mktemp("database")).start()
    yield running
    running.stop()


@pytest.mark.skipif(ON_POSTGRESQL, reason="opens the SQLite file of an index written before key-value stores")
def test_key_values_survive_a_restart_and_an_index_older_than_them(tmp_path: Path) -> None:
    server = scripted(tmp_path)
    server.start()
    server.stop()
    with closing(sqlite3.connect(tmp_path / "storage" / "index.sqlite")) as db, db:  # as an index of before 1.13
        db.executescript("DROP TABLE KeyValueStores; DROP TABLE Queues;")
    server.start()
    try:
        assert server.json("/system")["Capabilities"] == {
            "HasExtendedChanges": True, "HasExtendedFind": True, "HasKeyValueStores": True,
            "HasQueues": True, "HasReserveQueueValue": True}
        assert execute(server, """
            StoreKeyValue('lua', 'b', 'two')
            StoreKeyValue('lua', 'a', 'one')
            StoreKeyValue('lua', 'c', 3)
            StoreKeyValue('other', 'a', 'elsewhere')
            StoreKeyValue('lua', 'b', 'TWO')
            DeleteKeyValue('lua', 'c')
            print(GetKeyValue('lua', 'a'), GetKeyValue('lua', 'c'), GetKeyValue('lua', 'z'))
            print(GetKeyValue('lua'), StoreKeyValue('lua', 'x'))
        """).splitlines() == ["one, nil, nil", "nil, nil"]
        assert "Lua: Bad parameters to GetKeyValue()" in server.log()
        server.stop()
        server.start()
        assert execute(server, "print(GetKeyValue('lua', 'b'))") == "TWO\n"
        assert server.json("/kv/lua") == [["a", "one"], ["b", "TWO"]]  # Python sees Lua's, in key order
        assert server.json("/kv/nothing") == []
    finally:
        server.stop()


def test_python_queues_and_key_values(server: Isengard) -> None:
    result = server.json("/queues")
    assert result == {
        "size": 3, "front": "a", "back": "c", "reserved": "b", "size_while_reserved": 1,
        "dequeue_while_reserved": None, "reserve_while_reserved": [None, None], "size_after_ack": 0,
        "ack_twice": ["OrthancException", 17], "reserved_elsewhere": [None, None],
        "ack_expired": ["OrthancException", 17], "released": "x",
        "empty_value": ["OrthancException", 3], "no_store": ["OrthancException", 3],
        "no_queue": ["TypeError"], "zero_timeout": ["TypeError"],
        "absent": None, "binary": [0, 255], "deleted": None}


def test_set_stable_status_emits_the_stable_event_now(server: Isengard) -> None:
    uploaded = server.upload(variant(MALATERRE, "FORCED"))
    study, series = uploaded["ParentStudy"], uploaded["ParentSeries"]
    assert server.json(f"/studies/{study}")["IsStable"] is False
    assert execute(server, f"""
        print(SetStableStatus('{study}', true))
        print(SetStableStatus('{study}', true))
        print(SetStableStatus('nonexistent', true))
        print(SetStableStatus('{uploaded["ID"]}', true))
    """).splitlines() == ["true", "false", "nil", "false"]
    assert server.json(f"/studies/{study}")["IsStable"] is True
    uid = server.json(f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"]
    assert wait_for(lambda: execute(server, f"print(GetKeyValue('stable', '{study}'))") == f"{uid}\n")
    changes = server.json("/changes?limit=1000")["Changes"]
    assert [c["ChangeType"] for c in changes if c["ID"] == study].count("StableStudy") == 1
    assert execute(server, f"print(SetStableStatus('{study}', false))") == "true\n"
    assert server.json(f"/studies/{study}")["IsStable"] is False
    # Python: the series is unstable, then stable, then unstable again.
    assert server.json(f"/stable/{series}") == [[0, 1], [0, 0], [0, 1]]
    assert server.json("/stable/nonexistent") == [[0, 0], [0, 0], [0, 0]]
    assert server.json(f"/series/{series}")["IsStable"] is False


def test_outgoing_filter_skips_instances_of_store_jobs_lua_and_c_move(tmp_path: Path) -> None:
    target = Isengard(tmp_path / "target", DicomAet="TARGET").start()
    router = scripted(tmp_path / "router", DicomAet="ROUTER", DicomModalities={
        "target": {"AET": "TARGET", "Host": "127.0.0.1", "Port": target.dicom_port}})
    target.config["DicomModalities"] = {"router": ["ROUTER", "127.0.0.1", router.dicom_port]}
    target.config_path.write_text(json.dumps(target.config))
    target.stop()
    target.start()
    router.start()
    try:
        kept = router.upload(variant(MALATERRE, "KEEP"))
        skipped = router.upload(variant(MALATERRE, "SKIP"))
        answer = router.post("/modalities/target/store", json={
            "Resources": [kept["ID"], skipped["ID"]], "Synchronous": True})
        assert answer.status_code == 200, answer.text
        assert target.json("/instances") == [kept["ID"]]
        assert json.loads(execute(router, "print(GetKeyValue('outgoing', 'SKIP'))")) == {
            "RemoteAet": "TARGET", "RemoteIp": "127.0.0.1"}
        target.clear()
        assert execute(router, f"print(SendToModality('{skipped['ID']}', 'target'))") == f"{skipped['ID']}\n"
        assert target.json("/instances") == []
        moved = target.post("/modalities/router/move", json={
            "Level": "Patient", "Resources": [{"PatientID": "SKIP"}, {"PatientID": "KEEP"}],
            "TargetAet": "TARGET"})
        assert moved.status_code == 200, moved.text
        assert wait_for(lambda: target.json("/instances") == [kept["ID"]])
    finally:
        router.stop()
        target.stop()


def test_a_failing_outgoing_filter_fails_the_store_job(tmp_path: Path) -> None:
    target = Isengard(tmp_path / "target", DicomAet="TARGET").start()
    (tmp_path / "broken.lua").write_text("function OutgoingCStoreInstanceFilter(i, d) return 'yes' end")
    router = Isengard(tmp_path / "router", LuaScripts=[str(tmp_path / "broken.lua")], DicomModalities={
        "target": {"AET": "TARGET", "Host": "127.0.0.1", "Port": target.dicom_port}}).start()
    try:
        instance = router.upload(sample("ColorTestMalaterre.dcm"))["ID"]
        answer = router.post("/modalities/target/store", json={"Resources": [instance], "Synchronous": True})
        assert answer.status_code == 500 and answer.json()["OrthancError"] == \
            "The Lua function is not a predicate (only true/false outputs allowed)"
        assert target.json("/instances") == []
    finally:
        router.stop()
        target.stop()
