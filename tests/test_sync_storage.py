"""``SyncStorageArea``: an acknowledged instance is on the disk, not only in the page cache.

Its staged file and the index's commit are synced before the answer (HTTP 200, C-STORE
Success), so that it survives a power cut as it survives ``kill -9``; with the option off,
neither is (Orthanc's trade, for speed).  Seen as the kernel sees the server: strace follows
its threads and its ingest processes, and the order of the system calls is the proof."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from test_ingest_processes import _children, _upload_together

from conftest import Isengard
from helpers import ct_slice, wait_job

STRACE = shutil.which("strace") or "strace"  # make test installs it (Debian's strace)
SYNCS = ("fdatasync", "fsync")
SENDS = ("sendto", "sendmsg", "write", "writev")
LINE = re.compile(r"^(?P<pid>\d+) +(?P<rest>.*)$")
#: A call whose line another thread's call cut, or one strace let go of as it detached (a
#: client may have its answer before strace sees the send return).
STARTED = re.compile(r"^(?P<name>\w+)\((?P<args>.*) <(?P<why>unfinished|detached) \.\.\.>$")
RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>")
COMPLETE = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\) += ")


@dataclass
class Call:
    """One system call: the log lines where it was entered and where it returned (-1: not seen)."""

    pid: int
    name: str
    args: str
    start: int
    end: int


def _calls(log: Path) -> list[Call]:
    calls: list[Call] = []
    pending: dict[int, Call] = {}
    for number, line in enumerate(log.read_text(errors="replace").splitlines()):
        match = LINE.match(line)
        if match is None:
            continue
        pid, rest = int(match["pid"]), match["rest"]
        if started := STARTED.match(rest):
            call = Call(pid, started["name"], started["args"], number, -1)
            if started["why"] == "detached":
                calls.append(call)
            else:
                pending[pid] = call
        elif RESUMED.match(rest) and pid in pending:
            call = pending.pop(pid)
            call.end = number
            calls.append(call)
        elif complete := COMPLETE.match(rest):
            calls.append(Call(pid, complete["name"], complete["args"], number, number))
    return calls


def _tasks(pid: int) -> list[int]:
    """The threads of ``pid`` and of its child processes (the ingest processes)."""
    return [int(task.name) for process in [pid, *_children(pid)] for task in Path(f"/proc/{process}/task").iterdir()]


def _traced_by(task: int, tracer: int) -> bool:
    """Whether ``tracer`` traces ``task`` (a thread that ended meanwhile needs no tracing)."""
    try:
        status = Path(f"/proc/{task}/status").read_text()
    except FileNotFoundError:
        return True
    return int(re.search(r"^TracerPid:\s+(\d+)", status, re.M)[1]) == tracer  # type: ignore[index]


@contextmanager
def traced(server: Isengard) -> Iterator[list[Call]]:
    """The server's system calls while the block runs (filled in when it ends)."""
    assert server.process is not None
    tasks = _tasks(server.process.pid)
    log = server.workdir / f"strace-{time.monotonic_ns()}.log"
    command = [STRACE, "-f", "-yy", "-s", "24", "-e", f"trace={','.join(SYNCS + SENDS)}", "-o", str(log)]
    for task in tasks:
        command += ["-p", str(task)]
    tracer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not all(_traced_by(task, tracer.pid) for task in tasks):
        assert tracer.poll() is None and time.monotonic() < deadline, "strace could not attach"
        time.sleep(0.02)
    calls: list[Call] = []
    try:
        yield calls
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=20)
    calls.extend(_calls(log))


def _synced(calls: list[Call], path_part: str) -> list[Call]:
    return [c for c in calls if c.name in SYNCS and path_part in c.args]


def _staged(server: Isengard) -> str:
    return f"{server.workdir / 'storage' / 'tmp'}/"


def _first_answer(calls: list[Call], port: int, start: str) -> Call:
    """The first send on a connection to ``port`` whose data begins with ``start``."""
    return next(c for c in calls if c.name in SENDS and f":{port}->" in c.args and f', "{start}' in c.args)


def _assert_synced_before(calls: list[Call], server: Isengard, answer: Call) -> None:
    """The staged file, then the index's commit (SQLite's WAL), synced before ``answer``."""
    staged = [c for c in _synced(calls, _staged(server)) if c.end < answer.start]
    assert staged, calls
    wal = [c for c in _synced(calls, "index.sqlite-wal") if staged[-1].end < c.start and c.end < answer.start]
    assert wal, calls


def test_an_upload_is_synced_before_its_answer(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "server").start()
    with traced(server) as calls:
        assert server.upload(ct_slice("1.2.3.8", "1.2.3.8.1", 1))["Status"] == "Success"
    _assert_synced_before(calls, server, _first_answer(calls, server.http_port, "HTTP/1.1 200"))


def test_a_c_store_is_synced_before_its_success(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "server").start()
    path = tmp_path / "slice.dcm"
    path.write_bytes(ct_slice("1.2.3.8", "1.2.3.8.1", 2))
    with traced(server) as calls:
        subprocess.run(["storescu", "-aec", "ISENGARD", "127.0.0.1", str(server.dicom_port), str(path)],
                       check=True, timeout=60)
    assert server.json("/statistics")["CountInstances"] == 1
    _assert_synced_before(calls, server, _first_answer(calls, server.dicom_port, "\\4"))  # P-DATA-TF: the C-STORE-RSP


def test_every_file_is_synced_by_whoever_staged_it(tmp_path: Path) -> None:
    """Concurrent uploads: the ingest processes stage some of the files, and sync them too."""
    server = Isengard(tmp_path / "server", IngestProcesses=2).start()
    assert server.process is not None
    processes = _children(server.process.pid)
    with traced(server) as calls:
        _upload_together(server, [ct_slice("1.2.3.5", "1.2.3.5.1", number, pixels=64) for number in range(200)], 8)
    synced = _synced(calls, _staged(server))
    assert len({c.args for c in synced}) == 200
    assert {c.pid for c in synced} & set(processes)


def test_without_sync_nothing_is_synced_on_ingest(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "server", SyncStorageArea=False).start()
    with traced(server) as calls:
        assert server.upload(ct_slice("1.2.3.8", "1.2.3.8.1", 3))["Status"] == "Success"
    assert _first_answer(calls, server.http_port, "HTTP/1.1 200")
    assert not _synced(calls, _staged(server)) and not _synced(calls, "index.sqlite")


def test_the_jobs_snapshots_are_not_synced(tmp_path: Path) -> None:
    """A job is promised to survive ``kill -9`` (``SaveJobs``), not a power cut: its
    snapshots' commits skip the sync that the instances' get."""
    server = Isengard(tmp_path / "server").start()
    study = server.upload(ct_slice("1.2.3.8", "1.2.3.8.1", 4))["ParentStudy"]
    with traced(server) as calls:
        answer = server.post(f"/studies/{study}/archive", json={"Asynchronous": True})
        assert answer.status_code == 200
        assert wait_job(server, answer.json()["ID"])["State"] == "Success"
    assert not _synced(calls, "index.sqlite")
