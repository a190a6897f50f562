"""The receiving side of push mode: ``POST /transfers/push`` opens a transaction (the
instances and the buckets to come), ``PUT /transfers/push/{id}/{bucket}`` fills it,
``POST .../commit`` checks and stores everything, ``DELETE`` drops it.

Transactions live in memory with their download area on disk.  At most
``MaxPushTransactions`` are open: a new one drops the least recently used, as the
plugin does.  Beyond the plugin, a transaction that receives nothing for
``PeerConnectivityTimeout`` seconds is discarded by a reaper thread, so an interrupted
sender (killed, cut off) leaves nothing behind.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.errors import ErrorCode, OrthancError
from server.transfers.buckets import Bucket, InstanceInfo, bad_format, compression_of
from server.transfers.staging import DownloadArea

if TYPE_CHECKING:
    from server.store import Store

log = logging.getLogger("isengard.transfers")


@dataclass
class PushTransaction:
    area: DownloadArea
    buckets: list[Bucket]
    compression: str
    last_activity: float = field(default_factory=time.monotonic)
    #: Requests being served; a busy transaction is never reaped.
    busy: int = 0


@dataclass
class PushCounters:
    """What the plugin reports as ``orthanc_transfers_*_push_count`` metrics."""

    created: int = 0
    committed: int = 0
    aborted: int = 0


def parse_push(body: Any) -> tuple[list[InstanceInfo], list[Bucket], str]:
    """A ``POST /transfers/push`` body: ``{"Instances", "Buckets", "Compression"}``."""
    if not isinstance(body, dict) or not isinstance(body.get("Instances"), list) \
            or not isinstance(body.get("Buckets"), list) or not isinstance(body.get("Compression"), str):
        raise bad_format()
    instances = [InstanceInfo.from_json(item) for item in body["Instances"]]
    buckets = [Bucket.from_json(item) for item in body["Buckets"]]
    return instances, buckets, compression_of(body["Compression"])


class PushTransactions:
    """The open push transactions of this server."""

    def __init__(self, root: Path, store: Store, max_transactions: int, idle_timeout: float,
                 commit_threads: int = 1) -> None:
        self.root = root
        self.commit_threads = commit_threads
        self.store = store
        self.max_transactions = max_transactions
        self.idle_timeout = idle_timeout
        self.counters = PushCounters()
        self._open: OrderedDict[str, PushTransaction] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._reaper: threading.Thread | None = None

    def start(self) -> None:
        self._reaper = threading.Thread(target=self._reap_forever, name="transfers-reaper", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._reaper is not None:
            self._reaper.join()
        with self._lock:
            dropped, self._open = list(self._open.values()), OrderedDict()
        for transaction in dropped:
            transaction.area.discard()

    def create(self, body: Any) -> str:
        instances, buckets, compression = parse_push(body)
        transaction = PushTransaction(DownloadArea(self.root, instances), buckets, compression)
        transaction_id = str(uuid.uuid4())
        with self._lock:
            self.counters.created += 1
            dropped = None
            if len(self._open) >= self.max_transactions:
                oldest, dropped = self._open.popitem(last=False)
                self.counters.aborted += 1
                log.warning("An inactive push transaction has been discarded: %s", oldest)
            self._open[transaction_id] = transaction
        if dropped is not None:
            dropped.area.discard()
        log.info("Push transaction %s: %d instances (%d bytes) to receive in %d buckets", transaction_id,
                 len(instances), transaction.area.total_size, len(buckets))
        return transaction_id

    def _take(self, transaction_id: str) -> PushTransaction:
        """The transaction, marked busy and most recently used; 404 if unknown."""
        with self._lock:
            transaction = self._open.get(transaction_id)
            if transaction is None:
                raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown push transaction: {transaction_id}")
            self._open.move_to_end(transaction_id)
            transaction.busy += 1
            transaction.last_activity = time.monotonic()
            return transaction

    def hold(self, transaction_id: str) -> bool:
        """A request for the transaction has begun (its body may take a while): not idle until
        :meth:`unhold`.  Memory only, so callable on the event loop."""
        with self._lock:
            transaction = self._open.get(transaction_id)
            if transaction is None:
                return False
            transaction.busy += 1
            transaction.last_activity = time.monotonic()
            return True

    def unhold(self, transaction_id: str) -> None:
        with self._lock:
            transaction = self._open.get(transaction_id)
            if transaction is not None:
                self._release_locked(transaction)

    def _release(self, transaction: PushTransaction) -> None:
        with self._lock:
            self._release_locked(transaction)

    @staticmethod
    def _release_locked(transaction: PushTransaction) -> None:
        transaction.busy -= 1
        transaction.last_activity = time.monotonic()

    def store_bucket(self, transaction_id: str, index: int, body: bytes) -> None:
        transaction = self._take(transaction_id)
        try:
            if not 0 <= index < len(transaction.buckets):
                raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"No bucket {index} in this transaction")
            transaction.area.write_bucket(transaction.buckets[index], body, transaction.compression)
        except OSError:  # discarded meanwhile (DELETE, MaxPushTransactions)
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Push transaction discarded: {transaction_id}") from None
        finally:
            self._release(transaction)

    def commit(self, transaction_id: str) -> None:
        """Check every MD5, then store every instance; the transaction is gone either way."""
        transaction = self._take(transaction_id)
        try:
            transaction.area.check()
            transaction.area.commit(self.store, self.commit_threads)
        finally:
            self._forget(transaction_id)
            transaction.area.discard()
        with self._lock:
            self.counters.committed += 1

    def discard(self, transaction_id: str) -> None:
        transaction = self._take(transaction_id)
        self._forget(transaction_id)
        transaction.area.discard()

    def _forget(self, transaction_id: str) -> None:
        with self._lock:
            self._open.pop(transaction_id, None)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def _reap_forever(self) -> None:
        period = max(0.1, min(1.0, self.idle_timeout / 4))
        while not self._stopping.wait(period):
            self.reap()

    def reap(self) -> None:
        """Discard the transactions idle for longer than the timeout."""
        now = time.monotonic()
        with self._lock:
            idle = [(tid, t) for tid, t in self._open.items()
                    if t.busy == 0 and now - t.last_activity > self.idle_timeout]
            for transaction_id, _ in idle:
                del self._open[transaction_id]
                self.counters.aborted += 1
        for transaction_id, transaction in idle:
            log.warning("Push transaction %s received nothing for %g s: discarded", transaction_id,
                        self.idle_timeout)
            transaction.area.discard()
