"""Real servers for the tests: Isengard as a process, and the real Orthanc beside it.

Both listen on free loopback ports; tests talk to them over HTTP and DICOM only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg_cluster
import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO / "tests" / "data"
ORTHANC_BINARY = Path("/usr/sbin/Orthanc")

#: The tests compare Isengard with the real Orthanc Debian ships (1.10.1): every server they
#: start, and the server modules they import, answer as that release, unless the environment
#: says otherwise.  The newer releases' behaviours are tested at their level where they are
#: (tests/test_*_levels.py, helpers.IsengardAtLevel), and by Orthanc's own suite.
COMPARED_LEVEL = "1.10.1:16"
os.environ.setdefault("ISENGARD_ORTHANC_LEVEL", COMPARED_LEVEL)

# Every server started by the tests refuses index and storage calls on its event loop
# (server/loop_guard.py): a handler that forgets ``await self.run(...)`` fails its test.
os.environ["ISENGARD_LOOP_GUARD"] = "1"
LOOP_GUARD_MESSAGE = "Blocking call on the event loop"
#: What Python's ``threading.excepthook`` writes when an exception ends a thread.
THREAD_DIED = "Exception in thread "


#: Every server process a test started, so that none outlives the session (a failing test
#: may stop before its own clean-up).
_STARTED: list[subprocess.Popen] = []


#: ``ISENGARD_TEST_INDEX=postgresql``: every Isengard the tests start (without a
#: ``PostgreSQL`` section of their own) indexes in a fresh PostgreSQL database.
ON_POSTGRESQL = os.environ.get("ISENGARD_TEST_INDEX") == "postgresql"

#: The session's PostgreSQL cluster, started when a test first needs it.
_POSTGRES: list[pg_cluster.PostgresCluster] = []


def postgres_cluster() -> pg_cluster.PostgresCluster:
    if not _POSTGRES:
        if not pg_cluster.available():
            pytest.skip("PostgreSQL is not installed (make test installs it)")
        _POSTGRES.append(pg_cluster.PostgresCluster(free_port()).start())
    return _POSTGRES[0]


@pytest.fixture
def postgres_server() -> pg_cluster.PostgresCluster:
    """The session's PostgreSQL (``section()`` gives a server its own database)."""
    return postgres_cluster()


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_servers() -> Iterator[None]:
    yield
    for process in _STARTED:
        if process.poll() is None:
            process.kill()
            process.wait()
    for cluster in _POSTGRES:
        cluster.stop()


def _port_band() -> range:
    """This session's ports: its own share of 10000-32767, below the kernel's ephemeral range
    (32768-60999), so that no outgoing connection takes one, and, under pytest-xdist, so
    that two workers never hand out the same port (each only knows the ports it gave)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    size = (32768 - 10000) // count
    start = 10000 + int(worker.removeprefix("gw")) * size
    return range(start, start + size)


#: The ports :func:`free_port` has not handed out yet in this session.
_PORTS = iter(_port_band())


def free_port() -> int:
    """A free loopback port, never one handed out before in this session: once the probing
    socket is closed, nothing holds the port for the server it was meant for, so a port is
    given once (two servers of one test would collide)."""
    for port in _PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port left in this session's band")


def sample(name: str) -> Path:
    return TESTDATA / name


def dicom_files() -> list[Path]:
    """Every DICOM file of the test data (by content, whatever its name)."""
    files = []
    for path in sorted(TESTDATA.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                head = f.read(132)
            if head[128:132] == b"DICM" or path.suffix.lower() == ".dcm":
                files.append(path)
    return files


#: An option's value that leaves it out of a test server's configuration (its default then).
UNSET: Any = object()


class Server:
    """A running HTTP server with a few helpers around ``requests``."""

    def __init__(self, http_port: int, dicom_port: int, aet: str) -> None:
        self.http_port = http_port
        self.dicom_port = dicom_port
        self.aet = aet
        self.url = f"http://127.0.0.1:{http_port}"
        self.session = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=60, **kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, data=data, timeout=120, **kwargs)

    def put(self, path: str, data: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.put(self.url + path, data=data, timeout=60, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.url + path, timeout=60, **kwargs)

    def json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.json()

    def upload(self, path: Path | bytes) -> dict:
        data = path if isinstance(path, bytes) else path.read_bytes()
        answer = self.post("/instances", data)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def clear(self) -> None:
        for patient in self.json("/patients"):
            self.delete(f"/patients/{patient}")

    def wait_ready(self, process: subprocess.Popen, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with status {process.returncode}")
            try:
                if requests.get(self.url + "/system", timeout=1).status_code in (200, 401):
                    return
            except (requests.ConnectionError, requests.Timeout):  # busy machine: a slow first answer
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start in time")


class Isengard(Server):
    """Isengard started as ``python -m server config.json`` in its own folder."""

    def __init__(self, workdir: Path, **options: Any) -> None:
        http_port, dicom_port = free_port(), free_port()
        super().__init__(http_port, dicom_port, options.get("DicomAet", "ISENGARD"))
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        if ON_POSTGRESQL and "PostgreSQL" not in options:
            options["PostgreSQL"] = postgres_cluster().section()
        self.config = {
            "Name": "IsengardTest",
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ISENGARD",
            "ListenAddress": "127.0.0.1",
            "StorageDirectory": str(workdir / "storage"),
            "RemoteAccessAllowed": False,
            # Orthanc's 1 s closes the tests' idle keep-alive connections all the time, and
            # a request reusing one just as it closes is dropped unanswered (the race of every
            # keep-alive server, which browsers meet by retrying): test_http_listening.py
            # tests the timeout itself.
            "KeepAliveTimeout": 30,
            **options,
        }
        self.config = {key: value for key, value in self.config.items() if value is not UNSET}
        self.dicom_port = self.config["DicomPort"]
        self.config_path = workdir / "config.json"
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self, *extra_args: str) -> Isengard:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", *extra_args, str(self.config_path)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        _STARTED.append(self.process)
        self.wait_ready(self.process)
        return self

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_loop_never_blocked(self) -> None:
        """The loop guard's findings fail the test even where no request failed with them
        (a blocking call in an event listener, at start-up or at shutdown)."""
        log = self.log()
        assert LOOP_GUARD_MESSAGE not in log, log[log.index(LOOP_GUARD_MESSAGE):][:3000]

    def assert_no_thread_died(self) -> None:
        """A thread of the server ended by an exception (Python's hook wrote it to the log)
        fails the test even where the server went on answering: an association thread
        killed by a malformed message once did, and its test still passed."""
        log = self.log()
        assert THREAD_DIED not in log, log[log.index(THREAD_DIED):][:3000]


class Orthanc(Server):
    """The real Orthanc 1.10.1 (Debian's), for differential and interoperability tests."""

    def __init__(self, workdir: Path, **options: Any) -> None:
        http_port, dicom_port = free_port(), free_port()
        super().__init__(http_port, dicom_port, options.get("DicomAet", "ORTHANCREF"))
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "OrthancRef", "HttpPort": http_port, "DicomPort": dicom_port,
            "DicomAet": "ORTHANCREF", "StorageDirectory": str(workdir / "storage"),
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "Plugins": [], **options,
        }
        self.dicom_port = config["DicomPort"]
        self.config_path = workdir / "orthanc.json"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.log_path = workdir / "orthanc.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Orthanc:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(ORTHANC_BINARY), str(self.config_path)],
                                        stdout=log, stderr=subprocess.STDOUT)
        _STARTED.append(self.process)
        self.wait_ready(self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="session")
def isengard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    """One Isengard for the tests that only need a default server (clear it if you fill it)."""
    server = Isengard(tmp_path_factory.mktemp("isengard")).start()
    yield server
    server.stop()
    server.assert_loop_never_blocked()
    server.assert_no_thread_died()


@pytest.fixture
def make_isengard(tmp_path: Path) -> Iterator[Any]:
    """Start Isengard with specific options; stopped at the end of the test."""
    started: list[Isengard] = []

    def factory(**options: Any) -> Isengard:
        server = Isengard(tmp_path / f"isengard{len(started)}", **options).start()
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.process is not None and server.process.poll() is None:
            server.stop()
    for server in started:
        server.assert_loop_never_blocked()
        server.assert_no_thread_died()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    if not ORTHANC_BINARY.exists():
        pytest.skip("the real Orthanc is not installed (make test installs it)")
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


def dcmtk(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"dcmtk's {tool} is not installed (make test installs it)")
    return path


def dcmtk_env() -> dict[str, str]:
    """dcmtk waits ~40 ms per message without TCP_NODELAY."""
    return {**os.environ, "TCP_NODELAY": "1"}
