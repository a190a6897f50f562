"""Small helpers several test files share: waiting for a job, reading an Orthanc error, building a C-FIND query."""

from __future__ import annotations

import time
from collections.abc import Collection

import requests
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from conftest import Server


def wait_job(server: Server, job: str, states: Collection[str] = ("Success", "Failure"),
             timeout: float = 60) -> dict:
    """The job's document once its State is one of ``states``; polled often, so that a short state
    (Running, Paused) is still seen."""
    deadline = time.monotonic() + timeout
    while True:
        document = server.json(f"/jobs/{job}")
        if document["State"] in states:
            return document
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} never reached {states}: {document}")
        time.sleep(0.01)


def orthanc_error(answer: requests.Response) -> tuple[int, int, str]:
    """(HTTP status, OrthancStatus, Details) of an error answer, Details "" when absent."""
    body = answer.json()
    return answer.status_code, body["OrthancStatus"], body.get("Details", "")


def query_identifier(keys: dict) -> Dataset:
    """A query dataset; wildcards and ranges are not valid values, so pydicom must not check them."""
    identifier = Dataset()
    for keyword, value in keys.items():
        tag = tag_for_keyword(keyword)
        vr = dictionary_VR(tag)
        identifier.add(DataElement(tag, vr, None if value == "" and vr in ("US", "UL", "SS", "SL") else value,
                                   validation_mode=config.IGNORE))
    return identifier
