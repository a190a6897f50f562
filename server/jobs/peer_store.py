"""``OrthancPeerStore``: ``POST /instances`` of a set of instances to an Orthanc peer.

Transient failures (connection refused or lost, timeouts, 502/503/504) use the
Retry state like the C-STORE job (:class:`server.jobs.store_scu.RetryingInstancesJob`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.dicom.transcode import Settings, transcode_or_keep
from server.jobs.instances import SetOfInstancesJob
from server.jobs.store_scu import RetryingInstancesJob, SendServices
from server.net.modalities import peer_job_view, peer_settings
from server.net.peers import PeerClient, compressed

if TYPE_CHECKING:
    from server.storage.index import Resource

log = logging.getLogger("isengard.jobs")

MEGABYTE = 1024 * 1024


@dataclass(frozen=True)
class PeerStoreRequest:
    """A ``/peers/{id}/store`` request (parsed by :mod:`server.rest.requests`)."""

    resources: tuple[str, ...]
    compress: bool = False
    transcode: str | None = None
    permissive: bool = False


class OrthancPeerStoreJob(RetryingInstancesJob):
    TYPE = "OrthancPeerStore"

    def __init__(self, services: SendServices, instances: list[str], peer: Any, peer_name: str = "",
                 compress: bool = False, transcode: str | None = None, **kwargs: Any) -> None:
        super().__init__(services, instances, **kwargs)
        self.peer = peer
        self.peer_name = peer_name
        self.compress = compress
        self.transcode = transcode
        self.size = 0
        self._client: PeerClient | None = None

    def send(self, instance: Resource) -> None:
        if self._client is None:
            self._client = PeerClient(self.peer_name, peer_settings(self.peer), self.services.config)
        log.info('Sending instance %s to peer "%s"', instance.public_id, self._client.url)
        body = self.services.store.read_dicom(instance)
        if self.transcode:
            body = transcode_or_keep(body, self.transcode, Settings.from_config(self.services.config))
        if self.compress:
            body = compressed(body)
        self._client.store(body, self.compress)
        self.size += len(body)

    def disconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def reset(self) -> None:
        super().reset()
        self.size = 0

    def content(self) -> dict[str, Any]:
        result = super().content()
        result["Compress"] = self.compress
        result["Peer"] = peer_job_view(self.peer)
        result["Size"] = str(self.size)
        result["SizeMB"] = self.size // MEGABYTE
        if self.transcode:
            result["Transcode"] = self.transcode
        return result

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "Peer": self.peer, "PeerName": self.peer_name,
                "Compress": self.compress, "Transcode": self.transcode, "Size": self.size}

    @classmethod
    def unserialize(cls, services: SendServices, data: dict[str, Any]) -> OrthancPeerStoreJob:
        job = cls(services, peer=data["Peer"], peer_name=data.get("PeerName", ""),
                  compress=bool(data.get("Compress", False)), transcode=data.get("Transcode"),
                  **SetOfInstancesJob.common_arguments(data))
        job.restore(data)
        job.size = int(data.get("Size", 0))
        return job
