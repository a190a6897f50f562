"""Custom jobs written in Python: ``orthanc.CreateJob``, ``Job.SubmitJob``, ``orthanc.RegisterJobsUnserializer``.

No release of orthanc-python (4.0 up to 7.1) wraps the C SDK's
``OrthancPluginCreateJob2`` or ``OrthancPluginRegisterJobsUnserializer``: its
``orthanc.Job`` exists, but a script cannot make one (the plugin lists Python jobs
as future work).  Isengard adds the closest Python form of those C
functions under the plugin's naming (``OrthancPluginX`` becomes ``orthanc.X``), and
still refuses ``orthanc.Job()`` as the plugin does:

* ``orthanc.CreateJob(type, get_progress, get_content, get_serialized, step, stop, reset)``
  answers an ``orthanc.Job``.  The callbacks are ``OrthancPluginCreateJob2``'s, in its
  order; its ``job`` pointer and ``finalize`` have no use in Python (callbacks close
  over their state).  ``step()`` answers an ``orthanc.JobStepStatus``, ``stop(reason)``
  receives an ``orthanc.JobStopReason``, ``get_progress()`` a number in [0, 1],
  ``get_content()`` the public ``Content`` (JSON text of an object, or a dict), and
  ``get_serialized()`` the same, or None when the job cannot be saved.
* ``job.SubmitJob(priority)`` hands the job to the jobs engine, once, and answers its ID.
* ``orthanc.RegisterJobsUnserializer(callback)``: at start-up, ``callback(type, serialized)``
  gets each saved job (``serialized``: the JSON text ``get_serialized`` gave, plus
  ``"Type"``, as Orthanc passes it) and answers an ``orthanc.Job`` from ``CreateJob``,
  or None when the job is not its own.

The jobs then live in the engine like the built-in ones: ``/jobs``, pause, resume,
cancel, resubmit (``reset``), the job change events, ``SaveJobs``.  As in Orthanc's
``PluginsJob``: a step that fails fails the job with the ``Plugin`` error; a job
whose ``get_serialized`` answers None is never saved, so it does not outlive the
process; a saved job that no unserializer takes back is skipped at start-up.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from server.errors import ErrorCode, OrthancError
from server.jobs.job import Job as EngineJob
from server.jobs.job import StepResult, StopReason, Unserializer
from server.scripting.python_enums import ENUMERATIONS
from server.scripting.python_toolbox import exception

log = logging.getLogger("isengard.plugins.python")

_STEP = ENUMERATIONS["JobStepStatus"][1]
_STOP = ENUMERATIONS["JobStopReason"][1]
_STOP_REASONS = {StopReason.SUCCESS: _STOP["SUCCESS"], StopReason.PAUSED: _STOP["PAUSED"],
                 StopReason.FAILURE: _STOP["FAILURE"], StopReason.CANCELED: _STOP["CANCELED"]}
#: The key Orthanc adds to a serialized plugin job, and refuses in what the plugin gives.
TYPE_KEY = "Type"


class JobsHost(Protocol):
    """What the job functions need from the server."""

    def submit_job(self, job: EngineJob, priority: int) -> str: ...

    def add_jobs_unserializer(self, unserializer: Unserializer) -> None: ...


@dataclass(frozen=True)
class JobCallbacks:
    """The script's functions behind one job."""

    get_progress: Callable[[], Any]
    get_content: Callable[[], Any]
    get_serialized: Callable[[], Any]
    step: Callable[[], Any]
    stop: Callable[[int], Any]
    reset: Callable[[], Any]


class ScriptJob(EngineJob):
    """A job of the engine whose work is the script's callbacks (Orthanc's ``PluginsJob``)."""

    def __init__(self, type_name: str, callbacks: JobCallbacks) -> None:
        super().__init__()
        self.TYPE = type_name
        self._callbacks = callbacks
        # What the engine shows between two good answers of the script (it must never raise).
        self._progress = 0.0
        self._content: dict[str, Any] = {}

    def step(self) -> StepResult:
        try:
            status = self._callbacks.step()
        except Exception as e:  # noqa: BLE001 - a script error fails the job, as a failed step does
            _log_traceback(f"Error in the step callback of the Python job {self.id}", e)
            return StepResult.failure(ErrorCode.PLUGIN, f"{type(e).__name__}: {e}")
        if isinstance(status, int) and not isinstance(status, bool):
            if status == _STEP["CONTINUE"]:
                return StepResult.next()
            if status == _STEP["SUCCESS"]:
                return StepResult.success()
            if status == _STEP["FAILURE"]:
                return StepResult.failure(ErrorCode.PLUGIN)
        log.error("The step callback of the Python job %s answered %r, not an orthanc.JobStepStatus",
                  self.id, status)
        return StepResult.failure(ErrorCode.PARAMETER_OUT_OF_RANGE)

    def stop(self, reason: StopReason) -> None:
        try:
            self._callbacks.stop(_STOP_REASONS[reason])
        except Exception as e:  # noqa: BLE001 - the job's state is the engine's, whatever stop does
            _log_traceback(f"Error in the stop callback of the Python job {self.id}", e)

    def reset(self) -> None:
        try:
            self._callbacks.reset()
        except Exception as e:
            _log_traceback(f"Error in the reset callback of the Python job {self.id}", e)
            raise OrthancError(ErrorCode.PLUGIN, "The Python job cannot be reset") from None

    def progress(self) -> float:
        try:
            value = float(self._callbacks.get_progress())
        except Exception as e:  # noqa: BLE001 - the last good value is kept
            _log_traceback(f"Error in the progress callback of the Python job {self.id}", e)
            return self._progress
        self._progress = min(1.0, max(0.0, value)) if value == value else 0.0  # NaN: 0
        return self._progress

    def content(self) -> dict[str, Any]:
        try:
            self._content = _json_object(self._callbacks.get_content(), "public content")
        except Exception as e:  # noqa: BLE001 - the last good content is kept
            _log_traceback(f"Error in the content callback of the Python job {self.id}", e)
        return self._content

    def serialize(self) -> dict[str, Any] | None:
        """The script's serialized object; None when it cannot serialize the job (then never saved)."""
        value = self._callbacks.get_serialized()
        if value is None:
            return None
        document = _json_object(value, "serialized content")
        if TYPE_KEY in document:
            raise ValueError('The "Type" field is for reserved use for serialized job')
        return document


def _json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` (JSON text or a dict) as a JSON object, as Orthanc requires of a plugin job."""
    document = json.loads(value) if isinstance(value, (str, bytes)) else value
    if not isinstance(document, dict):
        raise ValueError(f"A job plugin must provide a JSON object as its {what}")
    copy: dict[str, Any] = json.loads(json.dumps(document))  # JSON only (no other Python objects)
    return copy


class Job:
    """``orthanc.Job``: made by ``orthanc.CreateJob`` (``orthanc.Job()`` is refused, as in orthanc-python)."""

    _job: ScriptJob | None
    _host: JobsHost

    def __init__(self, *args: Any) -> None:
        raise ValueError("Expected a pair (pointer, borrowed) in the constructor")

    @classmethod
    def _wrap(cls, job: ScriptJob, host: JobsHost) -> Job:
        made = cls.__new__(cls)
        made._job = job
        made._host = host
        return made

    def _take(self) -> ScriptJob:
        """The engine's job, once: after a submission (or an unserialization) it is the engine's."""
        job: ScriptJob | None = getattr(self, "_job", None)
        self._job = None
        if job is None:
            raise exception(ErrorCode.BAD_SEQUENCE_OF_CALLS, "This job was already submitted")
        return job

    def SubmitJob(self, priority: int) -> str:
        """Hand the job to the jobs engine; its ID."""
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError("the priority must be an integer")
        return self._host.submit_job(self._take(), priority)


Job.__module__ = "orthanc"


class JobFunctions:
    """The module's job functions, mixed into :class:`server.scripting.python_api._Functions`."""

    _host: JobsHost

    def CreateJob(self, type: str, get_progress: Callable[[], float], get_content: Callable[[], Any],
                  get_serialized: Callable[[], Any], step: Callable[[], int], stop: Callable[[int], None],
                  reset: Callable[[], None]) -> Job:
        """A job of ``type`` run by these callbacks (``OrthancPluginCreateJob2``'s, in its order)."""
        callbacks = (get_progress, get_content, get_serialized, step, stop, reset)
        if not isinstance(type, str) or not type or not all(callable(c) for c in callbacks):
            raise ValueError("Expected a job type (non-empty string) and six callback functions to create a job")
        return Job._wrap(ScriptJob(type, JobCallbacks(*callbacks)), self._host)

    def RegisterJobsUnserializer(self, callback: Callable[[str, str], Job | None]) -> None:
        """``callback(type, serialized)`` rebuilds the saved jobs at start-up (see the module's doc)."""
        if not callable(callback):
            raise ValueError("Expected a callback function to register one Python jobs unserializer")
        self._host.add_jobs_unserializer(unserializer(callback))
        log.info("Registering one Python jobs unserializer")


def unserializer(callback: Callable[[str, str], Any]) -> Unserializer:
    """The script's unserializer as the job registry calls it (before the built-in types, as Orthanc does).

    It must not lose a built-in job: whatever the script does wrong answers None.
    """
    def restore(type_name: str, data: dict[str, Any]) -> EngineJob | None:
        try:
            job = callback(type_name, json.dumps({**data, TYPE_KEY: type_name}))
            if job is None:
                return None
            if not isinstance(job, Job):
                raise TypeError(f"the jobs unserializer answered {job!r}, not an orthanc.Job or None")
            return job._take()
        except Exception as e:  # noqa: BLE001 - the next unserializer, or the built-in types, may take it
            _log_traceback(f"Error in the Python jobs unserializer (job of type {type_name})", e)
            return None
    return restore


def _log_traceback(what: str, error: BaseException) -> None:
    log.error("%s, traceback:\n%s", what, "".join(traceback.format_exception(error)).rstrip())
