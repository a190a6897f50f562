"""The composition root: builds the server once from a configuration and runs it until shutdown.

:class:`Server` builds every long-lived piece (index, storage area, event bus,
store path, jobs engine, network, scripting, DICOM and HTTP servers) and hands
each consumer only the services it uses: job families get their services
objects, the network and scripting layers theirs, and every REST route its own
through Tornado's ``initialize``.  No other module imports this one.
``POST /tools/reset`` stops the server and builds a new one from the re-read
configuration, as Orthanc restarts in-process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from server import events, extra_main_tags, instance_tags
from server.config import ConfigError, Configuration, load_configuration
from server.dicom import private_dictionary
from server.dicom.json_format import dataset_decoder, tag_text
from server.dicom.parse import read_dataset
from server.dicom.transcode import IngestTranscoding
from server.find import Finder
from server.ingest_processes import IngestProcesses
from server.instance_files import InstanceFiles
from server.jobs.archive import ArchiveFiles, ArchiveServices
from server.jobs.cluster import LEASE_SECONDS, ClusterJobsEngine, node_name
from server.jobs.engine import JobsEngine
from server.jobs.modification import ModificationServices
from server.jobs.registry import JobServices, job_registry
from server.jobs.storage_commitment_scp import StorageCommitmentScpJob
from server.jobs.store_scu import SendServices
from server.key_values import KeyValueStores
from server.metrics import LogCounter, Metrics
from server.net.query_retrieve import DicomServices
from server.net.scp import DicomServer, configure_pynetdicom
from server.net.service import ModalityRegistry, NetworkService, RemoteRegistry
from server.net.storage_commitment import CommitmentService, Reports
from server.net.worklists import FolderWorklists, install_hooks
from server.requested_tags import RequestedTags
from server.resources import ResourceViews
from server.rest import (
    archive,
    bulk,
    compression,
    create,
    directory,
    export,
    images,
    jobs,
    labels,
    log_levels,
    lua,
    metadata,
    metrics,
    modalities,
    modify,
    peers,
    plugins,
    queries,
    reconstruct,
    resources,
    slices,
    storage_commitment,
    system,
    tags,
    tools,
    transfers,
    ui,
)
from server.rest.app import build_application, build_http_server, check_registered_users
from server.rest.base import HTTP_POLICY, HttpServices, RequestPolicy, Route
from server.rest.inprocess import ContextExecutor, InProcessRest
from server.rest.metadata import ContentTypes, MetadataNames
from server.rest.multipart import ChunkStore
from server.scripting.lua import LuaLoadError, LuaScripting
from server.scripting.services import ScriptingServices
from server.stability import StabilityMonitor
from server.storage.area import StorageArea
from server.storage.index import Index, Resource
from server.store import Limits, Store, overwrite_mode
from server.transfers.service import Transfers

if TYPE_CHECKING:
    from server.rest.base import OrthancHandler
    from server.scripting.python import PythonScripting

log = logging.getLogger("isengard")

#: How long shutdown waits for HTTP requests in flight.
SHUTDOWN_GRACE_SECONDS = 10

#: Worker threads for disk, SQLite and pydicom work on behalf of HTTP requests.
HTTP_WORKERS = 8


class Server:
    """Everything one run of the server is made of, built from one configuration."""

    def __init__(self, config: Configuration, no_jobs: bool = False) -> None:
        check_registered_users(config)
        configure_pynetdicom()
        private_dictionary.load(config["Dictionary"], str(config.path or ""))
        extra_main_tags.configure(config.get("ExtraMainDicomTags"))
        # Forked first, while the process has no threads, sockets nor index: what parsing needs
        # (the main tags, the private dictionary) is configured by now.
        processes = int(config["IngestProcesses"])
        self.ingest_processes = IngestProcesses(processes) if processes else None
        self.config = config
        self.no_jobs = no_jobs
        # Context-propagating: work done for a waiting Lua call follows the request into the pool.
        self.executor = ContextExecutor(HTTP_WORKERS, thread_name_prefix="http-worker")
        self.bus = events.EventBus()
        self.metrics = Metrics(bool(config["MetricsEnabled"]))
        self.bus.subscribe(events.Kind.JOB_SUCCESS, lambda _: self.metrics.job_ended(True))
        self.bus.subscribe(events.Kind.JOB_FAILURE, lambda _: self.metrics.job_ended(False))
        self.log_counter = LogCounter(self.metrics)
        logging.getLogger().addHandler(self.log_counter)
        self.area = StorageArea(config.resolve_path(config["StorageDirectory"]),
                                compress=bool(config["StorageCompression"]), metrics=self.metrics,
                                sync=bool(config["SyncStorageArea"]))
        self.index = open_index(config)
        self.index.read_only = bool(config["ReadOnly"])
        published, removed = self.area.recover(self.index.has_attachment_uuid)
        if published or removed:
            log.warning("Recovered interrupted ingests: %d completed, %d rolled back",
                        published, removed)
        self.default_encoding: str = config["DefaultEncoding"]
        self.store = Store(self.index, self.area, self.bus, Limits(
            max_storage_bytes=int(config["MaximumStorageSize"]) * 1024 * 1024,
            max_patients=int(config["MaximumPatientCount"]),
            overwrite=overwrite_mode(config["OverwriteInstances"])[0],
            overwrite_if_changed=overwrite_mode(config["OverwriteInstances"])[1],
            reject_when_full=config["MaximumStorageMode"] == "Reject",
            default_encoding=self.default_encoding), self.metrics)
        self.store.transcoding = IngestTranscoding.from_config(config)
        self.stability = StabilityMonitor(self.index, self.bus, float(config["StableAge"]))
        self.views = ResourceViews(self.index, self.stability)
        self.finder = Finder(self.index, self._file_tags)
        self.files = InstanceFiles(config, self.index, self.store, self._encoding)
        self.requested_tags = RequestedTags(
            self.index, self.finder, lambda instance: instance_tags.full_tags(self.files, instance))
        self.metadata_names = MetadataNames(config["UserMetadata"])
        self.content_types = ContentTypes(config["UserContentType"])
        self.upload_chunks = ChunkStore()
        self.jobs_directory = config.resolve_path(config["StorageDirectory"]) / "jobs"
        self.jobs_directory.mkdir(parents=True, exist_ok=True)
        self.modalities = ModalityRegistry(config, self.index)
        self.commitment_reports = Reports(self.index, int(config["StorageCommitmentReportsSize"]))
        self.commitment = CommitmentService(self.index, self.modalities, self.commitment_reports)
        self.send_services = SendServices(config, self.index, self.store, self.commitment.request_commitment)
        self.modification_services = ModificationServices(
            config, self.index, self.store, self.views.labels, self.jobs_directory,
            self._encoding)
        save_jobs = config["SaveJobs"] and not config["ReadOnly"]
        # a database plugin (PostgreSQL) is what several nodes can share
        cluster = save_jobs and self.index.database.backend_plugin is not None
        self.archive_services = ArchiveServices(
            config, self.index, self.store,
            ArchiveFiles(self.jobs_directory, int(config["MediaArchiveSize"]), shared=cluster), self._encoding)
        # In this process's staging folder: nodes sharing the storage area clear their own only.
        self.transfers = Transfers(config, self.index, self.store, self._peers, self.area.tmp / "transfers")
        self.job_registry = job_registry(JobServices(config, self.send_services, self.modification_services,
                                                     self.archive_services, self.commitment,
                                                     self.transfers.job_services))
        self.jobs = self._jobs_engine(config, save_jobs, cluster)
        self.network = NetworkService(
            DicomServices(config, self.index, self.store, self.finder, self.metrics, self._encoding),
            self.modalities, self.send_services, self.jobs)
        self.http_port = int(config["HttpPort"])
        self.dicom_port = int(config["DicomPort"])
        self.inprocess = InProcessRest(self._application)
        scripting = ScriptingServices(config, self.bus, self.index, self.store, self.finder, self.metrics,
                                      self.metadata_names, self.network, self.commitment,
                                      self.modification_services, self.inprocess, self.http_port, self._encoding,
                                      self.stability, KeyValueStores(self.index), self.jobs)
        self.lua = LuaScripting(scripting)
        self.python: PythonScripting | None = None
        if config.get("PythonScript"):
            from server.scripting.python import load_script  # here: ~10 ms of imports, for a script only

            self.python = load_script(scripting)
        self.store.processes = self.ingest_processes
        if self.python is not None:  # RegisterStorageArea
            local = self.area
            self.area = self.store.area = self.python.storage_area(local)
            if self.area is not local:
                self.store.processes = None  # the script keeps the files: nothing to stage here
        self.worklists = FolderWorklists.from_config(config)
        self.dicom: DicomServer | None = None
        self._stop: asyncio.Event | None = None
        self._restart = False

    def _jobs_engine(self, config: Configuration, save_jobs: bool, cluster: bool) -> JobsEngine:
        """The jobs engine: one queue shared by every node on a PostgreSQL index with
        ``SaveJobs`` (:mod:`server.jobs.cluster`), else this node's own."""
        workers, history = int(config["ConcurrentJobs"]), int(config["JobsHistorySize"])
        database = self.index.database
        if cluster:
            from server.storage.pg_jobs import PostgresJobStore  # psycopg: for this backend only
            from server.storage.postgresql import PostgresDatabase

            assert isinstance(database, PostgresDatabase)
            store = PostgresJobStore(database.settings.conninfo, node_name(), LEASE_SECONDS)
            self.archive_services.files.saved_files = lambda: store.saved_values("File")
            return ClusterJobsEngine(self.job_registry, self.bus, store, workers, history)
        return JobsEngine(self.job_registry, self.bus, self.index if save_jobs else None, workers, history)

    # -- services handed out as callables ----------------------------------------------

    def _encoding(self) -> str:
        """The current ``DefaultEncoding``, for the services that read files."""
        return self.default_encoding

    def set_default_encoding(self, name: str) -> None:
        self.default_encoding = name
        self.store.limits.default_encoding = name

    def _file_tags(self, instance: Resource) -> dict[tuple[int, int], str]:
        """Every top-level tag of an instance's file as text, for finds on non-indexed tags."""
        ds, _ = read_dataset(self.store.read_dicom(instance), stop_before_pixels=True)
        decoder = dataset_decoder(ds, self.default_encoding)
        return {(e.tag.group, e.tag.element): tag_text(ds, e.tag, decoder) or "" for e in ds}

    def publish_updated(self, resource: Resource, attachment: bool = False) -> None:
        """A resource's metadata (or, with ``attachment``, one of its attachments) changed."""
        self.bus.publish(events.ResourceEvent(events.Kind.UPDATED, resource.level, resource.public_id,
                                              attachment))

    async def http_filters_accept(self, handler: OrthancHandler) -> bool:
        """The hook point of ``IncomingHttpRequestFilter`` (Lua, then Python): True when allowed."""
        for accepts in self.bus.interventions.http_request:
            if not await accepts(handler):
                return False
        return True

    def _accepts_token(self, authorization: str) -> bool:
        return self.python is not None and self.python.accepts_token(authorization)

    def _peers(self) -> RemoteRegistry:
        """The ``OrthancPeers`` registry, which the network service owns (built after the jobs)."""
        return self.network.peers

    def _dicom_server(self) -> DicomServer | None:
        return self.dicom

    # -- the REST API ------------------------------------------------------------------

    def _application(self, policy: RequestPolicy, executor: Executor) -> tornado.web.Application:
        """The REST API for HTTP clients, or for the in-process calls of one origin."""
        http = HttpServices(policy, self.config, self.index, executor, self.area.tmp, self.metrics,
                            self.http_filters_accept, self._accepts_token)
        return build_application(http, self._routes(), self.python,
                                 compression.enabled(self.config.user_value("HttpCompressionEnabled")))

    def _routes(self) -> list[Route]:
        """Every route, each given the services its handlers use."""
        return [
            *labels.routes(views=self.views),
            *resources.routes(area=self.area, config=self.config, files=self.files, index=self.index,
                              requested_tags=self.requested_tags, store=self.store,
                              upload_chunks=self.upload_chunks, views=self.views),
            *metadata.routes(area=self.area, config=self.config, content_types=self.content_types,
                             index=self.index, metadata_names=self.metadata_names,
                             publish_updated=self.publish_updated),
            *system.routes(config=self.config, dicom_port=self.dicom_port, http_port=self.http_port,
                           index=self.index, store=self.store),
            *tools.routes(config=self.config, dicom=self._dicom_server, encoding=self._encoding,
                          finder=self.finder, index=self.index, metadata_names=self.metadata_names,
                          request_stop=self.request_stop, requested_tags=self.requested_tags,
                          set_encoding=self.set_default_encoding, views=self.views),
            *jobs.routes(jobs=self.jobs),
            *storage_commitment.routes(commitment=self.commitment, commitment_reports=self.commitment_reports,
                                       index=self.index, store=self.store),
            *create.routes(config=self.config, encoding=self._encoding, index=self.index, store=self.store),
            *metrics.routes(index=self.index, jobs=self.jobs, metrics=self.metrics,
                            available_threads=self._available_threads),
            *archive.routes(archive=self.archive_services, config=self.config, jobs=self.jobs),
            *modalities.routes(jobs=self.jobs, config=self.config, encoding=self._encoding, network=self.network),
            *peers.routes(jobs=self.jobs, config=self.config, network=self.network),
            *queries.routes(jobs=self.jobs, encoding=self._encoding, network=self.network),
            *modify.routes(jobs=self.jobs, modification=self.modification_services),
            *lua.routes(config=self.config, lua=self.lua),
            *tags.routes(files=self.files),
            *bulk.routes(index=self.index, metadata_names=self.metadata_names, store=self.store, views=self.views),
            *reconstruct.routes(files=self.files, index=self.index),
            *directory.routes(index=self.index),
            *slices.routes(index=self.index),
            *plugins.routes(files=self.files),
            *log_levels.routes(),
            *export.routes(config=self.config, index=self.index, store=self.store),
            *images.routes(files=self.files),
            *ui.routes(),
            *transfers.routes(jobs=self.jobs, transfers=self.transfers),
        ]

    def _available_threads(self) -> dict[str, int]:
        """Idle workers per pool, as Orthanc 1.13's ``orthanc_available_*`` metrics count them."""
        available = {"orthanc_available_http_threads_count": self.executor.available()}
        if self.dicom is not None:
            busy = len(self.dicom.ae.active_associations)
            available["orthanc_available_dicom_threads"] = max(0, self.dicom.ae.maximum_associations - busy)
        return available

    def _start_commitment_job(self, transaction_uid: str, pairs: list[tuple[str, str]], remote_aet: str,
                              called_aet: str) -> None:
        """An N-ACTION of storage commitment becomes a job (the DICOM side knows no job types)."""
        job = StorageCommitmentScpJob(self.commitment, transaction_uid, pairs, remote_aet, called_aet)
        self.jobs.submit(job, 0)

    def request_stop(self, restart: bool) -> None:
        self._restart = restart
        if self._stop is not None:
            self._stop.set()

    # -- life cycle ------------------------------------------------------------------

    async def serve(self) -> bool:
        """Run until shutdown; True when a restart (``/tools/reset``) was asked."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, False)
        sockets = self._bind_http()  # first: a taken port or a bad address stops start-up cleanly
        keep_alive = int(self.config["KeepAliveTimeout"]) if self.config["KeepAlive"] else 0
        http = build_http_server(self._application(HTTP_POLICY, self.executor), int(self.config["HttpRequestTimeout"]),
                                 keep_alive)
        self.inprocess.start(loop)
        await self.lua.start()
        if self.config["DicomServerEnabled"]:
            self.dicom = DicomServer(self.config, self.store, self.dicom_port)
            self.commitment.install(self.dicom, self._start_commitment_job)
            self.network.install(self.dicom)
            install_hooks(self.dicom, self.worklists, lambda: self.default_encoding,
                          self.python.add_dicom_hooks if self.python is not None else None)
            self.dicom.start()
        self.stability.start()
        await loop.run_in_executor(None, self.transfers.start)  # clears what a former run staged
        await loop.run_in_executor(None, self.jobs.start, not self.no_jobs)  # reads the index
        # Only now: a client that sees the server answer sees every saved job restored.
        http.add_sockets(sockets)
        self.bus.publish(events.ServerEvent(events.Kind.STARTED))
        self.lua.initialize()
        log.warning("Isengard has started: HTTP on port %d, DICOM on port %d (AET %s)",
                    self.http_port, self.dicom_port, self.config["DicomAet"])
        try:
            await self._stop.wait()
        finally:
            log.warning("Isengard is stopping")
            http.stop()
            await self._close_connections(http)
            await self._shutdown()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return self._restart

    def _bind_http(self) -> list[socket.socket]:
        """The HTTP sockets on each of ``HttpBindAddresses`` (Orthanc 1.12.10), or else on
        ``ListenAddress``; accepted from only once the server is ready.

        Binding chooses who can connect at all; ``RemoteAccessAllowed`` still answers the
        non-loopback clients that do with an error, as in Orthanc.
        """
        sockets: list[socket.socket] = []
        for address in self.config["HttpBindAddresses"] or [self.config["ListenAddress"]]:
            try:
                sockets += tornado.netutil.bind_sockets(self.http_port, address=address)
            except (OSError, ValueError) as error:
                for bound in sockets:
                    bound.close()
                raise ConfigError(f'Cannot listen on HTTP port {self.http_port} of address "{address}" '
                                  f'(configuration options "HttpBindAddresses", "HttpPort"): {error}') from None
        return sockets

    @staticmethod
    async def _close_connections(http: tornado.httpserver.HTTPServer) -> None:
        """Let requests in flight finish (bounded), then drop keep-alive connections."""
        try:
            await asyncio.wait_for(http.close_all_connections(), timeout=SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            log.warning("Some HTTP requests were still running at shutdown")

    async def _shutdown(self) -> None:
        """Stop taking work, let in-flight stores finish, then close the index."""
        self.bus.publish(events.ServerEvent(events.Kind.STOPPED))
        if self.dicom is not None:
            self.dicom.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.jobs.stop)
        await asyncio.get_running_loop().run_in_executor(None, self.transfers.stop)
        self.network.stop()
        await self.lua.stop()
        if self.python is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.python.stop)
        self.inprocess.close()
        self.stability.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
        await asyncio.get_running_loop().run_in_executor(None, self.index.close)
        await asyncio.get_running_loop().run_in_executor(None, self.area.close)
        if self.ingest_processes is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.ingest_processes.close)
        logging.getLogger().removeHandler(self.log_counter)


def open_index(config: Configuration) -> Index:
    """SQLite in ``IndexDirectory``, or PostgreSQL when its section says ``EnableIndex``
    (the storage area stays on disk: ``EnableStorage`` is refused rather than ignored) and
    the configuration loads Orthanc's PostgreSQL plugin, if it names plugins at all."""
    section = config.get("PostgreSQL") or {}
    if not section.get("EnableIndex") or not _loads_postgresql_plugin(config.user_value("Plugins")):
        return Index(config.resolve_path(config["IndexDirectory"]) / "index.sqlite", bool(config["SyncStorageArea"]))
    from server.storage import postgresql  # here: psycopg takes ~0.1 s to import, for this backend only

    if section.get("EnableStorage"):
        raise ConfigError('"EnableStorage" of the "PostgreSQL" section is not supported: '
                          'Isengard keeps the DICOM files in "StorageDirectory"')
    return Index(postgresql.PostgresDatabase(postgresql.Settings.from_config(section)))


def _loads_postgresql_plugin(plugins: Any) -> bool:
    """Orthanc reads the ``PostgreSQL`` section only when its plugin is loaded: a configuration
    whose ``Plugins`` (files or folders) has none keeps SQLite, as Orthanc would (Orthanc's
    integration suite configures the section with ``"Plugins": []``).  Without ``Plugins``,
    the section alone says it: Isengard has the backend built in."""
    if plugins is None:
        return True
    for entry in plugins if isinstance(plugins, list) else []:
        path = Path(str(entry))
        names = [p.name for p in path.iterdir()] if path.is_dir() else [path.name]
        if any("postgresqlindex" in name.lower() for name in names):
            return True
    return False


def run(config: Configuration, no_jobs: bool = False) -> int:
    """Serve until shutdown, restarting in-process on ``/tools/reset``; the exit status.

    ``no_jobs`` starts without the saved jobs (and forgets them).
    """
    while True:
        try:
            root = Server(config, no_jobs=no_jobs)
            restart = asyncio.run(root.serve())
        except (ConfigError, LuaLoadError) as error:
            log.error("%s", error)
            return 1
        if not restart:
            return 0
        log.warning("Restarting with the configuration re-read from %s", config.path)
        config = load_configuration(config.path)

