"""Start, measure and stop the two servers under test as plain processes.

Both are driven only through their public interfaces (HTTP and DICOM), exactly as a
client would, so the figures compare like with like.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from report import Outcome

REPO = Path(__file__).resolve().parent.parent
ORTHANC_BINARY = Path("/usr/sbin/Orthanc")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Debian's DCMTK leaves Nagle's algorithm on unless TCP_NODELAY=1: without it Orthanc's C-STORE
# answers wait on delayed ACKs (~40 ms per instance, 20x slower). Isengard gets the same environment.
SERVER_ENVIRONMENT = {**os.environ, "TCP_NODELAY": "1"}
#: What a server that fails to start or answers wrongly raises: the benchmark goes on with a warning.
FAILURES = (RuntimeError, OSError, subprocess.SubprocessError, requests.RequestException)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """The process and all its children, so that worker processes count towards the server's CPU."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat from the state on (the command name may contain spaces and parentheses)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _status_kb(pid: int, field: str) -> int:
    """A kB figure of /proc/PID/status (0 when the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith(field))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time consumed so far by the process tree rooted at ``pid``."""
    total = 0
    for member in descendants(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime and stime: fields 14 and 15 of stat(5)
    return total / CLOCK_TICKS


@dataclass
class Server(ABC):
    """One server under test, started on free loopback ports with an empty storage folder."""

    name: str
    workdir: Path
    aet: str
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)
    startup_seconds: float = 0.0
    #: Whether ``start`` gives the server an empty storage folder of its own (not one that the
    #: nodes of a cluster share).
    owns_storage: bool = True
    #: How many storage folders this server had: each start with ``owns_storage`` takes a new one.
    storages: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def storage(self) -> Path:
        return self.workdir / f"storage-{self.storages}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, "server not started"
        return self.process.pid

    def config(self) -> dict[str, Any]:
        return {
            "Name": f"Bench-{self.name}",
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "StorageDirectory": str(self.storage),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            # The default since Orthanc 1.12.2, and Isengard's; Orthanc 1.10.1 defaults to true:
            # both do the same work for a client that accepts gzip (requests does).
            "HttpCompressionEnabled": False,
        }

    @abstractmethod
    def command(self, config_path: Path) -> list[str]:
        """The command line that runs this server on ``config_path``."""

    def start(self) -> None:
        """Start on an empty storage folder and wait until ``GET /system`` answers; the time
        that took is ``startup_seconds``.

        The empty folder is a new one, not the last one wiped: the bench's disk is an ext4
        without a journal, whose inode allocator skips the inodes freed in the last minutes
        one by one (``recently_deleted``).  After a wipe of the previous run's files, each file
        and folder a server made cost it up to ~2 ms of kernel time (``perf``), which varied
        from run to run with where the new folder landed.  The folders go with the bench's
        scratch folder, once all is measured."""
        if self.owns_storage:
            self.storages += 1
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / f"{self.name}.json"
        config_path.write_text(json.dumps({**self.config(), **self.extra_config}, indent=2))
        started = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(config_path), cwd=REPO, env=SERVER_ENVIRONMENT,
                                            stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        self.startup_seconds = time.perf_counter() - started

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (``VmHWM``), plus the private memory
        (``Private_*``) of its children (the ingest processes) now, MB: forked, they share
        their other pages with the server, whose resident set counts them already."""
        total = _status_kb(self.pid, "VmHWM:")
        for child in descendants(self.pid)[1:]:
            try:
                rollup = Path(f"/proc/{child}/smaps_rollup").read_text().splitlines()
            except OSError:
                continue
            total += sum(int(line.split()[1]) for line in rollup if line.startswith("Private_"))
        return total / 1024

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + "/system", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.005)  # fine enough to time a start-up of ~0.1 s
        raise RuntimeError(f"{self.name} did not answer GET /system within {START_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the server does not exit in time; safe to call when already stopped."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"warning: {self.name} ignored SIGTERM for {STOP_TIMEOUT} s, killing it", file=sys.stderr)
            self.process.kill()
            self.process.wait()

    def restart_empty(self) -> None:
        """A fresh process on a wiped storage, so that each ingest phase starts from the same state."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


#: The trees whose ``server/`` is byte-compiled already (:func:`_byte_compile`).
_COMPILED: set[Path] = set()


def _byte_compile(repo: Path) -> None:
    """Byte-compile ``repo/server`` once, as ``make run`` does before it starts the server:
    with ``PYTHONDONTWRITEBYTECODE`` set, Python compiles each module edited since its last
    compilation at every start (~5 ms each), which the start-up figure would count."""
    if repo not in _COMPILED:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(repo / "server")],
                       check=True, stdout=subprocess.DEVNULL)
        _COMPILED.add(repo)


class Isengard(Server):
    def start(self) -> None:
        _byte_compile(REPO)
        super().start()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "ListenAddress": "127.0.0.1"}

    def command(self, config_path: Path) -> list[str]:
        return [sys.executable, "-m", "server", str(config_path)]


class Orthanc(Server):
    def config(self) -> dict[str, Any]:
        return {**super().config(), "Plugins": []}

    def command(self, config_path: Path) -> list[str]:
        return [str(ORTHANC_BINARY), str(config_path)]


def make_servers(root: Path, only: str | None, extra_config: dict[str, Any] | None = None) -> list[Server]:
    """The servers to measure: Isengard, and the real Orthanc when it is installed; both get ``extra_config``."""
    options = extra_config or {}
    servers: list[Server] = []
    if only in (None, "isengard"):
        servers.append(Isengard("isengard", root / "isengard", "ISENGARD", extra_config=options))
    if only in (None, "orthanc"):
        if ORTHANC_BINARY.exists():
            servers.append(Orthanc("orthanc", root / "orthanc", "ORTHANC", extra_config=options))
        else:
            print(f"note: {ORTHANC_BINARY} not found, measuring Isengard alone", file=sys.stderr)
    return servers


def measure_each(servers: list[Server], measure: Callable[[Server], str], outcome: Outcome) -> None:
    """``measure`` each server in turn and stop it after, so that the two never compete for the CPUs.

    ``measure`` returns the version the server reports. A server that fails becomes a warning with the end
    of its log, and the next one is still measured.
    """
    for server in servers:
        try:
            outcome.versions[server.name] = measure(server)
        except FAILURES as error:
            outcome.warnings.append(f"{server.name} failed: {error}\n{server.log_tail()}")
        finally:
            server.stop()


def exit_on_sigterm() -> None:
    """From now on SIGTERM raises SystemExit, so that the ``finally`` blocks stop the servers and remove the
    scratch folder."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
