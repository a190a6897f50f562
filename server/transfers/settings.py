"""The ``Transfers`` configuration section, with the plugin's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KB = 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class TransferSettings:
    #: HTTP requests run in parallel by one transfer.
    threads: int = 4
    #: The size a bucket aims at (bytes): smaller instances are grouped, larger ones split.
    bucket_size: int = 4096 * KB
    #: Memory for the DICOM files a sender reads (bytes).
    cache_size: int = 512 * MB
    #: Push transactions received at once; a new one beyond drops the least recently used.
    max_push_transactions: int = 4
    #: Further tries of a failed HTTP request, one second apart.
    max_http_retries: int = 0
    #: Seconds to wait for a peer in ``/transfers/peers``; also how long a push transaction
    #: that receives nothing is kept before it is discarded.
    peer_connectivity_timeout: float = 2
    #: Seconds the sender waits for the receiver's commit.
    peer_commit_timeout: float = 600
    #: Threads storing the instances of a commit (the plugin's ``CommitThreadsCount``; its
    #: default is 1, Isengard's 4: its ingest is Python, and overlapping disk, parsing and
    #: index work is what makes a commit keep up with the bucket transfers).
    commit_threads: int = 4

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> TransferSettings:
        """The settings of a ``Transfers`` section (validated by the configuration schema)."""
        section = section or {}
        defaults = cls()
        return cls(
            threads=max(1, int(section.get("Threads", defaults.threads))),
            bucket_size=int(section.get("BucketSize", defaults.bucket_size // KB)) * KB,
            cache_size=int(section.get("CacheSize", defaults.cache_size // MB)) * MB,
            max_push_transactions=int(section.get("MaxPushTransactions", defaults.max_push_transactions)),
            max_http_retries=int(section.get("MaxHttpRetries", defaults.max_http_retries)),
            peer_connectivity_timeout=float(section.get("PeerConnectivityTimeout",
                                                        defaults.peer_connectivity_timeout)),
            peer_commit_timeout=float(section.get("PeerCommitTimeout", defaults.peer_commit_timeout)),
            commit_threads=max(1, int(section.get("CommitThreadsCount", defaults.commit_threads))),
        )
