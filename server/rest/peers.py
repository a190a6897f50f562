"""``/peers``: the Orthanc peers, their ``/system``, and sending instances to them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.errors import ErrorCode, OrthancError
from server.net.modalities import check_name, normalize_peer, parse_peer, peer_settings
from server.net.peers import PeerClient
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.jobs import submit_job
from server.rest.requests import peer_store_request

if TYPE_CHECKING:
    from server.config import Configuration
    from server.jobs.engine import JobsEngine
    from server.net.service import NetworkService

NAME = r"([^/]+)"


class PeersHandler(OrthancHandler):
    network: NetworkService

    async def get(self) -> None:
        peers = {n: normalize_peer(p) for n, p in self.network.peers.all().items()}
        self.answer_json(peers if self.flag("expand") else sorted(peers))


class PeerHandler(OrthancHandler):
    network: NetworkService

    async def get(self, name: str) -> None:
        if self.network.peers.get(name) is None:
            raise NoAnswer()
        self.answer_json(["configuration", "store", "store-straight", "system"])

    async def put(self, name: str) -> None:
        check_name(name)
        params = parse_peer(self.json_body(NoAnswer()))
        await self.run(self.network.peers.put, name, params)
        self.answer_empty_text()

    async def delete(self, name: str) -> None:
        if not await self.run(self.network.peers.delete, name):
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Unknown Orthanc peer: {name}")
        self.answer_empty_text()


class PeerConfigurationHandler(OrthancHandler):
    network: NetworkService

    async def get(self, name: str) -> None:
        self.answer_json(normalize_peer(self.network.peer(name)))


class PeerSystemHandler(OrthancHandler):
    """``GET /peers/{p}/system``: the peer's own answer, status included."""

    config: Configuration
    network: NetworkService

    async def get(self, name: str) -> None:
        client = PeerClient(name, peer_settings(self.network.peer(name)), self.config)
        try:
            status, body = await self.run(client.system)
        finally:
            client.close()
        if status != 200:
            self._empty(status)
            self.finish()
            return
        self.answer_bytes(body, "application/json")


class PeerStoreHandler(OrthancHandler):
    network: NetworkService

    async def post(self, name: str) -> None:
        network = self.network
        request, options = peer_store_request(self.request.body, lambda: network.peer(name))
        resources = list(request.resources)
        instances = await self.run(network.instances_of, resources, name)
        job = network.peer_job(instances, name, compress=request.compress, transcode=request.transcode,
                               permissive=request.permissive, parent_resources=resources)
        await submit_job(self, job, options)


class PeerStoreStraightHandler(OrthancHandler):
    """``POST /peers/{p}/store-straight``: a DICOM file sent as is; the peer's answer."""

    config: Configuration
    network: NetworkService

    async def post(self, name: str) -> None:
        client = PeerClient(name, peer_settings(self.network.peer(name)), self.config)
        try:
            answer = await self.run(client.store, self.request.body, False)
        finally:
            client.close()
        self.answer_bytes(answer, "application/json")


def paths() -> list[tuple[str, type]]:
    return [
        (r"/peers", PeersHandler),
        (rf"/peers/{NAME}", PeerHandler),
        (rf"/peers/{NAME}/configuration", PeerConfigurationHandler),
        (rf"/peers/{NAME}/system", PeerSystemHandler),
        (rf"/peers/{NAME}/store", PeerStoreHandler),
        (rf"/peers/{NAME}/store-straight", PeerStoreStraightHandler),
    ]


def routes(*, jobs: JobsEngine, config: Configuration, network: NetworkService) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), jobs=jobs, config=config, network=network)
