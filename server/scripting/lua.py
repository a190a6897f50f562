"""Orthanc-compatible Lua scripting: ``LuaScripts``, callbacks, filters and ``execute-script``.

Two Lua states, as in Orthanc, both loaded with the same scripts: the *main*
state (event callbacks, ``IncomingHttpRequestFilter``,
``IncomingFindRequestFilter``, ``Initialize``/``Finalize``,
``/tools/execute-script``) and the *filter* state (``ReceivedInstanceFilter``,
``ReceivedCStoreInstanceFilter``, ``OutgoingCStoreInstanceFilter``), so that a slow event callback never holds up
the judgement of incoming instances.  Globals are not shared between them.

Ordering guarantees of the callbacks
------------------------------------
* Callbacks of one state never run concurrently (one lock per state, see
  :mod:`server.scripting.lua_runtime`).
* Event callbacks (``OnStoredInstance``, ``OnStable*``, ``OnDeleted*``,
  ``OnUpdated*``, ``OnJob*``, ``OnHeartBeat``, ``Initialize``, ``Finalize``) are
  delivered by one thread, from one FIFO queue, in the order the events were
  published: for one publisher (an upload, a deletion, a job) its events arrive
  in the order it produced them.  ``Initialize`` is the first callback,
  ``Finalize`` the last, after every event queued before shutdown.
* Their arguments are taken when the event happens (the instance's tags and
  metadata at storage time), not when the callback runs.
* Event callbacks run after the operation that caused them has completed and
  answered: an ``OnStoredInstance`` may start after the upload's HTTP answer.
* The queue holds ``LuaEventQueueSize`` events.  While it is full, a publisher
  waits for room (at most ``LuaCallbackTimeout`` seconds, then the event is
  queued anyway), except work done by Lua itself, which never waits (a
  callback that stores instances cannot block on its own queue), and the
  event loop thread, which never blocks.
* Filters (``ReceivedInstanceFilter``, ``ReceivedCStoreInstanceFilter``,
  ``IncomingHttpRequestFilter``, ``IncomingFindRequestFilter``,
  ``OutgoingCStoreInstanceFilter``) run synchronously, before the request (or
  the C-STORE) goes on.
* A Lua error or a timeout in an event callback is logged with the script's
  file and line, and the event is dropped; in a filter it refuses the request
  (500 "Cannot execute a Lua command" over HTTP, 0xA700 over DICOM), as Orthanc.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from server.delivery import DeliveryQueue
from server.dicom import json_format
from server.dicom.main_tags import Level
from server.dicom.parse import ParsedInstance, read_stored_dataset
from server.errors import ErrorCode, OrthancError
from server.events import InstanceStored, JobEvent, Kind, ResourceEvent
from server.net.scp import DimseStatusError
from server.resources import main_tags_json
from server.rest.inprocess import ContextExecutor
from server.scripting.lua_api import LuaApi, LuaServices
from server.scripting.lua_commitment import LuaCommitmentProvider
from server.scripting.lua_database import LuaDatabase
from server.scripting.lua_http import HttpSettings
from server.scripting.lua_runtime import CALL_HEADER, LuaScriptError, LuaState, in_lua_context, join_call
from server.store import Origin

if TYPE_CHECKING:
    from server.rest.base import OrthancHandler
    from server.scripting.services import ScriptingServices

log = logging.getLogger("isengard.lua")

#: Callbacks of the main state whose presence is tracked without taking its lock.
MAIN_CALLBACKS = [
    "Initialize", "Finalize", "OnHeartBeat", "OnStoredInstance", "OnJobSubmitted", "OnJobSuccess",
    "OnJobFailure", "IncomingHttpRequestFilter", "IncomingFindRequestFilter", "IncomingWorklistRequestFilter",
    *(f"OnStable{level.title}" for level in (Level.PATIENT, Level.STUDY, Level.SERIES)),
    *(f"OnDeleted{level.title}" for level in Level),
    *(f"OnUpdated{level.title}" for level in Level),
]
RECEIVED_FILTERS = ["ReceivedInstanceFilter", "ReceivedCStoreInstanceFilter"]
FILTER_CALLBACKS = [*RECEIVED_FILTERS, "OutgoingCStoreInstanceFilter"]
_JOB_CALLBACKS = {Kind.JOB_SUBMITTED: "OnJobSubmitted", Kind.JOB_SUCCESS: "OnJobSuccess",
                  Kind.JOB_FAILURE: "OnJobFailure"}
_CHANGE_CALLBACKS = {Kind.DELETED: "Deleted", Kind.UPDATED: "Updated"}
#: How long shutdown waits for the queued events and ``Finalize``.
STOP_SECONDS = 30.0


class LuaLoadError(Exception):
    """A script of ``LuaScripts`` cannot be read or run: start-up stops."""


def origin_json(origin: Origin) -> dict[str, str]:
    """The ``origin`` argument of Orthanc's callbacks: only the fields of that kind of origin."""
    if origin.kind == "RestApi":
        return {"RemoteIp": origin.remote_ip or "", "RequestOrigin": origin.kind,
                "Username": origin.http_username or ""}
    if origin.kind == "DicomProtocol":
        return {"CalledAet": origin.called_aet or "", "RemoteAet": origin.remote_aet or "",
                "RemoteIp": origin.remote_ip or "", "RequestOrigin": origin.kind}
    return {"RequestOrigin": origin.kind}


def request_username(handler: OrthancHandler) -> str:
    """Orthanc hands the filter the Basic user name even when authentication is disabled."""
    if handler.username:
        return handler.username
    header = handler.request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return ""
    try:
        return base64.b64decode(header[6:]).decode("utf-8").partition(":")[0]
    except (ValueError, UnicodeDecodeError):
        return ""


class LuaScripting:
    """The Lua engine of one server."""

    def __init__(self, services: ScriptingServices) -> None:
        self.services = services
        config = services.config
        self.scripts = [config.resolve_path(p) for p in config["LuaScripts"]]
        self.timeout = float(config["LuaCallbackTimeout"])
        self.heartbeat_period = float(config["LuaHeartBeatPeriod"])
        # Work Lua does (on any thread, for a waiting callback) never waits for room.
        self._events = DeliveryQueue("lua-events", int(config["LuaEventQueueSize"]), self.timeout or 60.0,
                                     exempt=in_lua_context)
        self._heartbeat_queued = threading.Event()
        self._pool = ContextExecutor(64, thread_name_prefix="lua")
        self._http_pool = ThreadPoolExecutor(32, thread_name_prefix="lua-http")
        self._main: LuaState | None = None
        self._filter: LuaState | None = None
        self._defined: frozenset[str] = frozenset()
        self._filters: frozenset[str] = frozenset()
        self._stopping = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="lua-heartbeat", daemon=True)
        # Before the Python script's: Orthanc asks Lua first.  Always: a request also waits
        # for the callbacks queued before it (see _wait_for_callbacks).
        services.bus.interventions.http_request.install(self.accepts_http_request)

    @property
    def main(self) -> LuaState:
        """The state of the scripts' callbacks (events, REST, jobs...), made by :meth:`start`."""
        if self._main is None:
            raise RuntimeError("the Lua scripts are not started")
        return self._main

    @property
    def filter(self) -> LuaState:
        """The state of the filters (``ReceivedInstanceFilter``...), which answer while the
        main state runs a long callback; made by :meth:`start`."""
        if self._filter is None:
            raise RuntimeError("the Lua scripts are not started")
        return self._filter

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Create both states and run ``LuaScripts`` in them (raises :class:`LuaLoadError`)."""
        config = self.services.config
        services = LuaServices(
            rest=self.services.rest, configuration=config.user_values,
            http=HttpSettings(float(config["HttpTimeout"]), config["HttpProxy"],
                              bool(config["HttpsVerifyPeers"]), config["HttpsCACertificates"]),
            http_port=self.services.http_port, executor=self._http_pool, network=self.services.network,
            modification=self.services.modification,
            database=LuaDatabase(self.services.key_values, self.services.stability))
        max_memory = int(config["LuaMemoryLimitMB"]) * 2 ** 20 or None
        self._main = LuaState("main", self.timeout, lambda state: LuaApi(state, services).functions(),
                              max_memory)
        self._filter = LuaState("filter", self.timeout, lambda state: LuaApi(state, services).functions(),
                                max_memory)
        self._subscribe()
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load)
        interventions = self.services.bus.interventions
        if self._filters.intersection(RECEIVED_FILTERS):
            interventions.store_instance.install(self._accepts_instance)
        if "OutgoingCStoreInstanceFilter" in self._filters:
            interventions.outgoing_store.install(self._accepts_outgoing)
        interventions.find_request.install(self.filter_find_request)
        interventions.worklist_request.install(self.filter_worklist_request)
        if self.scripts:
            self.services.commitment.providers.append(LuaCommitmentProvider(self))
        self._events.start()

    def _load(self) -> None:
        for path in self.scripts:
            log.warning("Installing the Lua scripts from: %s", path)
            for state in (self.main, self.filter):
                try:
                    state.load_file(path)
                except OSError as error:
                    raise LuaLoadError(f"Cannot read the Lua script {path}: {error.strerror}") from None
                except LuaScriptError as error:
                    raise LuaLoadError(f"Error in the Lua script {path}: {error.message}") from None
        self._refresh()
        self._filters = frozenset(self.filter.defined(FILTER_CALLBACKS))

    def initialize(self) -> None:
        """After the servers started: ``Initialize()``, then the heartbeat."""
        self._queue("Initialize", (), wait=False)
        if self.heartbeat_period > 0:
            self._heartbeat.start()

    async def stop(self) -> None:
        """Deliver the queued events, then ``Finalize()``; the event loop stays free meanwhile."""
        await asyncio.get_running_loop().run_in_executor(None, self._stop)

    def _stop(self) -> None:
        self._stopping.set()
        self._queue("Finalize", (), wait=False)
        self._events.close(STOP_SECONDS)
        self._pool.shutdown(wait=False)
        self._http_pool.shutdown(wait=False)

    # -- event callbacks -------------------------------------------------------------

    def _subscribe(self) -> None:
        bus = self.services.bus
        bus.subscribe(Kind.STORED, self._on_stored)
        bus.subscribe(Kind.STABLE, self._on_stable)
        for kind in _CHANGE_CALLBACKS:
            bus.subscribe(kind, self._on_change)
        for kind in _JOB_CALLBACKS:
            bus.subscribe(kind, self._on_job)

    def _on_stored(self, event: InstanceStored) -> None:
        if "OnStoredInstance" not in self._defined:
            return
        instance = self.services.index.lookup(event.instance_id, Level.INSTANCE)
        metadata = self._metadata(instance.internal_id) if instance else {}
        self._queue("OnStoredInstance", (event.instance_id, self._tags(event.parsed), metadata,
                                         origin_json(event.origin)))

    def _on_stable(self, event: ResourceEvent) -> None:
        level = event.level
        callback = f"OnStable{level.title}"
        if callback not in self._defined:
            return
        resource = self.services.index.lookup(event.resource_id, level)
        if resource is None:
            return
        tags = main_tags_json(level, self.services.index.main_tags(resource.internal_id))
        self._queue(callback, (resource.public_id, tags, self._metadata(resource.internal_id)))

    def _on_change(self, event: ResourceEvent) -> None:
        callback = f"On{_CHANGE_CALLBACKS[event.kind]}{event.level.title}"
        if callback in self._defined:
            self._queue(callback, (event.resource_id,))

    def _on_job(self, event: JobEvent) -> None:
        callback = _JOB_CALLBACKS[event.kind]
        if callback in self._defined:
            self._queue(callback, (event.job_id,))

    def _queue(self, callback: str, args: tuple[Any, ...], wait: bool = True) -> None:
        self._events.put(lambda: self._deliver(callback, args), wait)

    def _deliver(self, callback: str, args: tuple[Any, ...]) -> None:
        if callback == "OnHeartBeat":
            self._heartbeat_queued.clear()
        try:
            if callback == "OnStoredInstance" or callback.startswith("OnStable"):
                self.main.call("_InitializeJob")
            self._call_main(callback, *args)
        except LuaScriptError as error:
            log.error("Error while processing Lua events: %s", error.message)

    def _beat(self) -> None:
        while not self._stopping.wait(self.heartbeat_period):
            if "OnHeartBeat" in self._defined and not self._heartbeat_queued.is_set():
                self._heartbeat_queued.set()
                self._queue("OnHeartBeat", (), wait=False)

    # -- arguments -------------------------------------------------------------------

    def _metadata(self, internal_id: int) -> dict[str, str]:
        names = self.services.metadata_names
        return {names.name(k): v for k, v in self.services.index.metadata(internal_id).items()}

    def _tags(self, parsed: ParsedInstance) -> dict[str, Any]:
        """Simplified tags of the whole file, without the pixel data (Orthanc's ``tags``/``dicom``)."""
        ds = read_stored_dataset(parsed.data, stop_before_pixels=True)
        return json_format.tags_simplified(ds, self.services.default_encoding)

    # -- the main state --------------------------------------------------------------

    def _call_main(self, function: str, *args: Any, result: Any = None) -> Any:
        """Call a main-state function, then note which callbacks the state now defines."""
        def work() -> Any:
            try:
                defined, value = self.main.call(function, *args)
                return value if result is None or not defined else result(value)
            finally:
                self._refresh()
        return self.main.run(work)

    def _refresh(self) -> None:
        self._defined = frozenset(self.main.defined(MAIN_CALLBACKS))

    async def execute(self, source: bytes) -> str:
        """``/tools/execute-script``: what the script printed (raises :class:`LuaScriptError`)."""
        def work() -> str:
            try:
                return self.main.execute(source)
            finally:
                self._refresh()
        return await asyncio.wrap_future(self.main.submit(work, self._pool))

    # -- filters ---------------------------------------------------------------------

    async def accepts_http_request(self, handler: OrthancHandler) -> bool:
        """``IncomingHttpRequestFilter(method, uri, ip, username, headers)``; off the event loop."""
        request = handler.request
        join_call(request.headers.get(CALL_HEADER))
        await self._wait_for_callbacks()
        if "IncomingHttpRequestFilter" not in self._defined:
            return True
        headers = {name.lower(): value for name, value in request.headers.items()
                   if name.lower() != CALL_HEADER.lower()}
        args = (request.method, request.path, request.remote_ip or "", request_username(handler), headers)

        def work() -> Any:
            return self._call_main("IncomingHttpRequestFilter", *args)
        try:
            allowed = await asyncio.wrap_future(self.main.submit(work, self._pool))
        except LuaScriptError as error:
            raise OrthancError(error.code, error.message) from None
        return _predicate(allowed)

    async def _wait_for_callbacks(self) -> None:
        """An HTTP request waits for the event callbacks queued before it (at most
        ``LuaCallbackTimeout``), as in Orthanc, where every request takes the Lua lock that a
        running callback holds: a client that stores an instance over DICOM, then asks over
        REST, sees what ``OnStoredInstance`` did (Orthanc's Jpeg2000Conversion sample).
        Requests made by or for Lua itself never wait: they would wait for themselves."""
        if self._events.idle() or in_lua_context():
            return
        drained = self._events.drained()
        if drained.done():
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(drained), self.timeout or None)
        except TimeoutError:
            log.warning("An HTTP request waited %g s for the Lua callbacks: going on", self.timeout)

    def filter_find_request(self, query: dict[str, str], origin: dict[str, str]) -> dict[str, str]:
        """Hook of the C-FIND SCP: ``IncomingFindRequestFilter(source, origin)`` (blocking).

        ``query`` maps ``"gggg,eeee"`` to values; ``origin`` has ``CalledAet``,
        ``Manufacturer``, ``RemoteAet`` and ``RemoteIp``.  Answers the query the
        script returned (as strings), or ``query`` when the callback is not defined.
        """
        if "IncomingFindRequestFilter" not in self._defined:
            return query
        try:
            modified = self._call_main("IncomingFindRequestFilter", query, origin,
                                       result=lambda value: self.main.json.read(value, keep_strings=True))
        except LuaScriptError as error:
            raise OrthancError(error.code, error.message) from None
        if not isinstance(modified, dict):
            raise OrthancError(ErrorCode.LUA_BAD_OUTPUT,
                               "IncomingFindRequestFilter must return a table of DICOM tags")
        return {str(k): "" if v is None else str(v) for k, v in modified.items()}

    def filter_worklist_request(self, query: dict[str, Any], origin: dict[str, str]) -> dict[str, Any]:
        """Hook of the worklist C-FIND: ``IncomingWorklistRequestFilter(source, origin)`` (blocking).

        ``query`` is the request in Orthanc's "Short" JSON; answers the table the script
        returned (strings kept as strings), or ``query`` itself when the callback is not defined.
        """
        if "IncomingWorklistRequestFilter" not in self._defined:
            return query
        try:
            return self._call_main("IncomingWorklistRequestFilter", query, origin,  # type: ignore[no-any-return]
                                   result=lambda value: self.main.json.read(value, keep_strings=True))
        except LuaScriptError as error:
            raise OrthancError(error.code, error.message) from None

    def _accepts_instance(self, parsed: ParsedInstance, origin: Origin) -> bool:
        """The store filter: ``ReceivedInstanceFilter``, then for C-STORE ``ReceivedCStoreInstanceFilter``.

        A C-STORE refusal raises :class:`DimseStatusError` with the script's status,
        which the SCP sends back as is.
        """
        tags = self._tags(parsed)
        info = {"HasPixelData": parsed.pixel_data_offset is not None,
                "TransferSyntaxUID": parsed.transfer_syntax or ""}
        source = origin_json(origin)

        def work() -> bool:
            if "ReceivedInstanceFilter" in self._filters:
                _, accepted = self.filter.call("ReceivedInstanceFilter", tags, source, info)
                if not _predicate(accepted):
                    return False
            if origin.kind == "DicomProtocol" and "ReceivedCStoreInstanceFilter" in self._filters:
                _, value = self.filter.call("ReceivedCStoreInstanceFilter", tags, source, info)
                status = _dimse_status(value)
                if status != 0:
                    raise DimseStatusError(status)
            return True
        try:
            return self.filter.run(work)
        except LuaScriptError as error:
            log.error("Error in the Lua callback while receiving an instance: %s", error.message)
            raise OrthancError(error.code, error.message) from None

    def _accepts_outgoing(self, dataset: Dataset, destination: dict[str, str]) -> bool:
        """``OutgoingCStoreInstanceFilter(tags, destination)`` (Orthanc 1.12.11), before a C-STORE of
        ours: false skips the instance.  A Lua error or a non-boolean fails the sub-operation."""
        tags = json_format.tags_simplified(dataset, self.services.default_encoding)
        try:
            defined, accepted = self.filter.call("OutgoingCStoreInstanceFilter", tags, destination)
        except LuaScriptError as error:
            log.error("Error in the Lua callback while sending an instance: %s", error.message)
            raise OrthancError(error.code, error.message) from None
        return not defined or _predicate(accepted)


def _predicate(value: Any) -> bool:
    if not isinstance(value, bool):
        raise OrthancError(ErrorCode.NOT_LUA_PREDICATE)
    return value


def _dimse_status(value: Any) -> int:
    """A DIMSE status (0 accepts); anything but an integer in 0..0xFFFF is an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or not 0 <= value <= 0xFFFF:
        raise OrthancError(ErrorCode.LUA_BAD_OUTPUT,
                           "ReceivedCStoreInstanceFilter must return a DIMSE status (0 to accept)")
    return int(value)

