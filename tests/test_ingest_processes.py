"""The ingest processes (``IngestProcesses``): files parsed and staged in forked worker
processes give what the receiving thread would have made of them itself, and anything out
of the ordinary (a bad file, a dead process) leaves the work to that thread; in a real
server, the processes do the parsing, and they end with it, even when it is killed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import Isengard, sample
from helpers import ct_slice
from server import store as store_module
from server.dicom.parse import parse_for_index
from server.errors import OrthancError
from server.events import EventBus
from server.ingest_processes import LARGEST, IngestProcesses
from server.storage.area import StorageArea
from server.storage.index import Index
from server.store import Limits, Origin, Store

FILES = [ct_slice("1.2.3.9", "1.2.3.9.1", 1), sample("2017-06-27-XSSInjection.dcm").read_bytes(),
         sample("ColorTestMalaterre.dcm").read_bytes()]


@pytest.fixture
def processes() -> Iterator[IngestProcesses]:
    pool = IngestProcesses(2)
    yield pool
    pool.close()


def _pids(pool: IngestProcesses) -> list[int]:
    return [process.pid for process in pool._processes if process.pid is not None]


@pytest.mark.parametrize("compress", [False, True])
def test_a_file_is_parsed_and_staged_as_the_receiving_thread_would(
        processes: IngestProcesses, tmp_path: Path, compress: bool) -> None:
    area = StorageArea(tmp_path / "storage", compress=compress)
    for data in FILES:
        answer = processes.parse_and_stage(data, "Latin1", area.staging_folder, compress, True)
        assert answer is not None
        parsed, staged, seconds = answer
        assert parsed == parse_for_index(data, "Latin1")  # the data given back included
        assert parsed.data is data
        own = area.stage(data)
        assert (staged.size, staged.md5, staged.uncompressed_size, staged.uncompressed_md5, staged.compression) == (
            own.size, own.md5, own.uncompressed_size, own.uncompressed_md5, own.compression)
        written = Path(area.staging_folder, staged.uuid).read_bytes()
        assert written == Path(area.staging_folder, own.uuid).read_bytes()
        assert 0 <= seconds < 10


def test_the_default_encoding_goes_with_each_file(processes: IngestProcesses, tmp_path: Path) -> None:
    """``DefaultEncoding`` can change while the server runs (``/tools/default-encoding``):
    a file without ``SpecificCharacterSet`` is read in the one of the moment."""
    data = ct_slice("1.2.3.8", "1.2.3.8.1", 1, patient="M\u00fcller")  # Latin-1 bytes, no character set
    seen = set()
    for encoding in ("Latin1", "Utf8", "Cyrillic"):
        answer = processes.parse_and_stage(data, encoding, str(tmp_path), False, True)
        assert answer is not None
        assert answer[0] == parse_for_index(data, encoding)
        seen.add(answer[0].patient_id)
    assert len(seen) == 3


def test_a_file_it_cannot_parse_is_left_to_the_caller_and_nothing_is_staged(
        processes: IngestProcesses, tmp_path: Path) -> None:
    for bad in (b"", b"not DICOM at all" * 10, FILES[0][:200]):
        assert processes.parse_and_stage(bad, "Latin1", str(tmp_path), False, True) is None
    assert list(tmp_path.iterdir()) == []
    # and the processes still serve
    assert processes.parse_and_stage(FILES[0], "Latin1", str(tmp_path), False, True) is not None


def test_a_folder_it_cannot_write_is_left_to_the_caller(processes: IngestProcesses, tmp_path: Path) -> None:
    assert processes.parse_and_stage(FILES[0], "Latin1", str(tmp_path / "missing"), False, True) is None


def test_a_large_file_stays_with_the_caller(processes: IngestProcesses, tmp_path: Path) -> None:
    assert processes.parse_and_stage(b"\0" * (LARGEST + 1), "Latin1", str(tmp_path), False, True) is None


def test_a_dead_process_is_dropped_and_the_others_serve_until_none_is_left(
        processes: IngestProcesses, tmp_path: Path) -> None:
    first, second = _pids(processes)
    os.kill(first, signal.SIGKILL)
    answers = [processes.parse_and_stage(FILES[0], "Latin1", str(tmp_path), False, True) for _ in range(4)]
    assert answers.count(None) <= 1  # the dead one, found at most once
    assert processes._alive in (1, 2)
    os.kill(second, signal.SIGKILL)
    for _ in range(3):
        processes.parse_and_stage(FILES[0], "Latin1", str(tmp_path), False, True)
    assert processes._alive == 0
    started = time.monotonic()
    assert processes.parse_and_stage(FILES[0], "Latin1", str(tmp_path), False, True) is None
    assert time.monotonic() - started < 1  # no wait for a process that will never come back


def test_a_process_that_cannot_be_started_leaves_its_work_to_the_caller(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """No room for another process (or no fork on this system): the server starts anyway."""
    started = 0

    def start(process: Any) -> None:
        nonlocal started
        if started:
            raise OSError(11, "Resource temporarily unavailable")
        started += 1
        real_start(process)

    real_start = multiprocessing.process.BaseProcess.start
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", start)
    pool = IngestProcesses(3)
    try:
        assert len(pool._processes) == 1 and pool._alive == 1
        assert "1 of 3 ingest processes started" in caplog.text
        assert pool.parse_and_stage(FILES[0], "Latin1", str(tmp_path), False, True) is not None
    finally:
        pool.close()


def test_closing_ends_the_processes() -> None:
    pool = IngestProcesses(2)
    processes = list(pool._processes)
    pool.close()
    assert not any(process.is_alive() for process in processes)
    assert pool.parse_and_stage(FILES[0], "Latin1", "/nonexistent", False, True) is None


def test_a_store_with_processes_stores_and_refuses_as_without(
        tmp_path: Path, processes: IngestProcesses, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "HAND_OVER_FROM", 1)  # a lone ingest too
    outcomes: list[Any] = []
    for name, pool in (("own", None), ("processes", processes)):
        root = tmp_path / name
        store = Store(Index(root / "index.sqlite"), StorageArea(root / "storage"), EventBus(), Limits())
        store.processes = pool
        results = [store.ingest(data, Origin()).as_json() for data in FILES + FILES[:1]]
        with pytest.raises(OrthancError) as refused:
            store.ingest(b"DICM" * 100, Origin())
        files = sorted(p.read_bytes() for p in (root / "storage").rglob("*") if p.is_file() and p.parent.name != "tmp"
                       and "tmp" not in p.parts)
        outcomes.append((results, refused.value.code, refused.value.details, files))
        staging = list(Path(store.area.staging_folder).iterdir())
        assert [p.name for p in staging] == [".lock"]  # nothing left staged
        store.index.close()
    assert outcomes[0] == outcomes[1]
    assert [result["Status"] for result in outcomes[0][0]] == ["Success"] * 3 + ["AlreadyStored"]


class _Recording:
    """Stands for the processes: records what it is asked, and leaves the work to the caller."""

    def __init__(self) -> None:
        self.asked = 0

    def parse_and_stage(self, *_: Any) -> None:
        self.asked += 1


def test_a_lone_ingest_parses_and_stages_itself(tmp_path: Path) -> None:
    """A lone client (one association, one uploader) would wait for the hand-over, which costs
    more CPU in all than it saves: the processes are for ingests that run together."""
    store = Store(Index(tmp_path / "index.sqlite"), StorageArea(tmp_path / "storage"), EventBus(), Limits())
    recording = _Recording()
    store.processes = recording  # type: ignore[assignment]
    for data in FILES:
        assert store.ingest(data, Origin()).status == "Success"
    assert recording.asked == 0
    store.index.close()


def _upload_together(server: Isengard, contents: list[bytes], clients: int = 4) -> None:
    """POST ``contents`` from ``clients`` threads at once, each with its own session."""
    def upload(share: list[bytes]) -> None:
        with requests.Session() as session:
            for data in share:
                answer = session.post(server.url + "/instances", data=data, timeout=60)
                assert answer.status_code == 200, answer.text
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(upload, contents[k::clients]) for k in range(clients)]:
            future.result()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_server_parses_in_its_processes_which_end_with_it_even_killed(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "server", IngestProcesses=2).start()
    assert server.process is not None
    children = _children(server.process.pid)
    assert len(children) == 2
    before = sum(_cpu_seconds(child) for child in children)
    _upload_together(server, [ct_slice("1.2.3.7", "1.2.3.7.1", number, pixels=64) for number in range(300)], 8)
    assert server.json("/statistics")["CountInstances"] == 300
    # They did some of the parsing: idle, they spend no CPU at all. (How many files they get
    # depends on how many uploads overlap, fewer on a machine busy with other work.)
    assert sum(_cpu_seconds(child) for child in children) > before
    server.kill()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{child}").exists() and "Z" not in Path(f"/proc/{child}/stat").read_text().split()[2]
              for child in children):
        assert time.monotonic() < deadline, "an ingest process outlived its killed server"
        time.sleep(0.05)


def test_a_server_stores_on_when_its_processes_die(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "server", IngestProcesses=2).start()
    assert server.process is not None
    for child in _children(server.process.pid):
        os.kill(child, signal.SIGKILL)
    _upload_together(server, [ct_slice("1.2.3.6", "1.2.3.6.1", number) for number in range(40)])
    assert server.json("/statistics")["CountInstances"] == 40
    assert "An ingest process is gone" in server.log()
    server.stop()


def test_no_processes_by_default(tmp_path: Path) -> None:
    server = Isengard(tmp_path / "server").start()
    assert server.process is not None
    assert _children(server.process.pid) == []
    assert server.upload(FILES[0])["Status"] == "Success"
    server.stop()
