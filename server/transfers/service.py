"""What the ``/transfers`` routes call: lookups, chunks, push transactions, the jobs, and
the state of the peers, built once by the composition root."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.errors import ErrorCode, OrthancError
from server.jobs.transfers import PullTransferJob, PushTransferJob, TransferQuery, TransferServices
from server.net.modalities import peer_settings
from server.net.peers import PeerClient
from server.net.scu import NetworkError
from server.transfers.client import TransferClient
from server.transfers.push import PushTransactions
from server.transfers.settings import MB, TransferSettings
from server.transfers.source import TransferSource
from server.transfers.staging import clear_staging

if TYPE_CHECKING:
    from server.config import Configuration
    from server.net.service import RemoteRegistry
    from server.storage.index import Index
    from server.store import Store

#: The name under which peers look for the plugin in ``GET /plugins``.
PLUGIN_NAME = "transfers"


class Transfers:
    def __init__(self, config: Configuration, index: Index, store: Store, peers: Callable[[], RemoteRegistry],
                 staging: Path) -> None:
        """``peers`` gives the ``OrthancPeers`` registry (owned by the network service, which
        is built after the jobs engine that restores the transfer jobs)."""
        self.config = config
        self.settings = TransferSettings.from_config(config.get("Transfers"))
        self._peers = peers
        self.staging = staging
        self.source = TransferSource(index, store, self.settings.cache_size)
        #: Who this server is to its peers (the plugin's UUID, new at each start).
        self.originator = str(uuid.uuid4())
        self.push = PushTransactions(staging / "push", store, self.settings.max_push_transactions,
                                     self.settings.peer_connectivity_timeout, self.settings.commit_threads)
        self.job_services = TransferServices(config, self.settings, self.source, store, staging / "pull",
                                             self.peer, self.originator)

    def start(self) -> None:
        """Forget what an earlier run staged, then watch for abandoned pushes."""
        clear_staging(self.staging)
        (self.staging / "push").mkdir()
        (self.staging / "pull").mkdir()
        self.push.start()

    def stop(self) -> None:
        self.push.stop()

    def peer(self, name: str) -> Any:
        params = self._peers().get(name)
        if params is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown Orthanc peer: {name}")
        return params

    # -- sender side ---------------------------------------------------------------------

    def lookup(self, resources: Any) -> dict[str, Any]:
        """``POST /transfers/lookup``: the instances below ``resources``, sizes and MD5s."""
        instances = self.source.resolve(resources)
        total = sum(info.size for info in instances)
        return {"Instances": [info.to_json() for info in instances], "Originator": self.originator,
                "CountInstances": len(instances), "TotalSize": str(total), "TotalSizeMB": round(total / MB)}

    def push_job(self, query: TransferQuery) -> PushTransferJob:
        return PushTransferJob(self.job_services, query)

    def pull_job(self, query: TransferQuery) -> PullTransferJob:
        return PullTransferJob(self.job_services, query)

    def remote_self(self, peer_name: str) -> str | None:
        """The peer's ``RemoteSelf`` property: this server's name on the peer (pull mode)."""
        value = peer_settings(self.peer(peer_name)).get("RemoteSelf")
        return value if isinstance(value, str) and value else None

    def remote_pull(self, query: TransferQuery, remote_self: str) -> dict[str, Any]:
        """``/transfers/send`` in pull mode: ask the peer to pull from us; its job's address."""
        settings = peer_settings(self.peer(query.peer))
        client = TransferClient(query.peer, settings, self.config, self.settings.max_http_retries,
                                query.transfer_id)
        body = {"Resources": query.resources, "Compression": query.compression,
                "Originator": self.originator, "Peer": remote_self}
        try:
            answer = client.call_json("POST", "/transfers/pull", body)
        except NetworkError as e:
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL, "Cannot trigger send DICOM instances using pull mode "
                               f"to peer: {query.peer} ({e.details})") from None
        finally:
            client.close()
        if not isinstance(answer, dict) or not isinstance(answer.get("ID"), str) \
                or not isinstance(answer.get("Path"), str):
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL, f"Bad network protocol from peer: {query.peer}")
        return {"Peer": query.peer, "RemoteJob": answer["ID"],
                "URL": settings["Url"].rstrip("/") + answer["Path"]}

    # -- peers ---------------------------------------------------------------------------

    def peers_status(self) -> dict[str, str]:
        """``GET /transfers/peers``: for each peer, whether it runs the accelerator
        (``installed``, ``bidirectional`` with a ``RemoteSelf``) or not (``disabled``),
        asked in parallel, ``PeerConnectivityTimeout`` seconds at most each."""
        names = sorted(self._peers().all())
        if not names:
            return {}
        with ThreadPoolExecutor(min(len(names), self.settings.threads)) as pool:
            installed = dict(zip(names, pool.map(self._has_plugin, names), strict=True))
        return {name: ("disabled" if not installed[name] else
                       "bidirectional" if self.remote_self(name) else "installed") for name in names}

    def _has_plugin(self, name: str) -> bool:
        client = PeerClient(name, peer_settings(self.peer(name)), self.config)
        try:
            answer = client.request("GET", "plugins", timeout=self.settings.peer_connectivity_timeout)
            plugins = answer.json() if answer.status_code == 200 else []
        except (NetworkError, ValueError):
            return False
        finally:
            client.close()
        return isinstance(plugins, list) and PLUGIN_NAME in plugins
