"""Worker processes that parse and stage incoming files: an ingest's CPU beyond one core.

One Python process runs one thread of Python at a time, and reading a small file's indexed
tags (``parse_for_index``) and writing it under ``tmp/`` (hashing included) are about a third
of its ingest's CPU: with several clients storing at once, that thread of Python is what
bounds the rate, while the machine's other cores wait.  So a thread that has a small file to
ingest while others are ingesting (:meth:`server.store.Store._parse_and_stage` decides) hands
it to an idle ingest process and waits, without the GIL, for the file's
:class:`ParsedInstance` and :class:`Staged`; its own CPU per file is the pipe's (~60 us for a
34 KB slice, against ~0.3 ms to parse and stage it).  The index transaction, the move into
place and the events stay in the server's process, so durability and ordering are those of
any ingest.

The processes are forked when the server is built, before it has threads, sockets or an open
index: they hold nothing but the configured tags (main tags, private dictionary), which is
all parsing needs; the encoding and the staging folder come with each file.  Anything out of
the ordinary (a file a process could not parse or write, a process that died) answers
``None``, and the caller does the work itself, which gives the error (or the answer) it
would have given without the processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import signal
import threading
import time
from multiprocessing.connection import Connection

from server.dicom.parse import ParsedInstance, parse_for_index
from server.storage.area import Staged, write_staged

log = logging.getLogger("isengard.ingest")

#: Larger files are parsed and staged by the thread that has them: their cost is the disk's
#: (with the GIL released), and the pipe would copy them twice.
LARGEST = 1024 * 1024

#: What a process answers: the parsed instance (without its data), the staged file, and
#: the seconds its writing took; or ``None`` (the caller does the work).
Answer = tuple[ParsedInstance, Staged, float]


class IngestProcesses:
    """``count`` forked processes, each serving one caller at a time over its own pipe."""

    def __init__(self, count: int) -> None:
        self._lock = threading.Condition()
        self._processes: list[multiprocessing.process.BaseProcess] = []
        ours: list[Connection] = []
        try:
            context = multiprocessing.get_context("fork")
            for number in range(count):
                parent_end, child_end = context.Pipe()
                # The child closes the parent's ends it inherits: each pipe then has one reader
                # and one writer, and a child sees its end of file as soon as the server is gone.
                process = context.Process(target=_serve, args=(child_end, [*ours, parent_end]),
                                          name=f"isengard-ingest-{number}", daemon=True)
                try:
                    process.start()
                except BaseException:
                    parent_end.close()
                    raise
                finally:
                    child_end.close()
                ours.append(parent_end)
                self._processes.append(process)
        except (OSError, ValueError) as error:  # no fork here, or no room for another process
            log.warning("%d of %d ingest processes started (%s): the others' work is done by "
                        "the threads that receive the files", len(ours), count, error)
        self._idle = ours
        self._alive = len(ours)

    def parse_and_stage(self, data: bytes, encoding: str, staging: str, compress: bool,
                        sync: bool) -> Answer | None:
        """``data`` parsed for the index (see :func:`parse_for_index`) and written into
        ``staging`` by an ingest process, or ``None``: the caller is to do both itself."""
        if len(data) > LARGEST:
            return None
        connection = self._take()
        if connection is None:
            return None
        try:
            connection.send_bytes(pickle.dumps((encoding, staging, compress, sync, data), pickle.HIGHEST_PROTOCOL))
            answer = connection.recv_bytes()
        except (EOFError, OSError) as error:
            log.warning("An ingest process is gone (%s); %d left", error, self._lose(connection))
            return None
        except BaseException:
            self._lose(connection)  # its answer, if any, would be the next caller's
            raise
        self._give(connection)
        if not answer:
            return None
        parsed, staged, seconds = pickle.loads(answer)
        parsed.data = data
        return parsed, staged, seconds

    def close(self) -> None:
        """Let the processes go: each sees its pipe closed and ends."""
        with self._lock:
            connections, self._idle, self._alive = self._idle, [], 0
            self._lock.notify_all()
        for connection in connections:
            connection.close()
        for process in self._processes:
            process.join(1.0)
            if process.is_alive():
                process.terminate()

    def _take(self) -> Connection | None:
        with self._lock:
            while not self._idle and self._alive:
                self._lock.wait()
            return self._idle.pop() if self._idle else None

    def _give(self, connection: Connection) -> None:
        with self._lock:
            if self._alive:
                self._idle.append(connection)
                self._lock.notify()
                return
        connection.close()  # closed meanwhile

    def _lose(self, connection: Connection) -> int:
        connection.close()
        with self._lock:
            self._alive = max(self._alive - 1, 0)
            self._lock.notify_all()
            return self._alive


def _serve(connection: Connection, parent_ends: list[Connection]) -> None:
    """An ingest process: parse and stage each file it is sent, until the server is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the server's to handle
    for end in parent_ends:
        end.close()
    while True:
        try:
            request = connection.recv_bytes()
        except (EOFError, OSError):
            return
        connection.send_bytes(_work(request))


def _work(request: bytes) -> bytes:
    """The answer to one request: empty when anything went wrong (the caller then does the
    work itself, and gets the same error in its own process)."""
    encoding, staging, compress, sync, data = pickle.loads(request)
    try:
        parsed = parse_for_index(data, encoding)
        start = time.monotonic()
        staged = write_staged(staging, data, compress, sync)
        seconds = time.monotonic() - start
    except Exception:  # noqa: BLE001 - the caller does it again, and reports it
        return b""
    parsed.data = b""
    return pickle.dumps((parsed, staged, seconds), pickle.HIGHEST_PROTOCOL)
