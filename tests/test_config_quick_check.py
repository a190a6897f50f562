"""The quick configuration check that spares jsonschema's import at start-up: it may only
confirm what jsonschema accepts, and it should confirm the usual configurations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from server.config import schema
from server.config.quick_check import surely_valid
from server.config.source import read_file

REPO = Path(__file__).resolve().parent.parent
SCHEMA = schema()
JSONSCHEMA = Draft202012Validator(SCHEMA)

#: Values of every JSON type, in the shapes the options take (ports, AETs, modalities,
#: peers, dictionary entries), valid for some options and invalid for others.
SCALARS: list[Any] = [0, -1, 1, 1.0, 1.5, 65536, True, False, None, "", "x", "4242", "0104", "70000",
                      "1.2.840.10008.1.2", "1.2.", "AET", "A" * 17, "LO", "lo"]
SHAPES: list[Any] = [[], ["a"], ["a", "b", "c"], ["AET", "host", 104], ["AET", "host", "104", "GE"],
                     ["AET", "host", 104, "Bad"], ["AET", "", 104], ["http://peer"], [1, 2],
                     {}, {"Url": "http://peer"}, {"URL": "http://peer", "Timeout": -1},
                     {"AET": "A", "Host": "h", "Port": 1}, {"AET": "A", "Host": "h", "Port": "x"},
                     {"AET": "A", "Host": "h"}, {"bad name": 1}, {"Name": ["LO", "Name", 1, 1, "Creator"]},
                     {"0405,0010": ["LO", "Name", 1, 1, "Creator"]}, {"0405,0010": ["Lo", "Name"]}]


def candidates(declaration: dict[str, Any]) -> list[Any]:
    values = SCALARS + SHAPES + [{"k": v} for v in SCALARS + SHAPES] + [[v] for v in SCALARS + SHAPES]
    return values + [declaration.get("default")] + list(declaration.get("examples", []))


@pytest.mark.parametrize("option", sorted(SCHEMA["properties"]))
def test_never_confirms_what_jsonschema_rejects(option: str) -> None:
    for value in candidates(SCHEMA["properties"][option]):
        user = {option: value}
        if surely_valid(user, SCHEMA):
            assert not list(JSONSCHEMA.iter_errors(user)), f"{option}: {value!r} confirmed, jsonschema rejects it"


def test_confirms_the_declared_defaults_and_examples() -> None:
    """What the schema itself shows as valid is confirmed without jsonschema."""
    for option, declaration in SCHEMA["properties"].items():
        for value in [declaration.get("default"), *declaration.get("examples", [])]:
            user = {option: value}
            if value is not None and not list(JSONSCHEMA.iter_errors(user)):
                assert surely_valid(user, SCHEMA), f"{option}: {value!r}"


def test_confirms_the_shipped_configuration() -> None:
    assert surely_valid(read_file(REPO / "orthanc.json", {}), SCHEMA)


def test_unknown_keywords_are_left_to_jsonschema() -> None:
    assert not surely_valid({"A": 1}, {"properties": {"A": {"multipleOf": 2}}})
    assert surely_valid({"A": 1}, {"properties": {"A": {"type": "integer", "description": "x"}}})
    assert not surely_valid({"A": True}, {"properties": {"A": {"type": "integer"}}})
    assert surely_valid({"A": 2.0}, {"properties": {"A": {"type": "integer", "minimum": 2}}})
