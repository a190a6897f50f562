"""Small helpers several test files share: waiting for a job, reading an Orthanc error, building a C-FIND query."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import requests
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from conftest import _STARTED, REPO, Isengard, Server


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


class IsengardAtLevel(Isengard):
    """Isengard reporting another Orthanc release and ``ApiVersion`` (``ISENGARD_ORTHANC_LEVEL``,
    see server/__init__.py), to test the behaviour of another API level in a real process."""

    def __init__(self, workdir: Path, version: str, api_version: int, **options: Any) -> None:
        super().__init__(workdir, **options)
        self.level = (version, api_version)

    def start(self, *extra_args: str) -> IsengardAtLevel:
        version, api_version = self.level
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen([sys.executable, "-m", "server", *extra_args, str(self.config_path)],
                                        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "ISENGARD_ORTHANC_LEVEL": f"{version}:{api_version}"})
        _STARTED.append(self.process)
        self.wait_ready(self.process)
        return self
