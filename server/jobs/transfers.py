"""``PushTransfer`` and ``PullTransfer``: the jobs of the transfers accelerator.

Both move a list of resources between this server and an Orthanc peer in buckets
(:mod:`server.transfers.buckets`), ``Threads`` HTTP requests at a time, and end with an
atomic commit on the receiver.  A step waits at most a fraction of a second for the
requests in flight, so pause and cancel are prompt; a pause keeps what was sent.

Transient network failures (connection refused or lost, timeouts, 5xx answers), once
``MaxHttpRetries`` is spent, put the job in Retry like the peer store job
(``StoreJobRetryDelay``, at most ``JobsMaxRetries`` times in a row).  A push whose
transaction the receiver no longer knows (discarded while the sender waited) starts over
with a new one.  Only the request is saved (``SaveJobs``): a restored job starts over, and
what an interrupted run left on the receiver is discarded there.
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.errors import ErrorCode, OrthancError
from server.jobs.job import Job, StepResult, StopReason
from server.net.modalities import peer_settings
from server.net.scu import NetworkError
from server.transfers.buckets import Bucket, InstanceInfo, bad_format, compression_of, compute_buckets, pack
from server.transfers.client import PeerAnswered, TransferClient
from server.transfers.settings import KB, MB, TransferSettings
from server.transfers.staging import DownloadArea

if TYPE_CHECKING:
    from server.config import Configuration
    from server.store import Store
    from server.transfers.source import TransferSource

log = logging.getLogger("isengard.jobs")

#: How long a step waits for the bucket requests in flight.
POLL_SECONDS = 0.2
#: Instances a pull commits per step (progress, prompt pause and cancel).
COMMIT_BATCH = 50


@dataclass(frozen=True)
class TransferServices:
    """What the transfer jobs use."""

    config: Configuration
    settings: TransferSettings
    source: TransferSource
    store: Store
    #: Where pulled instances wait for their commit.
    staging: Path
    #: A peer's configuration by name; Orthanc's 404 for an unknown peer.
    peer: Callable[[str], Any]
    #: This server's ``Originator`` UUID (``/transfers/lookup``, pull mode of ``/transfers/send``).
    originator: str


@dataclass(frozen=True)
class TransferQuery:
    """The body of ``/transfers/send`` and ``/transfers/pull``, as the plugin reads and saves it."""

    peer: str
    resources: list[Any]
    compression: str
    transfer_id: str
    originator: str | None = None

    @classmethod
    def parse(cls, body: Any) -> TransferQuery:
        if not isinstance(body, dict) or not isinstance(body.get("Resources"), list) \
                or not isinstance(body.get("Peer"), str) or not isinstance(body.get("Compression"), str):
            raise bad_format()
        originator = body.get("Originator")
        if originator is not None and not isinstance(originator, str):
            raise bad_format()
        transfer_id = body.get("SenderTransferID", str(uuid.uuid4()))
        if not isinstance(transfer_id, str):
            raise bad_format("SenderTransferID should be a string")
        return cls(body["Peer"], body["Resources"], compression_of(body["Compression"]), transfer_id, originator)

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"Peer": self.peer, "Resources": self.resources,
                                  "Compression": self.compression, "SenderTransferID": self.transfer_id}
        if self.originator is not None:
            result["Originator"] = self.originator
        return result


class BucketsJob(Job):
    """The common part: the query, the bucket requests run in parallel, retries, progress."""

    def __init__(self, services: TransferServices, query: TransferQuery) -> None:
        super().__init__()
        self.services = services
        self.query = query
        services.peer(query.peer)  # Unknown peer: refused at submission
        self.attempts = 0
        self._client: TransferClient | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[Future[int], int] = {}
        self._clear()

    def _clear(self) -> None:
        """Back to the start: nothing scheduled, nothing sent."""
        self.phase = "start"
        self.buckets: list[Bucket] = []
        self.remaining: list[int] = []
        self.completed = 0
        self.transferred = 0
        self.total_instances: int | None = None
        self.total_size = 0
        self.elapsed = 0.0

    # -- the HTTP side -------------------------------------------------------------------

    def client(self) -> TransferClient:
        if self._client is None:
            self._client = TransferClient(self.query.peer, peer_settings(self.services.peer(self.query.peer)),
                                          self.services.config, self.services.settings.max_http_retries,
                                          self.query.transfer_id)
        return self._client

    @abstractmethod
    def transfer_bucket(self, index: int) -> int:
        """Send or fetch one bucket (in a pool thread); the bytes on the wire."""

    def run_buckets(self) -> bool:
        """Keep ``Threads`` bucket requests in flight, for one poll; True once all are done."""
        started = time.monotonic()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.services.settings.threads, thread_name_prefix="transfers")
        while self.remaining and len(self._in_flight) < self.services.settings.threads:
            index = self.remaining.pop(0)
            self._in_flight[self._pool.submit(self.transfer_bucket, index)] = index
        if self._in_flight:
            done, _ = wait(list(self._in_flight), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            error = self._collect(done)
            if error is not None:
                self._drain()
                self.elapsed += time.monotonic() - started
                raise error
        self.elapsed += time.monotonic() - started
        return not self.remaining and not self._in_flight

    def _collect(self, done: set[Future[int]]) -> BaseException | None:
        """Count the finished requests; a failed one goes back to the queue, its error returned."""
        error = None
        for future in done:
            index = self._in_flight.pop(future)
            failure = future.exception()
            if failure is None:
                self.completed += 1
                self.transferred += future.result()
                self.attempts = 0
            else:
                self.remaining.insert(0, index)
                error = error or failure
        return error

    def _drain(self) -> None:
        """Wait for the requests in flight (bounded by their timeouts) and count them."""
        if self._in_flight:
            done, _ = wait(list(self._in_flight))
            self._collect(done)

    def _stop_threads(self) -> None:
        self._drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the job -------------------------------------------------------------------------

    def step(self) -> StepResult:
        try:
            return self.advance()
        except NetworkError as e:
            return self.network_failure(e)

    @abstractmethod
    def advance(self) -> StepResult:
        """One bounded piece of the transfer."""

    def network_failure(self, error: NetworkError) -> StepResult:
        """Retry state while allowed, else failure."""
        config = self.services.config
        if error.transient and self.attempts < int(config["JobsMaxRetries"]):
            self.attempts += 1
            delay = float(config["StoreJobRetryDelay"])
            log.warning("%s job: transient failure (%s), attempt %d of %d in %.1f s", self.TYPE, error.details,
                        self.attempts, config["JobsMaxRetries"], delay)
            return StepResult.retry(delay, error.code, error.details or "")
        self.abandon()
        return StepResult.failure(error.code, error.details or "")

    def abandon(self) -> None:
        """The transfer is over without success: give back what it holds."""
        self._stop_threads()
        self._clear()

    def stop(self, reason: StopReason) -> None:
        if reason in (StopReason.CANCELED, StopReason.FAILURE):
            self.abandon()
        else:
            self._stop_threads()

    def reset(self) -> None:
        self.abandon()
        self.attempts = 0

    def progress(self) -> float:
        if not self.buckets:
            return 1.0 if self.phase == "done" else 0.0
        return min(1.0, (1 + self.completed + self.commit_fraction()) / (2 + len(self.buckets)))

    def commit_fraction(self) -> float:
        return 0.0

    def content(self) -> dict[str, Any]:
        result: dict[str, Any] = {"Resources": self.query.resources, "Peer": self.query.peer,
                                  "Compression": self.query.compression}
        if self.total_instances is not None:
            result["TotalInstances"] = self.total_instances
            result["TotalSizeMB"] = round(self.total_size / MB)
            result["CompletedHttpQueries"] = self.completed
            result["NetworkSpeedKBs"] = int(self.transferred / KB / self.elapsed) if self.elapsed else 0
        return result

    def serialize(self) -> dict[str, Any]:
        return self.query.to_json()

    def schedule(self, instances: list[InstanceInfo], base_url: str = "") -> None:
        self.buckets = compute_buckets(instances, self.services.settings.bucket_size, base_url,
                                       self.query.compression)
        self.remaining = list(range(len(self.buckets)))
        self.total_instances = len(instances)
        self.total_size = sum(info.size for info in instances)


class PushTransferJob(BucketsJob):
    """Send local resources to a peer: open a push transaction, PUT the buckets, commit."""

    TYPE = "PushTransfer"

    def __init__(self, services: TransferServices, query: TransferQuery) -> None:
        self.transaction = ""
        self.restarts = 0
        super().__init__(services, query)

    def advance(self) -> StepResult:
        if self.phase == "start":
            self.open_transaction()
            return StepResult.next()
        if self.phase == "buckets":
            try:
                if self.run_buckets():
                    self.phase = "commit"
            except PeerAnswered as e:
                if e.status != 404:
                    raise
                return self.start_over(e)
            return StepResult.next()
        try:
            self.client().call("POST", f"{self.transaction}/commit", b"",
                               timeout=self.services.settings.peer_commit_timeout)
        except PeerAnswered as e:
            if e.status != 404:
                self.transaction = ""  # the receiver dropped it when its commit failed
                raise
            return self.start_over(e)
        self.transaction = ""
        self.phase = "done"
        return StepResult.success()

    def open_transaction(self) -> None:
        instances = self.services.source.resolve(self.query.resources)
        self.schedule(instances)
        body = {"Instances": [i.to_json() for i in instances], "Buckets": [b.to_json() for b in self.buckets],
                "Compression": self.query.compression}
        answer = self.client().call_json("POST", "/transfers/push", body,
                                         timeout=self.services.settings.peer_commit_timeout)
        if not isinstance(answer, dict) or not isinstance(answer.get("Path"), str):
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL, f"Bad network protocol from peer: {self.query.peer}")
        self.transaction = answer["Path"]
        self.phase = "buckets"

    def start_over(self, error: PeerAnswered) -> StepResult:
        """The receiver forgot the transaction (idle too long): a new one, a bounded number of times."""
        self.transaction = ""
        if self.restarts >= max(1, int(self.services.config["JobsMaxRetries"])):
            self.abandon()
            return StepResult.failure(error.code, error.details or "")
        self.restarts += 1
        log.warning("PushTransfer job: the peer discarded the transaction, starting over")
        self._stop_threads()
        self._clear()
        return StepResult.next()

    def transfer_bucket(self, index: int) -> int:
        body = pack(self.services.source.bucket_bytes(self.buckets[index]), self.query.compression)
        self.client().call("PUT", f"{self.transaction}/{index}", body, "application/octet-stream")
        return len(body)

    def abandon(self) -> None:
        transaction, self.transaction = self.transaction, ""
        if transaction:
            try:  # best effort: the receiver discards idle transactions anyway
                self.client().call("DELETE", transaction, timeout=self.services.settings.peer_connectivity_timeout)
            except OrthancError as e:
                log.info("Cannot discard push transaction %s: %s", transaction, e.details)
        super().abandon()

    def reset(self) -> None:
        super().reset()
        self.restarts = 0

    def content(self) -> dict[str, Any]:
        result = super().content()
        if self.total_instances is not None:
            result["UploadedSizeMB"] = round(self.transferred / MB)
        return result

    @classmethod
    def unserialize(cls, services: TransferServices, data: dict[str, Any]) -> PushTransferJob:
        return cls(services, TransferQuery.parse(data))


class PullTransferJob(BucketsJob):
    """Fetch a peer's resources: look them up there, GET the buckets into a download area,
    check every MD5, then store them here."""

    TYPE = "PullTransfer"

    def __init__(self, services: TransferServices, query: TransferQuery) -> None:
        self.area: DownloadArea | None = None
        self.committed = 0
        super().__init__(services, query)

    def advance(self) -> StepResult:
        if self.phase == "start":
            return self.lookup()
        if self.phase == "buckets":
            if self.run_buckets():
                self.phase = "check"
            return StepResult.next()
        assert self.area is not None
        if self.phase == "check":
            self.area.check()
            self.phase = "commit"
            return StepResult.next()
        self.committed += self.area.commit(self.services.store, self.services.settings.commit_threads,
                                           self.committed, COMMIT_BATCH)
        if self.committed < len(self.area.instances):
            return StepResult.next()
        self.area.discard()
        self.area = None
        self.phase = "done"
        return StepResult.success()

    def lookup(self) -> StepResult:
        answer = self.client().call_json("POST", "/transfers/lookup", self.query.resources)
        if not isinstance(answer, dict) or not isinstance(answer.get("Instances"), list) \
                or not isinstance(answer.get("Originator"), str):
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL, f"Bad network protocol from peer: {self.query.peer}")
        if self.query.originator is not None and self.query.originator != answer["Originator"]:
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL, 'Invalid originator, check out the "RemoteSelf" '
                               f"configuration option of peer: {self.query.peer}")
        instances = [InstanceInfo.from_json(item) for item in answer["Instances"]]
        self.schedule(instances, self.client().url)
        if not instances:
            self.phase = "done"
            return StepResult.success()
        self.area = DownloadArea(self.services.staging, instances)
        self.phase = "buckets"
        return StepResult.next()

    def transfer_bucket(self, index: int) -> int:
        assert self.area is not None
        bucket = self.buckets[index]
        data = self.client().call("GET", bucket.pull_uri(self.query.compression))
        self.area.write_bucket(bucket, data, self.query.compression)
        return len(data)

    def commit_fraction(self) -> float:
        return self.committed / len(self.area.instances) if self.area is not None and self.area.instances else 0.0

    def abandon(self) -> None:
        super().abandon()
        if self.area is not None:
            self.area.discard()
            self.area = None
        self.committed = 0

    def content(self) -> dict[str, Any]:
        result = super().content()
        if self.query.originator is not None:
            result["Originator"] = self.query.originator
        if self.total_instances is not None:
            result["DownloadedSizeMB"] = round(self.transferred / MB)
        return result

    @classmethod
    def unserialize(cls, services: TransferServices, data: dict[str, Any]) -> PullTransferJob:
        return cls(services, TransferQuery.parse(data))
