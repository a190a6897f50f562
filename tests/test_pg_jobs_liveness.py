"""The cluster jobs queue's liveness (:mod:`server.storage.pg_jobs`): a node whose database
connection closes (its process ended, ``kill -9`` included) is known dead at once, and its
jobs are taken without waiting for their leases; a node still connected keeps them.

In-process, two stores on a real PostgreSQL: each store is one node."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pg_cluster import PostgresCluster

from server.storage.pg_jobs import PostgresJobStore

#: Long enough never to end during a test: a job taken here was taken by liveness.
LEASE = 600.0

Nodes = Callable[[str], PostgresJobStore]


@pytest.fixture
def database(postgres_server: PostgresCluster) -> str:
    name = postgres_server.create_database()
    with postgres_server.connect(name) as connection:  # the index's table of single-node saved jobs
        connection.execute("CREATE TABLE Jobs(id TEXT PRIMARY KEY, document TEXT)")
    return name


@pytest.fixture
def nodes(postgres_server: PostgresCluster, database: str) -> Iterator[Nodes]:
    opened: list[PostgresJobStore] = []

    def node(name: str) -> PostgresJobStore:
        conninfo = f"host=127.0.0.1 port={postgres_server.port} user=postgres dbname={database}"
        opened.append(PostgresJobStore(conninfo, name, LEASE))
        return opened[-1]

    yield node
    for store in opened:
        store.close()


def _rows(postgres: PostgresCluster, database: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with postgres.connect(database) as connection:
        return connection.execute(sql, args).fetchall()


def _submit(store: PostgresJobStore, job_id: str) -> None:
    store.insert(job_id, {"State": "Pending", "Priority": 0, "Job": {"Position": 0}}, here=False)


def _die(store: PostgresJobStore) -> None:
    """What ``kill -9`` does to a node's connections: closed, nothing released first."""
    store._alive.close()
    store._pool.close()


def test_a_dead_nodes_running_job_is_taken_at_once(nodes: Nodes) -> None:
    a, b = nodes("a"), nodes("b")
    _submit(a, "job")
    claimed = a.claim()
    assert claimed is not None and claimed.job_id == "job"
    assert b.claim() is None  # a lives and holds its lease
    _die(a)
    taken = b.claim()
    assert taken is not None and taken.job_id == "job"
    assert b.renew() == {"job": None}


def test_a_dead_nodes_pending_job_held_for_it_is_taken_at_once(nodes: Nodes) -> None:
    """A synchronous call's job waits, leased, for a worker of the caller's node."""
    a, b = nodes("a"), nodes("b")
    a.insert("sync", {"State": "Pending", "Priority": 0, "Job": {}}, here=True)
    assert b.claim() is None
    _die(a)
    taken = b.claim()
    assert taken is not None and taken.job_id == "sync"


def test_a_dead_nodes_job_that_only_it_could_run_is_free_for_the_next_node(nodes: Nodes) -> None:
    """A job that cannot be serialized is its node's (``home``); that node dead, the next node
    takes it (and fails it: it cannot rebuild it) instead of waiting for the lease."""
    a, b = nodes("a"), nodes("b")
    a.insert("scripted", {"State": "Pending", "Priority": 0, "Job": None}, here=True)
    assert b.claim() is None
    _die(a)
    taken = b.claim()
    assert taken is not None and taken.job_id == "scripted"


def test_a_node_that_lost_its_connection_registers_again_and_keeps_its_jobs(
        nodes: Nodes, postgres_server: PostgresCluster, database: str) -> None:
    """The database ended the liveness connection (a restart, a network cut): until the node
    notices, it reads as dead; its next renewal opens the connection again and takes its lock,
    and the jobs it still holds are its own again."""
    a, b = nodes("a"), nodes("b")
    _submit(a, "job")
    assert a.claim() is not None
    with postgres_server.connect(database) as connection:
        connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE pid=%s", (a._alive.info.backend_pid,))
    assert a.renew() == {"job": None}
    assert b.claim() is None


def test_nodes_gone_and_holding_nothing_are_forgotten(nodes: Nodes, postgres_server: PostgresCluster,
                                                      database: str) -> None:
    a, b = nodes("a"), nodes("b")
    _submit(a, "job")
    assert a.claim() is not None
    _die(a)
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
