"""The event bus in-process: notifications (many listeners, failures logged) and interventions
(handlers in order, failures reach the hook point), with payloads typed per kind."""

from __future__ import annotations

import logging

import pytest

from server.dicom.main_tags import Level
from server.events import (
    JOB_KINDS,
    EventBus,
    Intervention,
    JobEvent,
    Kind,
    ResourceEvent,
    ServerEvent,
)


def test_every_listener_of_a_kind_gets_the_event_even_after_one_fails(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    def failing(event: JobEvent) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(Kind.JOB_SUCCESS, failing)
    bus.subscribe(Kind.JOB_SUCCESS, lambda event: seen.append(event.job_id))
    bus.subscribe(Kind.JOB_FAILURE, lambda event: seen.append("wrong kind"))
    with caplog.at_level(logging.ERROR, logger="isengard.events"):
        bus.publish(JobEvent(Kind.JOB_SUCCESS, "job-1"))
    assert seen == ["job-1"]
    assert "Listener of JOB_SUCCESS events failed" in caplog.text
    bus.unsubscribe(Kind.JOB_SUCCESS, failing)
    bus.unsubscribe(Kind.JOB_SUCCESS, failing)  # twice: harmless
    bus.publish(JobEvent(Kind.JOB_SUCCESS, "job-2"))
    assert seen == ["job-1", "job-2"]


def test_a_payload_only_comes_with_the_kinds_of_its_family() -> None:
    assert ResourceEvent(Kind.UPDATED, Level.SERIES, "id", attachment=True).attachment
    assert JobEvent(Kind.JOB_PROGRESS, "id", 40).progress == 40
    assert ServerEvent(Kind.STARTED).kind is Kind.STARTED
    with pytest.raises(ValueError):
        JobEvent(Kind.STORED, "id")
    with pytest.raises(ValueError):
        ResourceEvent(Kind.JOB_SUCCESS, Level.STUDY, "id")
    with pytest.raises(ValueError):
        ServerEvent(Kind.DELETED)
    assert Kind.JOB_PROGRESS in JOB_KINDS and Kind.STORED not in JOB_KINDS


def test_interventions_run_in_order_and_their_errors_reach_the_hook_point() -> None:
    bus = EventBus()
    hook = bus.interventions.find_request
    assert hook.intervention is Intervention.FIND_REQUEST and not hook
    hook.install(lambda query, origin: {**query, "first": "1"})
    hook.install(lambda query, origin: {**query, "second": query["first"] + "2"})
    query: dict[str, str] = {}
    for apply in hook:
        query = apply(query, {})
    assert query == {"first": "1", "second": "12"}

    def refusing(data: bytes, origin: object) -> bytes | None:
        raise PermissionError("refused by a script")

    bus.interventions.received_instance.install(refusing)
    with pytest.raises(PermissionError):
        for receive in bus.interventions.received_instance:
            receive(b"", None)  # type: ignore[arg-type]
