"""A throw-away PostgreSQL cluster for the tests: ``initdb`` into a temporary folder (as
the ``postgres`` user when the tests run as root, which PostgreSQL refuses to be), started
on a free loopback port, one fresh database per server that asks, stopped at the end."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

#: Debian's binaries (``postgresql-15``), else whatever ``initdb`` is on the PATH.
_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _binary(name: str) -> str | None:
    for folder in _BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


def available() -> bool:
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


class PostgresCluster:
    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="isengard-pg-"))
        self.data = self.root / "data"
        self._names = itertools.count()
        self._user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            shutil.chown(self.root, self._user)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self._user, "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)

    def start(self) -> PostgresCluster:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        assert initdb and pg_ctl
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8", "-N")
        # Durability is not what these tests check: no fsync, so that they run fast.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-o", options, "start")
        return self

    def restart(self) -> None:
        """Stopped (its clients disconnected, its data flushed: it runs without synchronous
        commits) and started again, with the same options."""
        pg_ctl = _binary("pg_ctl")
        assert pg_ctl
        self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        pg_ctl = _binary("pg_ctl")
        assert pg_ctl
        self._run(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               dbname=database, autocommit=True)

    def create_database(self) -> str:
        name = f"isengard{next(self._names)}"
        with self.connect() as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return name

    def section(self, database: str | None = None, **options: Any) -> dict[str, Any]:
        """The ``PostgreSQL`` configuration section of a server on a (fresh) database."""
        return {"EnableIndex": True, "Host": "127.0.0.1", "Port": self.port,
                "Database": database or self.create_database(), "Username": "postgres",
                "Password": "", **options}
