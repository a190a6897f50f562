"""Python scripting: the ``PythonScript`` option, run in-process with orthanc-python's API.

The script is imported at start-up with ``import orthanc`` resolving to the
module of :mod:`server.scripting.python_api`; its callbacks plug into the
server's hook points:

* REST routes: :mod:`server.rest.python_routes` serves them before the built-in
  routes (as Orthanc does with plugin routes); callbacks run on this service's
  thread pool, never on the event loop.
* Changes and stored instances: :mod:`server.scripting.python_events`.
* Received instances, the C-STORE filter, the HTTP request filter: installed as
  interventions of the event bus (:mod:`server.events`), as Lua's filters are.
* Storage commitment lookups: called by the ``StorageCommitmentScp`` job.

A callback that raises is logged with its traceback and has the effect
orthanc-python gives it (a REST callback answers 500, a filter refuses...).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import mmap
import re
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pydicom.dataset import Dataset
from tornado.ioloop import IOLoop

from server import events
from server.config import ConfigError
from server.delivery import DeliveryQueue
from server.dicom.main_tags import Level, parse_level
from server.dicom.parse import ParsedInstance
from server.errors import ErrorCode, OrthancError
from server.find import make_constraint
from server.key_values import KeyValueStores
from server.net.modalities import peer_settings
from server.net.scp import DimseStatusError
from server.net.worklists import DicomHooks, FindAnswers, HierarchicalMatcher
from server.rest.python_routes import SKIP_SCRIPT_ROUTES, request_get_arguments, request_headers
from server.scripting import python_api, python_dicom
from server.scripting.python_api import DicomConnection, DicomInstance, RestOutput, orthanc_exception, script_bytes
from server.scripting.python_dicom import FindQuery, WorklistAnswers, WorklistQuery
from server.scripting.python_enums import ENUMERATIONS, ORIGINS, RECEIVED
from server.scripting.python_events import FULL_WAIT_SECONDS, QUEUE_LIMIT, Change, ChangeTranslator
from server.scripting.python_storage import ScriptStorageArea
from server.scripting.python_toolbox import FIRST_PLUGIN_ERROR
from server.storage.area import StorageArea
from server.store import Origin

if TYPE_CHECKING:
    from server.jobs.job import Job, Unserializer
    from server.rest.base import OrthancHandler
    from server.scripting.services import ScriptingServices

log = logging.getLogger("isengard.plugins.python")

#: Threads running the HTTP filter and the other short callbacks.
CALLBACK_THREADS = 8
#: How long shutdown waits for the change callbacks still queued.
STOP_TIMEOUT_SECONDS = 10.0

_HTTP_METHODS = ENUMERATIONS["HttpMethod"][1]
_NO_MODIFIED_BUFFER = ("The ReceivedInstanceCallback plugin is not returning a modified buffer while it has "
                       "modified the instance")
_DATABASE_NOT_READY = 2038
ACCESSION_NUMBER = (0x0008, 0x0050)
#: ``RegisterStorageCommitmentScpCallback`` and ``...2``: one of them, once.
_COMMITMENT_SLOTS = ("commitment", "commitment2")


class PythonScripting:
    """One loaded script and everything it registered."""

    def __init__(self, services: ScriptingServices) -> None:
        self.services = services
        self.verbose = bool(services.config["PythonVerbose"])
        self.module = python_api.build_module(self)
        self.routes: list[tuple[re.Pattern[str], Callable[..., Any]]] = []
        self._slots: dict[str, tuple[Callable[..., Any], ...]] = {}
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(CALLBACK_THREADS, thread_name_prefix="python")
        # REST callbacks may run for long: their own pool, bounded as Orthanc's HTTP threads
        # are, so that busy callbacks never delay the filter every request passes (or the
        # built-in routes, which use neither pool).
        self.rest_pool = ThreadPoolExecutor(max(1, int(services.config["HttpThreadsCount"])),
                                            thread_name_prefix="python-rest")
        #: ``ExtendOrthancExplorer``: JavaScript kept for the explorer, in registration order.
        self.explorer_extensions: list[str] = []
        #: ``RegisterErrorCode``: (script's code, HTTP status, message), numbered from 1000000.
        self._errors: list[tuple[int, int, str]] = []
        self._translator = ChangeTranslator()
        self._deliveries = DeliveryQueue("python-changes", QUEUE_LIMIT, FULL_WAIT_SECONDS)
        self._deliveries.start()
        self.commitment = CommitmentProvider(self)
        for kind in ChangeTranslator.KINDS:
            services.bus.subscribe(kind, self._on_event)
        interventions = services.bus.interventions
        interventions.http_request.install(self.http_filter_accepts)
        interventions.received_instance.install(self.receive)
        interventions.store_instance.install(self.accepts_cstore)

    # -- loading ---------------------------------------------------------------------

    def load(self, path: Path) -> None:
        """Import the script; any error stops start-up (:class:`ConfigError`) after logging the traceback."""
        if not path.is_file():
            raise ConfigError(f'PythonScript: cannot read the Python script "{path}"')
        log.warning('Using Python script "%s" from directory: %s', path.name, path.parent)
        sys.modules["orthanc"] = self.module
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        script = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(script)
        except Exception as e:  # noqa: BLE001 - any error of the script stops start-up
            log.error("Error during the installation of the Python script, traceback:\n%s",
                      "".join(traceback.format_exception(e)))
            raise ConfigError(f"PythonScript {path}: {_last_frame(e)}{type(e).__name__}: {e}") from None
        if path.stem not in sys.modules or getattr(sys.modules[path.stem], "__file__", None) == str(path):
            sys.modules[path.stem] = script

    def stop(self) -> None:
        """At shutdown, after ``ORTHANC_STOPPED`` was queued: deliver what is pending, then stop."""
        for kind in ChangeTranslator.KINDS:
            self.services.bus.unsubscribe(kind, self._on_event)
        if not self._deliveries.close(STOP_TIMEOUT_SECONDS):
            log.warning("Python change callbacks still pending at shutdown were dropped")
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.rest_pool.shutdown(wait=False, cancel_futures=True)

    # -- the Host protocol of python_api ---------------------------------------------

    @property
    def default_encoding(self) -> str:
        return self.services.default_encoding

    def register(self, slot: str, description: str, *callbacks: Callable[..., Any]) -> None:
        with self._lock:
            taken = slot in self._slots or (slot in _COMMITMENT_SLOTS and any(s in self._slots for s in
                                                                            _COMMITMENT_SLOTS))
            if taken:
                raise RuntimeError(f"Can only register {'once for' if len(callbacks) > 1 else 'one'} {description}")
            self._slots[slot] = callbacks
        if slot in _COMMITMENT_SLOTS:
            self.services.commitment.providers.append(self.commitment)
        log.info("Registering one %s", description)

    def callback(self, slot: str) -> tuple[Callable[..., Any], ...] | None:
        return self._slots.get(slot)

    def add_rest_route(self, regex: str, callback: Callable[..., Any]) -> None:
        try:
            pattern = re.compile(regex)
        except re.error as e:
            raise ValueError(f"Invalid regular expression for a REST callback: {regex} ({e})") from None
        log.info("Registering a Python REST callback on URI: %s", regex)
        with self._lock:
            self.routes = [*self.routes, (pattern, callback)]

    def rest_api(self, method: str, uri: str, body: bytes, after_plugins: bool) -> bytes:
        rest = self.services.rest
        if not rest.ready:
            raise orthanc_exception(_DATABASE_NOT_READY)
        token = SKIP_SCRIPT_ROUTES.set(not after_plugins)
        try:
            answer = rest.call(method, uri, body, origin=Origin("Plugins"))
        finally:
            SKIP_SCRIPT_ROUTES.reset(token)
        if 200 <= answer.status < 300:
            return answer.body
        raise orthanc_exception(_error_code(answer.body))

    def configuration_text(self) -> str:
        values = dict(self.services.config.user_values)
        if self.services.default_encoding != self.services.config["DefaultEncoding"]:
            values["DefaultEncoding"] = self.services.default_encoding
        return json.dumps(values, indent=3, sort_keys=True, ensure_ascii=False)

    def instance_file(self, instance_id: str) -> bytes:
        resource = self.services.index.lookup(instance_id, Level.INSTANCE)
        if resource is None:
            raise orthanc_exception(ErrorCode.UNKNOWN_RESOURCE)
        try:
            return self.services.store.read_dicom(resource)
        except OrthancError as e:
            raise python_api.from_orthanc_error(e) from None

    def lookup_resource(self, level: str, identifier: str) -> str:
        wanted = Level[level.upper()]
        for resource in self.services.index.lookup_identifier(identifier):
            if resource.level is wanted:
                return resource.public_id
        raise orthanc_exception(ErrorCode.INTERNAL)

    def lookup_accession(self, accession_number: str) -> str:
        constraint = make_constraint(ACCESSION_NUMBER, accession_number, True)
        found, _ = self.services.finder.find(Level.STUDY, [constraint] if constraint else [], limit=1)
        if not found:
            raise orthanc_exception(ErrorCode.INTERNAL)
        return found[0].public_id

    @property
    def key_values(self) -> KeyValueStores:
        return self.services.key_values

    def set_stable_status(self, resource_id: str, stable: bool) -> bool | None:
        return self.services.stability.set_stable_status(resource_id, stable)

    def get_global_property(self, key: int) -> str | None:
        return self.services.index.get_property(key)

    def set_global_property(self, key: int, value: str) -> None:
        self.services.index.set_property(key, value)

    def peers(self) -> dict[str, dict[str, Any]]:
        return {name: peer_settings(params) for name, params in self.services.network.peers.all().items()}

    def configuration_path(self) -> str:
        path = self.services.config.path
        return str(path.resolve()) if path is not None else ""

    def extend_explorer(self, javascript: str) -> None:
        with self._lock:
            self.explorer_extensions.append(javascript)

    def register_error(self, code: int, http_status: int, message: str) -> int:
        with self._lock:
            self._errors.append((code, http_status, message))
            return FIRST_PLUGIN_ERROR + len(self._errors) - 1

    def matcher(self, query: Dataset) -> HierarchicalMatcher:
        try:
            return HierarchicalMatcher(query, bool(self.services.config.get("CaseSensitivePN", False)))
        except OrthancError as e:
            raise python_api.from_orthanc_error(e) from None

    def submit_job(self, job: Job, priority: int) -> str:
        """``orthanc.Job.SubmitJob``: into the jobs engine, saved with the others (``SaveJobs``)."""
        return self.services.jobs.submit(job, priority)

    def add_jobs_unserializer(self, unserializer: Unserializer) -> None:
        """``orthanc.RegisterJobsUnserializer``: before the saved jobs are restored (the script loads first)."""
        self.services.jobs.registry.add_unserializer(unserializer)

    def new_token(self) -> str:
        token = f"Bearer {uuid.uuid4()}"
        with self._lock:
            self._tokens.add(token)
        return token

    def accepts_token(self, authorization: str) -> bool:
        """True for the ``Authorization`` value of a token made by the script."""
        return authorization in self._tokens

    def set_metric(self, name: str, value: float, timer: bool) -> None:
        number: float | int = int(value) if value.is_integer() else value
        if timer:
            self.services.metrics.record_max(name, number)
        else:
            self.services.metrics.set(name, number)

    # -- REST callbacks --------------------------------------------------------------

    def find_route(self, path: str) -> tuple[Callable[..., Any], tuple[str, ...]] | None:
        for pattern, callback in self.routes:
            found = pattern.fullmatch(path)
            if found:
                return callback, tuple(group or "" for group in found.groups())
        return None

    def serve_rest(self, path: str, method: str, get: dict[str, str], headers: dict[str, str],
                   body: bytes) -> RestOutput:
        """Run the REST callback of ``path`` (in :attr:`rest_pool`); its collected answer."""
        found = self.find_route(path)
        if found is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        callback, groups = found
        request: dict[str, Any] = {"method": method, "groups": groups}
        if method == "GET":
            request["get"] = get
        request["headers"] = headers
        if method in ("POST", "PUT"):
            request["body"] = body
        output = RestOutput()
        self._verbose("Calling Python REST callback for %s %s", method, path)
        try:
            callback(output, path, **request)
        except Exception as e:  # noqa: BLE001 - a script error answers 500, never a traceback
            _log_traceback("Error in the REST callback", e)
            raise OrthancError(ErrorCode.PLUGIN, output.error_details) from None
        if not output.answered:
            raise OrthancError(ErrorCode.PLUGIN, f"The Python REST callback of {path} did not answer")
        return output

    # -- HTTP filter -----------------------------------------------------------------

    async def http_filter_accepts(self, handler: OrthancHandler) -> bool:
        """``RegisterIncomingHttpRequestFilter``: False refuses the request (403)."""
        registered = self.callback("http")
        if registered is None:
            return True
        request = handler.request
        method = request.method or "GET"
        arguments: dict[str, Any] = {"method": _HTTP_METHODS.get(method, 0), "ip": request.remote_ip or "",
                                     "headers": request_headers(request)}
        if method == "GET":
            arguments["get"] = request_get_arguments(request)
        return await IOLoop.current().run_in_executor(
            self.pool, self._run_http_filter, registered[0], unquote(request.path), arguments)

    def _run_http_filter(self, callback: Callable[..., Any], uri: str, arguments: dict[str, Any]) -> bool:
        try:
            allowed = callback(uri, **arguments)
        except Exception as e:  # noqa: BLE001 - a script error refuses the request with 500
            _log_traceback("Error in the Python incoming-http-request filter", e)
            raise OrthancError(ErrorCode.PLUGIN) from None
        if not isinstance(allowed, bool):
            log.error("The Python incoming-http-request filter has not returned a Boolean")
            raise OrthancError(ErrorCode.PLUGIN)
        return allowed

    # -- received instances and C-STORE filter ---------------------------------------

    def receive(self, data: bytes | mmap.mmap, origin: Origin) -> bytes | mmap.mmap | None:
        """``RECEIVED_INSTANCE`` intervention: the bytes to store, or None to discard the instance."""
        registered = self.callback("received")
        if registered is None:
            return data
        self._verbose("Calling Python received instance callback")
        try:
            result = registered[0](script_bytes(data), ORIGINS.get(origin.kind, 1))
        except Exception as e:  # noqa: BLE001 - a script error keeps the instance as received
            _log_traceback("Error in the Python received instance callback", e)
            return data
        if not isinstance(result, tuple) or len(result) != 2:
            log.error("The Python received instance callback has not returned a tuple as expected")
            return data
        action, modified = result
        if not isinstance(action, int):
            log.error("The Python received instance callback has not returned an int as the first element")
            return data
        if action == RECEIVED["KEEP_AS_IS"]:
            return data
        if action == RECEIVED["DISCARD"]:
            return None
        if not isinstance(modified, (bytes, bytearray)) or not modified:
            raise OrthancError(ErrorCode.PLUGIN, _NO_MODIFIED_BUFFER)
        return bytes(modified)

    def accepts_cstore(self, parsed: ParsedInstance, origin: Origin) -> bool:
        """``STORE_INSTANCE`` intervention of ``RegisterIncomingCStoreInstanceFilter`` (C-STORE only).

        The script answers 0 to store the instance, or the DIMSE status of the refusal.
        """
        registered = self.callback("cstore")
        if registered is None or origin.kind != "DicomProtocol":
            return True
        status = self._cstore_status(registered[0], parsed.data, origin)
        if status != 0:
            raise DimseStatusError(status)
        return True

    def _cstore_status(self, callback: Callable[..., Any], data: bytes | mmap.mmap, origin: Origin) -> int:
        self._verbose("Calling Python incoming CStore instance filter")
        try:
            status = callback(DicomInstance(data, origin, self.default_encoding))
        except Exception as e:  # noqa: BLE001 - a script error refuses the instance
            _log_traceback("Error in the Python incoming-cstore-instance callback", e)
            raise OrthancError(ErrorCode.PLUGIN) from None
        if isinstance(status, bool) or not isinstance(status, int):
            log.error("The Python incoming-cstore-instance filter has not returned an integer")
            raise OrthancError(ErrorCode.PLUGIN)
        if not 0 <= status <= 0xFFFF:
            log.error("The Python incoming-cstore-instance filter has returned an out-of-range DIMSE status: %d",
                      status)
            raise OrthancError(ErrorCode.PLUGIN)
        return int(status)

    def storage_area(self, local: StorageArea) -> StorageArea:
        """The area files go to: the script's (``RegisterStorageArea``), else ``local``."""
        registered = self.callback("storage")
        if registered is None:
            return local
        log.warning("The storage area is handled by the Python script")
        return ScriptStorageArea(local, *registered)

    # -- DICOM SCP callbacks (worklists, C-FIND, C-MOVE) ------------------------------

    def add_dicom_hooks(self, hooks: DicomHooks) -> None:
        """Plug the script's worklist, C-FIND and C-MOVE callbacks into the DICOM server."""
        if self.callback("worklist") is not None:
            if hooks.worklist is not None:
                log.warning("The Python worklist callback replaces the worklists of the configuration")
            hooks.worklist = self.answer_worklist
        if self.callback("find") is not None:
            hooks.find = self.answer_find
        if self.callback("move") is not None:
            hooks.move = self.apply_move

    def answer_worklist(self, query: Dataset, issuer_aet: str, called_aet: str) -> FindAnswers:
        registered = self.callback("worklist")
        assert registered is not None
        answers = WorklistAnswers(self.services.default_encoding)
        self._run_scp("Python C-FIND SCP for worklist callback", registered[0], answers,
                      WorklistQuery(query, self.matcher(query)), issuer_aet, called_aet)
        return answers.answers

    def answer_find(self, query: Dataset, issuer_aet: str, called_aet: str) -> FindAnswers:
        registered = self.callback("find")
        assert registered is not None
        answers = python_dicom.FindAnswers()
        self._run_scp("Python C-FIND SCP callback", registered[0], answers, FindQuery(query), issuer_aet,
                      called_aet)
        return answers.answers

    def apply_move(self, query: Dataset, originator_aet: str, called_aet: str, target_aet: str,
                   message_id: int) -> None:
        """``callback(**request)`` with the keys orthanc-python gives (Level, the identifiers, the AETs)."""
        registered = self.callback("move")
        assert registered is not None
        level = parse_level(str(query.get("QueryRetrieveLevel", "") or "").strip())
        request: dict[str, Any] = {"Level": level.name}
        for key in ("PatientID", "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            value = query.get(key)
            request[key] = "" if value is None else str(value)
        request.update({"OriginatorAET": originator_aet, "SourceAET": called_aet, "TargetAET": target_aet,
                        "OriginatorID": message_id})
        self._run_scp("Python C-MOVE SCP callback", lambda: registered[0](**request))

    def _run_scp(self, what: str, callback: Callable[..., Any], *arguments: Any) -> None:
        self._verbose("Calling %s", what)
        try:
            callback(*arguments)
        except Exception as e:
            _log_traceback(f"Error in the {what}", e)
            raise OrthancError(ErrorCode.PLUGIN) from None

    # -- changes and stored instances ------------------------------------------------

    def _on_event(self, event: events.Event) -> None:
        on_change = self.callback("change")
        on_stored = self.callback("stored")
        if on_change is not None:
            for change in self._translator.changes(event):
                self._deliveries.put(functools.partial(self._deliver_change, on_change[0], change))
        if on_stored is not None and isinstance(event, events.InstanceStored) and event.status == "Success":
            instance_id = event.instance_id
            instance = DicomInstance(event.parsed.data, event.origin,
                                     self.default_encoding, lambda: self._instance_metadata(instance_id))
            self._deliveries.put(lambda: self._deliver_stored(on_stored[0], instance, instance_id))

    def _deliver_change(self, callback: Callable[..., Any], change: Change) -> None:
        self._verbose("Calling Python on-change callback (%d, %d, %s)", change.change_type,
                      change.resource_type, change.resource_id)
        try:
            callback(change.change_type, change.resource_type, change.resource_id)
        except Exception as e:  # noqa: BLE001 - the next changes must still be delivered
            _log_traceback("Error in the Python on-change callback", e)

    def _deliver_stored(self, callback: Callable[..., Any], instance: DicomInstance, instance_id: str) -> None:
        self._verbose("Calling Python on-stored-instance callback for %s", instance_id)
        try:
            callback(instance, instance_id)
        except Exception as e:  # noqa: BLE001 - the next deliveries must still happen
            _log_traceback("Error in the Python on-stored-instance callback", e)

    def _instance_metadata(self, instance_id: str) -> dict[str, str]:
        resource = self.services.index.lookup(instance_id, Level.INSTANCE)
        if resource is None:
            return {}
        names = self.services.metadata_names
        values = self.services.index.metadata(resource.internal_id)
        return {names.name(number): value for number, value in values.items()}

    def _verbose(self, message: str, *args: Any) -> None:
        if self.verbose:
            log.info(message, *args)


class _Commitment:
    """What the script's factory answered for one storage commitment request."""

    def __init__(self, driver: Any, failed: bool = False) -> None:
        self.driver = driver
        self.failed = failed


class CommitmentProvider:
    """``RegisterStorageCommitmentScpCallback[2]`` as a :class:`server.net.storage_commitment.LookupProvider`."""

    def __init__(self, scripting: PythonScripting) -> None:
        self.scripting = scripting

    def _registered(self) -> tuple[str, tuple[Callable[..., Any], ...]] | None:
        for slot in _COMMITMENT_SLOTS:
            callbacks = self.scripting.callback(slot)
            if callbacks is not None:
                return slot, callbacks
        return None

    def create(self, job_id: str, transaction_uid: str, sop_classes: list[str], sop_instances: list[str],
               remote_aet: str, called_aet: str) -> _Commitment | None:
        registered = self._registered()
        if registered is None:
            return None
        slot, (factory, _) = registered
        if slot == "commitment":
            last: Any = (remote_aet, called_aet)
        else:
            last = (DicomConnection(remote_aet, self._remote_host(remote_aet), called_aet),)
        try:
            return _Commitment(factory(job_id, transaction_uid, list(sop_classes), list(sop_instances), *last))
        except Exception as e:  # noqa: BLE001 - every instance of the request then fails
            _log_traceback("Error in the Python storage commitment SCP callback", e)
            return _Commitment(None, failed=True)

    def _remote_host(self, remote_aet: str) -> str:
        found = self.scripting.services.network.modalities_by_aet(remote_aet)
        return str(found[0][1]["Host"]) if found else ""

    def lookup(self, handler: _Commitment, sop_class: str, sop_instance: str) -> int:
        registered = self._registered()
        if handler.failed or registered is None:
            raise ValueError("the Python storage commitment SCP callback failed")
        try:
            reason = registered[1][1](sop_class, sop_instance, handler.driver)
        except Exception as e:
            _log_traceback("Error in the Python storage commitment Lookup callback", e)
            raise
        valid = set(ENUMERATIONS["StorageCommitmentFailureReason"][1].values())
        if isinstance(reason, bool) or not isinstance(reason, int) or reason not in valid:
            raise ValueError(f"the Python storage commitment Lookup callback returned {reason!r}, "
                             "not an orthanc.StorageCommitmentFailureReason")
        return int(reason)

    def destroy(self, handler: _Commitment) -> None:
        handler.driver = None


def _error_code(body: bytes) -> int:
    """The Orthanc error code of an in-process error answer (UnknownResource when it has no body)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return int(ErrorCode.UNKNOWN_RESOURCE)
    if isinstance(document, dict) and isinstance(document.get("OrthancStatus"), int):
        return int(document["OrthancStatus"])
    return int(ErrorCode.UNKNOWN_RESOURCE)


def _last_frame(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return f"line {error.lineno}: "
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{Path(frame.filename).name}, line {frame.lineno}, in {frame.name}: "


def _log_traceback(what: str, error: BaseException) -> None:
    log.error("%s, traceback:\n%s", what, "".join(traceback.format_exception(error)).rstrip())


def load_script(services: ScriptingServices) -> PythonScripting | None:
    """The ``PythonScript`` option: the loaded script's service, or None when unset."""
    value = services.config.get("PythonScript")
    if not value:
        return None
    scripting = PythonScripting(services)
    try:
        scripting.load(services.config.resolve_path(value))
    except ConfigError:
        scripting.stop()
        raise
    return scripting
