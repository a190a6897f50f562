"""The walk of a file's elements (``check_complete`` and the C-STORE SCP's ``check_encoding``)
gives the same answers with its fast run over plain top-level elements as with its general
loop alone, on every DICOM file of the test data, cut short and with a byte changed."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.dicom import parse
from server.errors import OrthancError

DATA = Path(__file__).parent / "data"
FILES = sorted(DATA.rglob("*.dcm"))
EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


def _variants(data: bytes, rng: random.Random) -> list[bytes]:
    """The file, cut at random places and in its last bytes, and with one byte changed."""
    cuts = {rng.randrange(len(data) + 1) for _ in range(20)} | set(range(max(0, len(data) - 20), len(data) + 1))
    changed = []
    for _ in range(10):
        copy = bytearray(data)
        copy[rng.randrange(len(copy))] = rng.randrange(256)
        changed.append(bytes(copy))
    return [data[:cut] for cut in sorted(cuts)] + changed


def _outcome(check: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return check(data)
    except (OrthancError, ValueError) as error:
        return type(error).__name__, str(error)


def _complete(data: bytes) -> Any:
    walker = parse._Walker(data, wanted=None)
    return parse.check_complete(data, walker), walker.found, walker.ends, walker.dataset_start


def _dataset(data: bytes) -> bytes:
    return data[132:] if data[128:132] == b"DICM" else data


CHECKS: dict[str, Callable[[bytes], Any]] = {
    "check_complete": _complete,
    "check_encoding explicit": lambda data: parse.check_encoding(_dataset(data), EXPLICIT),
    "check_encoding implicit": lambda data: parse.check_encoding(_dataset(data), IMPLICIT),
}


@pytest.mark.parametrize("path", FILES, ids=lambda path: str(path.relative_to(DATA)))
def test_fast_run_answers_as_the_general_loop(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    variants = _variants(path.read_bytes(), random.Random(path.name))
    fast = [[_outcome(check, data) for check in CHECKS.values()] for data in variants]
    monkeypatch.setattr(parse._Walker, "_run", lambda self, offset, explicit, until: (offset, 0))
    general = [[_outcome(check, data) for check in CHECKS.values()] for data in variants]
    assert fast == general
