"""Malformed bodies to every POST and PUT route: a 4xx with Orthanc's error body, never a 500 or a hang."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator

import pytest
import requests

from conftest import Isengard, sample
from server.rest import (
    archive,
    create,
    jobs,
    lua,
    metadata,
    metrics,
    modalities,
    modify,
    peers,
    queries,
    resources,
    storage_commitment,
    system,
    tools,
)
from server.rest.base import OrthancHandler

#: Routes that stop or restart the server: not for a fuzzer.
SKIPPED = {"/tools/shutdown", "/tools/reset"}
#: Field names of Orthanc's JSON bodies, all given a wrong type at once.
FIELDS = ("Resources", "Level", "Query", "Keys", "Replace", "Remove", "Keep", "Force", "Synchronous",
          "Asynchronous", "Priority", "Tags", "Content", "Parent", "LocalAet", "MoveOriginatorID",
          "Timeout", "Permissive", "Transcode", "Expand", "Limit", "Since", "CaseSensitive",
          "Normalize", "TargetAet", "Compress", "KeepSource", "DicomVersion", "PrivateCreator",
          "StorageCommitment", "RequestedTags", "Short", "Simplify", "Full", "Transfer", "Peer",
          "Filename", "Lossy", "Series", "Study", "Patient", "Instances", "Storage", "Type",
          "Target", "Resource", "AET", "Host", "Port", "Manufacturer", "Url", "Username", "Password",
          "Path", "Value", "Name", "ID", "Label", "Labels", "KeepLabels", "RemoteAet", "CalledAet")
#: Errors Orthanc itself answers with 500: NetworkProtocol, UnknownDicomTag.
ORTHANC_500 = {9, 27}
WRONG_VALUES = (5, -1, 1e300, "x", "", True, None, [], [[1]], {}, {"a": []})
BAD_BODIES = (
    b"{", b"[1,", b"\xff\xfe\xfd", b'{"Level": "\xff"}', b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"[]", b"1", b'"s"', b"null", b"true", b"{}",
    b"-1e999", b'{"Resources": ["' + b"a" * 1_000_000 + b'"]}',
)


def _bodies() -> Iterator[bytes]:
    yield from BAD_BODIES
    for value in WRONG_VALUES:
        yield json.dumps({field: value for field in FIELDS}).encode()


def _routes() -> list[tuple[str, set[str]]]:
    found = []
    for module in (resources, metadata, system, tools, jobs, storage_commitment, create, metrics, archive,
                   modalities, peers, queries, modify, lua):
        for pattern, handler in module.paths():
            methods = {m for m in ("post", "put")
                       if getattr(handler, m) is not getattr(OrthancHandler, m)}
            if methods:
                found.append((pattern, methods))
    return found


def _paths(pattern: str, ids: dict[str, str]) -> list[str]:
    """Concrete paths of a route pattern: each alternative, real IDs, known names."""
    pieces = re.split(r"(\([^()]*(?:\([^()]*\)[^()]*)*\)\??)", pattern)
    choices: list[list[str]] = []
    previous = ""
    for piece in pieces:
        if piece.startswith("("):
            inner = piece.rstrip("?")[1:-1].lstrip("?:")
            if re.fullmatch(r"[\w|-]+", inner):
                options = inner.split("|")[:3]
            elif previous.rstrip("/").endswith("modalities"):
                options = ["m"]
            elif previous.rstrip("/").endswith("peers"):
                options = ["p"]
            else:
                level = previous.rstrip("/").rsplit("/", 1)[-1]
                options = [ids.get(level, "x")]
            choices.append(options)
        else:
            choices.append([piece.replace("\\", "")])
            previous = piece
    paths = []
    for combination in itertools.product(*choices):
        path = "".join(combination)
        if re.fullmatch(r"(?:/[^/]+)+", path):
            # the IDs of the level each alternative chose
            parts = path.split("/")
            for i in range(1, len(parts) - 1):
                if parts[i] in ids and (parts[i + 1] == "x" or parts[i + 1] in ids.values()):
                    parts[i + 1] = ids[parts[i]]
            paths.append("/".join(parts))
    return paths


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Isengard]:
    server = Isengard(tmp_path_factory.mktemp("fuzz"),
                      DicomModalities={"m": ["NOWHERE", "127.0.0.1", 1]},
                      OrthancPeers={"p": ["http://127.0.0.1:1/"]}).start()
    yield server
    server.stop()


def test_malformed_bodies_get_a_4xx_with_orthancs_error_body(fuzzed: Isengard) -> None:
    stored = fuzzed.upload(sample("ColorTestMalaterre.dcm"))
    ids = {"patients": stored["ParentPatient"], "studies": stored["ParentStudy"],
           "series": stored["ParentSeries"], "instances": stored["ID"]}
    failures = []
    for pattern, methods in _routes():
        for path in _paths(pattern, ids):
            if path in SKIPPED:
                continue
            for method, body in itertools.product(sorted(methods), _bodies()):
                try:
                    answer = fuzzed.session.request(method, fuzzed.url + path, data=body, timeout=20)
                except requests.RequestException as e:
                    failures.append((method, path, body[:40], repr(e)[:80]))
                    continue
                if answer.status_code >= 400 and answer.content:
                    document = answer.json()
                    assert document["HttpStatus"] == answer.status_code
                    if answer.status_code >= 500 and document["OrthancStatus"] in ORTHANC_500:
                        continue  # an unreachable modality or peer: Orthanc's 500 too
                if answer.status_code >= 500:
                    failures.append((method, path, body[:40], answer.status_code, answer.text[:300]))
    assert fuzzed.json("/system")["Name"]
    assert failures == []
