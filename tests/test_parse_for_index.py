"""``parse_for_index`` reads the main tags straight from the walk's raw values when they are
all strings (nearly every file), and from a dataset otherwise: both give the same index
entries, on every DICOM file of the test data and the synthetic edge cases, each also
rewritten in implicit VR, and on main tags at their edges (too long, padded, not a string)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from helpers import crafted_main_tags, implicit_vr_variant
from server.dicom import parse
from server.dicom.parse import parse_for_index
from server.errors import OrthancError

TESTS = Path(__file__).parent
FILES = sorted((TESTS / "data").rglob("*.dcm")) + sorted((TESTS / "fixtures" / "orthanc" / "synthetic").glob("*.dcm"))


def _indexed(data: bytes, encoding: str) -> dict[str, Any] | str:
    """What the index gets of ``data`` (the file's bytes left out), or the refusal."""
    try:
        parsed = asdict(parse_for_index(data, encoding))
    except OrthancError as error:
        return f"{error.code}: {error}"
    del parsed["data"]
    return parsed


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the crafted values, as meant
@pytest.mark.parametrize("path", [*FILES, None], ids=[*(str(p.relative_to(TESTS)) for p in FILES), "crafted"])
def test_the_walked_values_index_as_the_dataset(path: Path | None, monkeypatch: pytest.MonkeyPatch) -> None:
    data = path.read_bytes() if path is not None else crafted_main_tags()
    for variant in (data, implicit_vr_variant(data)):
        if variant is None:
            continue
        for encoding in ("Latin1", "Utf8", "Japanese"):
            with monkeypatch.context() as patched:
                walked = _indexed(variant, encoding)
                patched.setattr(parse, "_indexed_from_walk", lambda *arguments: None)
                assert walked == _indexed(variant, encoding), encoding


def test_most_files_take_the_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is the common one (else the test above would prove little)."""
    taken = []
    walk = parse._indexed_from_walk

    def counted(*arguments: Any) -> Any:
        read = walk(*arguments)
        taken.append(read is not None)
        return read

    monkeypatch.setattr(parse, "_indexed_from_walk", counted)
    for path in FILES:
        _indexed(path.read_bytes(), "Latin1")
    assert sum(taken) > len(taken) / 2, (sum(taken), len(taken))
