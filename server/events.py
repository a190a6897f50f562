"""What happens in the server, named and typed in one place: notifications and interventions.

Two kinds of events, as pynetdicom's ``evt`` module tells notifications from
interventions:

* **Notifications** (:class:`Kind`, one payload dataclass per family): something
  happened (an instance was stored, a job ended...).  Publishers (the store path,
  deletions, the stable-resource monitor, the jobs engine) never know who
  listens; any number of listeners (Lua, Python, the ``/jobs/events`` stream...)
  subscribe with :meth:`EventBus.subscribe`.  Listeners run synchronously in the
  publisher's thread, so a listener that may be slow hands the event to its own
  worker; a listener that fails is logged and the others still run: the
  operation that happened is not undone.
* **Interventions** (:class:`Intervention`, :class:`Interventions`): a hook point
  asks whether a request may go on, or how (an HTTP request, a received instance,
  a C-FIND query, an instance about to be sent by C-STORE).  Handlers are installed in order (Lua's, then the Python
  script's, as Orthanc asks Lua before its plugins); each may refuse or rewrite,
  and an error raised by one reaches the hook point, which refuses the request.

Lua and Python subscribe and install through this one API; no event is named
by a string anywhere else.
"""

from __future__ import annotations

import logging
import mmap
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from server.dicom.main_tags import Level
    from server.dicom.parse import ParsedInstance
    from server.store import Origin

log = logging.getLogger("isengard.events")


class Kind(Enum):
    """A notification; the comment names the dataclass it comes as."""

    STORED = "stored"                    # InstanceStored (also for an instance already stored)
    NEW_RESOURCE = "new"                 # ResourceEvent
    DELETED = "deleted"                  # ResourceEvent
    STABLE = "stable"                    # ResourceEvent
    UPDATED = "updated"                  # ResourceEvent (metadata or attachment changed)
    STARTED = "started"                  # ServerEvent
    STOPPED = "stopped"                  # ServerEvent
    JOB_SUBMITTED = "job_submitted"      # JobEvent, and the other JOB_* too
    JOB_RUNNING = "job_running"
    JOB_PROGRESS = "job_progress"        # JobEvent with its progress (percent)
    JOB_PAUSED = "job_paused"
    JOB_RESUMED = "job_resumed"
    JOB_CANCELED = "job_canceled"
    JOB_RETRY = "job_retry"
    JOB_RESUBMITTED = "job_resubmitted"
    JOB_SUCCESS = "job_success"
    JOB_FAILURE = "job_failure"


RESOURCE_KINDS = frozenset({Kind.NEW_RESOURCE, Kind.DELETED, Kind.STABLE, Kind.UPDATED})
SERVER_KINDS = frozenset({Kind.STARTED, Kind.STOPPED})
JOB_KINDS = frozenset(kind for kind in Kind if kind.name.startswith("JOB_"))


def _check(kind: Kind, family: frozenset[Kind], payload: str) -> None:
    if kind not in family:
        raise ValueError(f"{kind} is not an event of {payload}")


@dataclass(frozen=True)
class InstanceStored:
    """An ingest ended: ``status`` is ``Success`` or ``AlreadyStored``."""

    instance_id: str
    origin: Origin
    parsed: ParsedInstance
    status: str
    kind: Kind = field(default=Kind.STORED, init=False)


@dataclass(frozen=True)
class ResourceEvent:
    """A patient, study, series or instance was created, deleted, became stable or was updated."""

    kind: Kind
    level: Level
    resource_id: str
    #: For ``UPDATED``: an attachment changed (else its metadata).
    attachment: bool = False

    def __post_init__(self) -> None:
        _check(self.kind, RESOURCE_KINDS, "a resource")


@dataclass(frozen=True)
class ServerEvent:
    """The server started (its services are up) or is stopping."""

    kind: Kind

    def __post_init__(self) -> None:
        _check(self.kind, SERVER_KINDS, "the server")


@dataclass(frozen=True)
class JobEvent:
    """A job changed state (or, for ``JOB_PROGRESS``, made progress: ``progress`` percent)."""

    kind: Kind
    job_id: str
    progress: int | None = None

    def __post_init__(self) -> None:
        _check(self.kind, JOB_KINDS, "a job")


Event = InstanceStored | ResourceEvent | ServerEvent | JobEvent
#: A listener takes the payload dataclass of the kinds it subscribes to.
Listener = Callable[[Any], None]


# -- interventions ---------------------------------------------------------------------


class Intervention(Enum):
    """A hook point where scripts decide; the comment gives the handler's signature."""

    #: ``async (handler) -> bool``: False refuses the HTTP request (403).
    HTTP_REQUEST = "IncomingHttpRequestFilter"
    #: ``(data, origin) -> bytes | None``: the bytes to store instead, None discards the instance.
    RECEIVED_INSTANCE = "ReceivedInstanceCallback"
    #: ``(parsed, origin) -> bool``: False filters the instance out; a C-STORE refusal raises
    #: :class:`server.net.scp.DimseStatusError` with its status (ReceivedCStoreInstanceFilter,
    #: IncomingCStoreInstanceFilter).
    STORE_INSTANCE = "ReceivedInstanceFilter"
    #: ``(query, origin) -> query``: the C-FIND query to run (``gggg,eeee`` keys, string values).
    FIND_REQUEST = "IncomingFindRequestFilter"
    #: ``(dataset, destination) -> bool``: False skips the C-STORE of that instance to a modality
    #: (a store job, Lua's ``SendToModality``, a C-MOVE); ``destination`` has ``RemoteAet`` and
    #: ``RemoteIp``.  An error fails that sub-operation.
    OUTGOING_STORE = "OutgoingCStoreInstanceFilter"
    #: ``(query, origin) -> query``: the worklist C-FIND query to answer, in Orthanc's "Short"
    #: JSON (``gggg,eeee`` keys, string values, sequences as lists of objects).
    WORKLIST_REQUEST = "IncomingWorklistRequestFilter"


#: Takes the request's handler (a ``server.rest.base.OrthancHandler``: the bus does not import
#: the REST layer, which depends on it).
HttpRequestFilter = Callable[[Any], Awaitable[bool]]
InstanceReceiver = Callable[["bytes | mmap.mmap", "Origin"], "bytes | mmap.mmap | None"]
InstanceFilter = Callable[["ParsedInstance", "Origin"], bool]
FindFilter = Callable[[dict[str, str], dict[str, str]], dict[str, str]]
OutgoingFilter = Callable[["Dataset", dict[str, str]], bool]
WorklistFilter = Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]

H = TypeVar("H")


class Hook(Generic[H]):
    """The handlers of one intervention, in the order they were installed."""

    def __init__(self, intervention: Intervention) -> None:
        self.intervention = intervention
        self._handlers: tuple[H, ...] = ()
        self._lock = threading.Lock()

    def install(self, handler: H) -> None:
        with self._lock:
            self._handlers = (*self._handlers, handler)

    def __iter__(self) -> Iterator[H]:
        return iter(self._handlers)  # a snapshot: installing meanwhile is safe

    def __bool__(self) -> bool:
        return bool(self._handlers)


class Interventions:
    """Every hook point, each typed with its handlers' signature."""

    def __init__(self) -> None:
        self.http_request: Hook[HttpRequestFilter] = Hook(Intervention.HTTP_REQUEST)
        self.received_instance: Hook[InstanceReceiver] = Hook(Intervention.RECEIVED_INSTANCE)
        self.store_instance: Hook[InstanceFilter] = Hook(Intervention.STORE_INSTANCE)
        self.find_request: Hook[FindFilter] = Hook(Intervention.FIND_REQUEST)
        self.outgoing_store: Hook[OutgoingFilter] = Hook(Intervention.OUTGOING_STORE)
        self.worklist_request: Hook[WorklistFilter] = Hook(Intervention.WORKLIST_REQUEST)


# -- the bus ---------------------------------------------------------------------------


class EventBus:
    def __init__(self) -> None:
        self._listeners: dict[Kind, list[Listener]] = defaultdict(list)
        self._lock = threading.Lock()
        self.interventions = Interventions()

    def subscribe(self, kind: Kind, listener: Listener) -> None:
        with self._lock:
            self._listeners[kind].append(listener)

    def unsubscribe(self, kind: Kind, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners.get(kind, ()):
                self._listeners[kind].remove(listener)

    def publish(self, event: Event) -> None:
        """Run the listeners of ``event.kind``; one that fails is logged, the others still run."""
        with self._lock:
            listeners = list(self._listeners.get(event.kind, ()))
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a faulty listener must not break the publisher
                log.exception("Listener of %s events failed", event.kind.name)
