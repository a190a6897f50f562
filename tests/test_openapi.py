"""``--openapi`` and ``--cheatsheet``: generated from the routes table, and
``schemas/openapi.json`` is that document (it must never drift from the routes)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

from openapi_spec_validator import validate

from conftest import REPO
from server import openapi
from server.rest.app import rest_routes

COMMITTED = REPO / "schemas" / "openapi.json"
#: An Orthanc ID: it matches every route's ID groups and any other path parameter.
SAMPLE_VALUE = "0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d"


def run_cli(*arguments: str) -> str:
    """The command line of the server as shipped (at its own Orthanc level, not the tests')."""
    environment = {k: v for k, v in os.environ.items() if k != "ISENGARD_ORTHANC_LEVEL"}
    result = subprocess.run([sys.executable, "-m", "server", *arguments], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def test_the_committed_document_is_the_generated_one() -> None:
    """Regenerate with ``python -m server --openapi=schemas/openapi.json`` after changing routes."""
    assert run_cli("--openapi=-") == COMMITTED.read_text(encoding="utf-8")


def test_the_document_is_valid_openapi_3() -> None:
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    validate(document)
    assert document["openapi"].startswith("3.")
    for path, operations in document["paths"].items():
        named = re.findall(r"\{([^}]+)\}", path)
        for method, operation in operations.items():
            assert method in ("get", "post", "put", "delete")
            assert operation["summary"]
            in_path = [p["name"] for p in operation["parameters"] if p["in"] == "path"]
            assert in_path == named, (method, path)


def test_every_path_reaches_its_route() -> None:
    """Each documented path, its parameters filled in, is matched by a route of its handler
    (the first route that matches wins, as in Tornado) with the documented methods."""
    document = openapi.application_document()
    routes = rest_routes()
    for path, operations in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", SAMPLE_VALUE, path)
        handler = next(h for pattern, h in routes if re.fullmatch(pattern, concrete))
        assert list(operations) == openapi.implemented_methods(handler), path
    documented = {re.sub(r"\{[^}]+\}", "{}", path) for path in document["paths"]}
    assert {"/system", "/tools/find", "/studies/{}/archive", "/instances/{}/frames/{}/raw.gz",
            "/instances/{}/content/{}", "/tools/now-local", "/jobs/{}/pause"} <= documented


def test_patterns_become_templates() -> None:
    templates = openapi.templates(r"/(patients|studies)/([^/]+)/attachments/([^/]+)(?:/([^/]+))?",
                                  ["plural", "public_id", "name", "operation"])
    assert [t.path for t in templates] == [
        "/patients/{public_id}/attachments/{name}", "/patients/{public_id}/attachments/{name}/{operation}",
        "/studies/{public_id}/attachments/{name}", "/studies/{public_id}/attachments/{name}/{operation}"]
    assert templates[1].parameters == ("public_id", "name", "operation")
    assert [t.path for t in openapi.templates(r"/instances/([^/]+)/frames/([^/]+)", [])] == \
        ["/instances/{instance}/frames/{frame}"]


def test_cheatsheet_is_orthancs_csv() -> None:
    rows = list(csv.reader(io.StringIO(run_cli("--cheatsheet=-"))))
    assert rows[0] == ["Path", "GET", "POST", "DELETE", "PUT", "Summary"]
    by_path = {row[0]: row for row in rows[1:]}
    assert by_path["``/changes``"][1:5] == ["GET", "", "DELETE", ""]
    assert by_path["``/tools/find``"][1:5] == ["", "POST", "", ""]
    assert len(rows) - 1 == len(json.loads(COMMITTED.read_text(encoding="utf-8"))["paths"])
