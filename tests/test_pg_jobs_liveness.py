"""The cluster jobs queue's liveness (:mod:`server.storage.pg_jobs`): a node whose database
connection closed (its process ended, ``kill -9`` included) and which has been silent for a
few seconds is dead, and its jobs are taken without waiting for their leases; a node still
connected, or silent only for a moment (its connection cut, the database restarted), keeps
them.

In-process, stores on a real PostgreSQL: each store is one node.  A node's silence is made
by moving back its last renewal, rather than by waiting for it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from pg_cluster import PostgresCluster

from conftest import free_port
from server.storage.pg_jobs import DEAD_AFTER_SECONDS, PostgresJobStore

#: Long enough never to end during a test: a job taken here was taken by liveness.
LEASE = 600.0

Nodes = Callable[[str], PostgresJobStore]


def _prepare(postgres: PostgresCluster) -> str:
    """A fresh database with the index's table of single-node saved jobs, once the database
    server is past its first seconds (no node is taken for dead before)."""
    name = postgres.create_database()
    with postgres.connect(name) as connection:
        connection.execute("CREATE TABLE Jobs(id TEXT PRIMARY KEY, document TEXT)")
        (up,) = connection.execute("SELECT extract(epoch from clock_timestamp() - "
                                   "pg_postmaster_start_time())").fetchone() or (0,)
    time.sleep(max(0.0, DEAD_AFTER_SECONDS + 0.5 - float(up)))
    return name


@pytest.fixture
def database(postgres_server: PostgresCluster) -> str:
    return _prepare(postgres_server)


def _opener(postgres: PostgresCluster, database: str, opened: list[PostgresJobStore]) -> Nodes:
    def node(name: str) -> PostgresJobStore:
        conninfo = f"host=127.0.0.1 port={postgres.port} user=postgres dbname={database}"
        opened.append(PostgresJobStore(conninfo, name, LEASE))
        return opened[-1]

    return node


@pytest.fixture
def nodes(postgres_server: PostgresCluster, database: str) -> Iterator[Nodes]:
    opened: list[PostgresJobStore] = []
    yield _opener(postgres_server, database, opened)
    for store in opened:
        store.close()


def _rows(postgres: PostgresCluster, database: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with postgres.connect(database) as connection:
        return connection.execute(sql, args).fetchall()


def _submit(store: PostgresJobStore, job_id: str) -> None:
    store.insert(job_id, {"State": "Pending", "Priority": 0, "Job": {"Position": 0}}, here=False)


def _silent(postgres: PostgresCluster, database: str, node: str) -> None:
    """As if ``node`` had not renewed its leases for a while."""
    with postgres.connect(database) as connection:
        connection.execute("UPDATE ClusterNodes SET seen = seen - %s WHERE node=%s",
                           (DEAD_AFTER_SECONDS + 1, node))


def _die(store: PostgresJobStore, postgres: PostgresCluster, database: str) -> None:
    """What ``kill -9`` does to a node (its connections closed, nothing released first),
    and the seconds after it."""
    store._alive.close()
    store._pool.close()
    _silent(postgres, database, store.node)


def test_a_dead_nodes_running_job_is_taken_at_once(nodes: Nodes, postgres_server: PostgresCluster,
                                                   database: str) -> None:
    a, b = nodes("a"), nodes("b")
    _submit(a, "job")
    claimed = a.claim()
    assert claimed is not None and claimed.job_id == "job"
    assert b.claim() is None  # a lives and holds its lease
    _die(a, postgres_server, database)
    taken = b.claim()
    assert taken is not None and taken.job_id == "job"
    assert b.renew() == {"job": None}


def test_a_dead_nodes_pending_job_held_for_it_is_taken_at_once(nodes: Nodes, postgres_server: PostgresCluster,
                                                               database: str) -> None:
    """A synchronous call's job waits, leased, for a worker of the caller's node."""
    a, b = nodes("a"), nodes("b")
    a.insert("sync", {"State": "Pending", "Priority": 0, "Job": {}}, here=True)
    assert b.claim() is None
    _die(a, postgres_server, database)
    taken = b.claim()
    assert taken is not None and taken.job_id == "sync"


def test_a_dead_nodes_job_that_only_it_could_run_is_free_for_the_next_node(
        nodes: Nodes, postgres_server: PostgresCluster, database: str) -> None:
    """A job that cannot be serialized is its node's (``home``); that node dead, the next node
    takes it (and fails it: it cannot rebuild it) instead of waiting for the lease."""
    a, b = nodes("a"), nodes("b")
    a.insert("scripted", {"State": "Pending", "Priority": 0, "Job": None}, here=True)
    assert b.claim() is None
    _die(a, postgres_server, database)
    taken = b.claim()
    assert taken is not None and taken.job_id == "scripted"


def test_a_connected_node_silent_for_a_while_keeps_its_jobs(nodes: Nodes, postgres_server: PostgresCluster,
                                                            database: str) -> None:
    """Frozen, swapping, starved of CPU: its lock is held, so only its leases can end."""
    a, b = nodes("a"), nodes("b")
    _submit(a, "job")
    assert a.claim() is not None
    _silent(postgres_server, database, "a")
    assert b.claim() is None


def test_a_node_whose_connection_was_cut_keeps_its_jobs_and_registers_again(
        nodes: Nodes, postgres_server: PostgresCluster, database: str) -> None:
    """The database ended the liveness connection: until its next renewal the node's lock is
    free, but it was seen a moment ago, so it is not dead; the renewal opens the connection
    again and takes the lock, and the node's jobs stay its own even once it falls silent."""
    a, b = nodes("a"), nodes("b")
    _submit(a, "job")
    assert a.claim() is not None
    with postgres_server.connect(database) as connection:
        connection.execute("SELECT pg_terminate_backend(%s)", (a._alive.info.backend_pid,))
    assert b.claim() is None
    assert a.renew() == {"job": None}
    _silent(postgres_server, database, "a")
    assert b.claim() is None


def test_nodes_gone_and_holding_nothing_are_forgotten(nodes: Nodes, postgres_server: PostgresCluster,
                                                      database: str) -> None:
    a, b = nodes("a"), nodes("b")
    _submit(a, "job")
    assert a.claim() is not None
    _die(a, postgres_server, database)
    b.release()
    assert {name for (name,) in _rows(postgres_server, database, "SELECT node FROM ClusterNodes")} == {"a"}
    nodes("c")  # a is dead but still owns its job: kept, as its name is what the job's row says
    assert {name for (name,) in _rows(postgres_server, database, "SELECT node FROM ClusterNodes")} == {"a", "c"}
    assert nodes("d").claim() is not None
    nodes("e")
    assert {name for (name,) in _rows(postgres_server, database, "SELECT node FROM ClusterNodes")} == {"c", "d", "e"}


def test_an_unregistered_owner_keeps_its_lease(nodes: Nodes, postgres_server: PostgresCluster,
                                               database: str) -> None:
    """A node of an earlier Isengard (no liveness lock) is never taken for dead: its jobs
    wait for their leases, as before."""
    b = nodes("b")
    with postgres_server.connect(database) as connection:
        connection.execute("INSERT INTO ClusterJobs(id, state, priority, document, owner, lease_until) "
                           "VALUES('old', 'Running', 0, '{}', 'older-node', "
                           "extract(epoch from clock_timestamp()) + 600)")
    assert b.claim() is None


def _through(call: Callable[[], Any]) -> Any:
    """``call()``, past the errors of the connections that the database's restart broke (the
    pool drops each as it fails)."""
    for _ in range(10):
        try:
            return call()
        except psycopg.OperationalError:
            continue
    raise AssertionError("the database did not come back")


def test_no_node_is_dead_in_the_first_seconds_of_a_restarted_database() -> None:
    """After a restart of PostgreSQL every node's lock is free until its next renewal takes it
    again: a node that reconnects first must not take the others' jobs meanwhile."""
    postgres = PostgresCluster(free_port()).start()
    opened: list[PostgresJobStore] = []
    try:
        database = _prepare(postgres)
        node = _opener(postgres, database, opened)
        a, b = node("a"), node("b")
        _submit(a, "job")
        assert a.claim() is not None
        _silent(postgres, database, "a")  # and its lock free: it looks dead, but for the restart
        postgres.restart()
        _through(b.renew)
        assert _through(b.claim) is None
        time.sleep(DEAD_AFTER_SECONDS + 0.5)  # a did not come back
        taken = _through(b.claim)
        assert taken is not None and taken.job_id == "job"
    finally:
        for store in opened:
            store.close()
        postgres.stop()
