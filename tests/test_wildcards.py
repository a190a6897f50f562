"""Wildcard matching (``*``, ``?``): the same answers as a regular expression, in linear time."""

from __future__ import annotations

import json
import random
import re
import time

import pytest

from conftest import Isengard, sample
from server.dicom.wildcards import MAX_PATTERN_LENGTH, Wildcard
from server.errors import OrthancError


def _reference(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def test_matches_as_the_regular_expression() -> None:
    rng = random.Random(7)
    for _ in range(20000):
        pattern = "".join(rng.choice("ab*?[.") for _ in range(rng.randint(0, 9)))
        value = "".join(rng.choice("ab[.\n") for _ in range(rng.randint(0, 9)))
        assert Wildcard(pattern).matches(value) == _reference(pattern, value), (pattern, value)


def test_ignore_case() -> None:
    assert Wildcard("jo*N?", ignore_case=True).matches("JOHNNY"[:5] + "s")
    assert not Wildcard("jo*", ignore_case=False).matches("JOHN")


def test_patterns_that_backtrack_in_a_regular_expression_stay_fast() -> None:
    began = time.monotonic()
    assert not Wildcard("*a" * 1000 + "*b").matches("a" * 64)
    assert Wildcard("*" * (1 << 20)).matches("anything")
    assert time.monotonic() - began < 1


def test_too_long_pattern_is_refused() -> None:
    with pytest.raises(OrthancError) as refused:
        Wildcard("a*" * MAX_PATTERN_LENGTH)
    assert refused.value.status == 400


def test_find_with_hostile_wildcards(isengard: Isengard) -> None:
    assert isengard.post("/instances", sample("ColorTestMalaterre.dcm").read_bytes()).status_code == 200

    def find(name: str) -> tuple[int, float]:
        began = time.monotonic()
        answer = isengard.post("/tools/find", json.dumps({"Level": "Study", "Query": {"PatientName": name}}))
        return answer.status_code, time.monotonic() - began

    status, seconds = find("*" * (1 << 20))
    assert status == 200 and seconds < 3
    status, seconds = find("*" * 1000 + "x")
    assert status == 200 and seconds < 3
    status, seconds = find("a*" * (1 << 19))
    assert status == 400 and seconds < 3
    assert isengard.json("/system")["Name"]
