"""The job-type interface, in the spirit of Orthanc's ``IJob``.

A job is a sequence of steps.  The engine calls :meth:`Job.step` repeatedly from
a worker thread and checks for pause and cancel requests between steps, so a
step should take well under a second.  Every job type plugs in through this
interface and one entry in the :class:`JobRegistry` the engine is given, without
touching the engine.  Jobs know nothing of the server: each type receives the
narrow services it uses in its constructor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from server.errors import ErrorCode


class JobState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"
    PAUSED = "Paused"
    RETRY = "Retry"


class StopReason(Enum):
    """Why the engine stops calling steps (Orthanc's ``JobStopReason``)."""

    PAUSED = "Paused"
    CANCELED = "Canceled"
    SUCCESS = "Success"
    FAILURE = "Failure"
    RETRY = "Retry"


@dataclass(frozen=True)
class StepResult:
    """What a step tells the engine: go on, finished, failed, or try again later."""

    kind: str  # "continue", "success", "failure", "retry"
    code: int = ErrorCode.SUCCESS
    details: str = ""
    retry_after: float = 0.0
    #: The failure's ``ErrorPayload`` (Orthanc 1.12.10), shown in ``/jobs/{id}``.
    payload: dict[str, Any] | None = None

    @staticmethod
    def next() -> StepResult:
        return _CONTINUE

    @staticmethod
    def success() -> StepResult:
        return _SUCCESS

    @staticmethod
    def failure(code: int, details: str = "", payload: dict[str, Any] | None = None) -> StepResult:
        return StepResult("failure", code, details, payload=payload)

    @staticmethod
    def retry(after_seconds: float, code: int = ErrorCode.SUCCESS, details: str = "") -> StepResult:
        return StepResult("retry", code, details, after_seconds)


_CONTINUE = StepResult("continue")
_SUCCESS = StepResult("success")


@dataclass(frozen=True)
class Output:
    """A file a finished job offers (``GET /jobs/{id}/{key}``)."""

    path: Path
    mime: str
    filename: str


class Job(ABC):
    """One job type.  Subclasses set ``TYPE`` and implement the abstract methods."""

    TYPE = ""

    def __init__(self) -> None:
        #: Set by the engine when the job is submitted or restored.
        self.id = ""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Called in the worker before the first step, and again after a resume or restart."""

    @abstractmethod
    def step(self) -> StepResult:
        """Do one bounded piece of work."""

    @abstractmethod
    def reset(self) -> None:
        """Forget all progress, for a resubmit."""

    def stop(self, reason: StopReason) -> None:  # noqa: B027 - optional hook
        """Called when the engine stops stepping (release connections, files...)."""

    @abstractmethod
    def progress(self) -> float:
        """Fraction done, in [0, 1]."""

    @abstractmethod
    def content(self) -> dict[str, Any]:
        """The public ``Content`` of ``/jobs/{id}``."""

    @abstractmethod
    def serialize(self) -> dict[str, Any] | None:
        """Everything needed to rebuild the job after a restart (JSON-compatible).

        None: the job cannot be serialized (Orthanc's ``IJob::Serialize`` answering false,
        as a plugin's job may): it is never saved, so it does not outlive the process.
        """

    def outputs(self) -> dict[str, Output]:
        return {}

    def delete_output(self, key: str) -> bool:
        output = self.outputs().get(key)
        if output is None:
            return False
        output.path.unlink(missing_ok=True)
        return True

    def synchronous_answer(self) -> Any:
        """What a synchronous REST call answers when the job succeeds."""
        return self.content()

    def error_payload(self) -> dict[str, Any] | None:
        """The ``ErrorPayload`` a failed synchronous call answers, preferred to its failed
        step's (Orthanc's ``IJob::LookupErrorPayload``); None: the step's."""
        return None


#: How to rebuild one job type from :meth:`Job.serialize`'s output (its services bound).
Restore = Callable[[dict[str, Any]], Job]
#: A script's unserializer: ``(type, data)`` -> the job, or None when the type is not its own.
Unserializer = Callable[[str, dict[str, Any]], Job | None]


class JobRegistry:
    """Every job type the engine can restore after a restart, listed once, explicitly.

    Scripts add unserializers for their own job types (``RegisterJobsUnserializer``),
    before the engine restores the saved jobs.
    """

    def __init__(self, restorers: dict[str, Restore]) -> None:
        self._restorers = dict(restorers)
        self._unserializers: list[Unserializer] = []

    def types(self) -> list[str]:
        return sorted(self._restorers)

    def add_unserializer(self, unserializer: Unserializer) -> None:
        self._unserializers.append(unserializer)

    def restore(self, type_name: str, data: dict[str, Any]) -> Job:
        """Rebuild a saved job, asking the scripts first as Orthanc asks its plugins; KeyError when
        neither they nor a built-in type take it."""
        for unserializer in self._unserializers:
            job = unserializer(type_name, data)
            if job is not None:
                return job
        return self._restorers[type_name](data)
