"""``/transfers``: the transfers accelerator's REST API (Orthanc's Transfers plugin).

Sender side: ``/transfers/send`` (a ``PushTransfer`` job, or pull mode when the peer has a
``RemoteSelf``), ``/transfers/lookup`` and ``/transfers/chunks/{ids}`` (what a puller asks).
Receiver side: ``/transfers/pull`` (a ``PullTransfer`` job) and the push transactions
(``/transfers/push``, ``PUT .../{bucket}``, ``POST .../commit``, ``DELETE``).
``/transfers/peers`` tells which peers run the accelerator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.errors import ErrorCode, OrthancError
from server.jobs.transfers import TransferQuery
from server.rest.base import OrthancHandler, Route, with_services
from server.rest.jobs import submit_job
from server.rest.requests import job_options
from server.transfers.buckets import compression_of, pack

if TYPE_CHECKING:
    from server.jobs.engine import JobsEngine
    from server.transfers.service import Transfers

TRANSACTION = r"([.0-9a-f-]+)"


class TransfersPeersHandler(OrthancHandler):
    transfers: Transfers

    async def get(self) -> None:
        """Each peer: ``installed``, ``bidirectional`` (with a ``RemoteSelf``) or ``disabled``."""
        self.answer_json(await self.run(self.transfers.peers_status))


class TransfersSendHandler(OrthancHandler):
    jobs: JobsEngine
    transfers: Transfers

    async def post(self) -> None:
        """Send ``Resources`` to ``Peer``: a ``PushTransfer`` job (asynchronous unless asked), or
        with the peer's ``RemoteSelf`` the peer's own ``PullTransfer`` job (``{Peer, RemoteJob, URL}``)."""
        body = self.json_body()
        query = TransferQuery.parse(body)
        remote_self = await self.run(self.transfers.remote_self, query.peer)
        if remote_self is not None:
            self.answer_json(await self.run(self.transfers.remote_pull, query, remote_self))
            return
        job = await self.run(self.transfers.push_job, query)
        await submit_job(self, job, job_options(body, synchronous_by_default=False))


class TransfersPullHandler(OrthancHandler):
    jobs: JobsEngine
    transfers: Transfers

    async def post(self) -> None:
        """Pull ``Resources`` from ``Peer`` into this server: a ``PullTransfer`` job."""
        body = self.json_body()
        job = await self.run(self.transfers.pull_job, TransferQuery.parse(body))
        await submit_job(self, job, job_options(body, synchronous_by_default=False))


class TransfersLookupHandler(OrthancHandler):
    transfers: Transfers

    async def post(self) -> None:
        """The instances below a list of ``{Level, ID}``, with their sizes and MD5s."""
        self.answer_json(await self.run(self.transfers.lookup, self.json_body()))


class TransfersChunksHandler(OrthancHandler):
    transfers: Transfers

    async def get(self, instances: str) -> None:
        """``size`` bytes (0: all) from ``offset`` into the files of the instances (IDs joined
        by dots), gzipped or not (``compression``)."""
        offset = self.int_argument("offset", 0)
        size = self.int_argument("size", 0)
        compression = compression_of(self.get_argument("compression", "none"))
        data = await self.run(self.transfers.source.chunks, instances.split("."), offset, size)
        body = await self.run(pack, data, compression)
        self.answer_bytes(body, "application/gzip" if compression == "gzip" else "application/octet-stream")


class PushCreateHandler(OrthancHandler):
    transfers: Transfers

    async def post(self) -> None:
        """Open a push transaction (``{Instances, Buckets, Compression}``); ``{ID, Path}``."""
        transaction = await self.run(self.transfers.push.create, self.json_body())
        self.answer_json({"ID": transaction, "Path": f"/transfers/push/{transaction}"})


class PushBucketHandler(OrthancHandler):
    transfers: Transfers
    _held = ""

    async def prepare(self) -> None:
        await super().prepare()
        # The transaction is busy from the headers on: a slow upload is not an idle sender.
        if self.transfers.push.hold(self.path_args[0]):
            self._held = self.path_args[0]

    async def put(self, transaction: str, bucket: str) -> None:
        """One bucket of a push transaction, as its raw (or gzipped) bytes."""
        if not (bucket.isascii() and bucket.isdigit()):
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE, f"Bad bucket index: {bucket}")
        await self.run(self.transfers.push.store_bucket, transaction, int(bucket), self.request.body)
        self.answer_json({})

    def on_finish(self) -> None:
        self._unhold()
        super().on_finish()

    def on_connection_close(self) -> None:
        """The sender went away (killed, cut off) before its answer: whatever becomes of this
        request, the transaction may be idle again, and reaped."""
        self._unhold()
        super().on_connection_close()

    def _unhold(self) -> None:
        held, self._held = self._held, ""
        if held:
            self.transfers.push.unhold(held)


class PushCommitHandler(OrthancHandler):
    transfers: Transfers

    async def post(self, transaction: str) -> None:
        """Check every MD5, then store every instance of the transaction; nothing on failure."""
        await self.run(self.transfers.push.commit, transaction)
        self.answer_json({})


class PushTransactionHandler(OrthancHandler):
    transfers: Transfers

    async def delete(self, transaction: str) -> None:
        """Discard a push transaction and what it received."""
        await self.run(self.transfers.push.discard, transaction)
        self.answer_json({})


def paths() -> list[tuple[str, type]]:
    return [
        (r"/transfers/peers", TransfersPeersHandler),
        (r"/transfers/send", TransfersSendHandler),
        (r"/transfers/pull", TransfersPullHandler),
        (r"/transfers/lookup", TransfersLookupHandler),
        (r"/transfers/chunks/([.0-9a-f-]+)", TransfersChunksHandler),
        (r"/transfers/push", PushCreateHandler),
        (rf"/transfers/push/{TRANSACTION}/commit", PushCommitHandler),
        (rf"/transfers/push/{TRANSACTION}/([^/]+)", PushBucketHandler),
        (rf"/transfers/push/{TRANSACTION}", PushTransactionHandler),
    ]


def routes(*, jobs: JobsEngine, transfers: Transfers) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), jobs=jobs, transfers=transfers)
