"""Builds the server once from a configuration and runs it until shutdown.

:class:`ServerContext` owns every long-lived piece (index, storage area, event
bus, store path, DICOM server, HTTP server) and is what handlers receive.
``POST /tools/reset`` stops the context and builds a new one from the re-read
configuration, as Orthanc restarts in-process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

import tornado.httpserver

from server import events, instance_tags
from server.config import ConfigError, Configuration, load_configuration
from server.dicom import private_dictionary
from server.dicom.json_format import dataset_decoder, tag_text
from server.dicom.parse import read_dataset
from server.dicom.transcode import IngestTranscoding
from server.find import Finder
from server.jobs.archive import ArchiveFiles, ArchiveServices
from server.jobs.engine import JobsEngine
from server.jobs.modification import ModificationServices
from server.jobs.registry import JobServices, job_registry
from server.jobs.storage_commitment_scp import StorageCommitmentScpJob
from server.jobs.store_scu import SendServices
from server.metrics import Metrics
from server.net.query_retrieve import DicomServices
from server.net.scp import DicomServer
from server.net.service import ModalityRegistry, NetworkService
from server.net.storage_commitment import CommitmentService, Reports
from server.net.worklists import FolderWorklists, install_hooks
from server.requested_tags import RequestedTags
from server.resources import ResourceViews
from server.rest.app import build_application, build_http_server
from server.rest.inprocess import ContextExecutor, InProcessRest
from server.rest.metadata import ContentTypes, MetadataNames
from server.rest.multipart import ChunkStore
from server.scripting.lua import LuaLoadError, LuaScripting
from server.scripting.python import PythonScripting, load_script
from server.stability import StabilityMonitor
from server.storage.area import StorageArea
from server.storage.index import Index, Resource
from server.store import Limits, Store, overwrite_mode

if TYPE_CHECKING:
    from server.rest.base import OrthancHandler

log = logging.getLogger("isengard")

#: How long shutdown waits for HTTP requests in flight.
SHUTDOWN_GRACE_SECONDS = 10

#: Worker threads for disk, SQLite and pydicom work on behalf of HTTP requests.
HTTP_WORKERS = 8


class ServerContext:
    def __init__(self, config: Configuration, no_jobs: bool = False) -> None:
        private_dictionary.load(config["Dictionary"], str(config.path or ""))
        self.config = config
        self.no_jobs = no_jobs
        # Context-propagating: work done for a waiting Lua call follows the request into the pool.
        self.executor = ContextExecutor(HTTP_WORKERS, thread_name_prefix="http-worker")
        self.bus = events.EventBus()
        self.metrics = Metrics(bool(config["MetricsEnabled"]))
        self.area = StorageArea(config.resolve_path(config["StorageDirectory"]),
                                compress=bool(config["StorageCompression"]), metrics=self.metrics)
        self.index = Index(config.resolve_path(config["IndexDirectory"]) / "index.sqlite")
        self.index.read_only = bool(config["ReadOnly"])
        published, removed = self.area.recover(self.index.has_attachment_uuid)
        if published or removed:
            log.warning("Recovered interrupted ingests: %d completed, %d rolled back",
                        published, removed)
        self.default_encoding = config["DefaultEncoding"]
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
        self.requested_tags = RequestedTags(
            self.index, self.finder, lambda instance: instance_tags.full_tags(self, instance))
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
            lambda: self.default_encoding)
        self.archive_services = ArchiveServices(
            config, self.index, self.store,
            ArchiveFiles(self.jobs_directory, int(config["MediaArchiveSize"])), lambda: self.default_encoding)
        self.job_registry = job_registry(JobServices(config, self.send_services, self.modification_services,
                                                     self.archive_services, self.commitment))
        save_jobs = config["SaveJobs"] and not config["ReadOnly"]
        self.jobs = JobsEngine(self.job_registry, self.bus, self.index if save_jobs else None,
                               int(config["ConcurrentJobs"]), int(config["JobsHistorySize"]))
        self.network = NetworkService(
            DicomServices(config, self.index, self.store, self.finder, self.metrics, lambda: self.default_encoding),
            self.modalities, self.send_services, self.jobs)
        self.lua = LuaScripting(self)
        self.python: PythonScripting | None = load_script(self)
        if self.python is not None:  # RegisterStorageArea
            self.area = self.store.area = self.python.storage_area(self.area)
        self.worklists = FolderWorklists.from_config(config)
        self.http_port = int(config["HttpPort"])
        self.dicom_port = int(config["DicomPort"])
        self.dicom: DicomServer | None = None
        self._stop: asyncio.Event | None = None
        self._restart = False

    # -- services used by the REST layer ---------------------------------------------

    def set_default_encoding(self, name: str) -> None:
        self.default_encoding = name
        self.store.limits.default_encoding = name

    def _file_tags(self, instance: Resource) -> dict[tuple[int, int], str]:
        """Every top-level tag of an instance's file as text, for finds on non-indexed tags."""
        ds, _ = read_dataset(self.store.read_dicom(instance), stop_before_pixels=True)
        decoder = dataset_decoder(ds, self.default_encoding)
        return {(e.tag.group, e.tag.element): tag_text(ds, e.tag, decoder) or "" for e in ds}

    def publish_updated(self, resource: Resource) -> None:
        self.bus.publish(events.UPDATED, level=resource.level, resource_id=resource.public_id)

    def metrics_request_started(self) -> None:
        self.metrics.request_started()

    def metrics_request_finished(self, seconds: float) -> None:
        self.metrics.request_finished(seconds)

    async def http_filters_accept(self, handler: OrthancHandler) -> bool:
        """The hook point of ``IncomingHttpRequestFilter`` (Lua, Python): True when allowed."""
        if not await self.lua.accepts_http_request(handler):
            return False
        return self.python is None or await self.python.http_filter_accepts(handler)

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
        http = build_http_server(self)
        self.inprocess = InProcessRest(self, loop, build_application)
        await self.lua.start()
        http.listen(self.http_port, address=self.config["ListenAddress"])
        if self.config["DicomServerEnabled"]:
            self.dicom = DicomServer(self.config, self.store, self.dicom_port)
            self.commitment.install(self.dicom, self._start_commitment_job)
            self.network.install(self.dicom)
            install_hooks(self.dicom, self.worklists, lambda: self.default_encoding,
                          self.python.add_dicom_hooks if self.python is not None else None)
            self.dicom.find_filters.append(self.lua.filter_find_request)
            self.dicom.start()
        self.stability.start()
        self.jobs.start(load_saved=not self.no_jobs)
        self.bus.publish(events.STARTED)
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

    @staticmethod
    async def _close_connections(http: tornado.httpserver.HTTPServer) -> None:
        """Let requests in flight finish (bounded), then drop keep-alive connections."""
        try:
            await asyncio.wait_for(http.close_all_connections(), timeout=SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            log.warning("Some HTTP requests were still running at shutdown")

    async def _shutdown(self) -> None:
        """Stop taking work, let in-flight stores finish, then close the index."""
        self.bus.publish(events.STOPPED)
        if self.dicom is not None:
            self.dicom.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.jobs.stop)
        self.network.stop()
        await self.lua.stop()
        if self.python is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.python.stop)
        self.inprocess.close()
        self.stability.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
        self.index.close()


def run(config: Configuration, no_jobs: bool = False, upgrade: bool = False) -> int:
    """Serve until shutdown, restarting in-process on ``/tools/reset``; the exit status.

    ``no_jobs`` starts without the saved jobs (and forgets them); ``upgrade`` is
    accepted for Orthanc compatibility: there is no older index schema to upgrade.
    """
    while True:
        try:
            context = ServerContext(config, no_jobs=no_jobs)
            restart = asyncio.run(context.serve())
        except (ConfigError, LuaLoadError) as error:
            log.error("%s", error)
            return 1
        if not restart:
            return 0
        log.warning("Restarting with the configuration re-read from %s", config.path)
        config = load_configuration(config.path)

