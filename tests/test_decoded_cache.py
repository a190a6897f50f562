"""The cache of parsed files, decoded frames and tags documents behind the image and tags
routes: answers never come from a file that was replaced, nor from another default encoding,
and the cache can be switched off."""

from __future__ import annotations

import io

import numpy as np
import pydicom
from PIL import Image

from conftest import sample
from server.decoded_cache import DecodedCache

CT = sample("SignedCT.dcm")


def _shifted_copy() -> bytes:
    """The CT slice with the same UIDs and other pixel values."""
    ds = pydicom.dcmread(CT)
    values = ds.pixel_array.astype(np.int16)
    ds.PixelData = (values // 2).astype(values.dtype).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _frame(server, instance: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    answer = server.get(f"/instances/{instance}/frames/0/numpy?rescale=0")
    assert answer.status_code == 200, answer.text
    return np.load(io.BytesIO(answer.content))


def test_an_overwritten_instance_is_decoded_afresh(make_isengard) -> None:  # type: ignore[no-untyped-def]
    server = make_isengard(OverwriteInstances=True)
    instance = server.upload(CT)["ID"]
    first = _frame(server, instance)
    preview = server.get(f"/instances/{instance}/preview").content
    assert server.get(f"/instances/{instance}/preview").content == preview
    assert server.upload(_shifted_copy())["ID"] == instance
    second = _frame(server, instance)
    assert np.array_equal(second[..., 0], (first[..., 0] // 2).astype(first.dtype))
    rendered = Image.open(io.BytesIO(server.get(f"/instances/{instance}/rendered").content))
    fresh = make_isengard()
    fresh.upload(_shifted_copy())
    expected = Image.open(io.BytesIO(fresh.get(f"/instances/{instance}/rendered").content))
    assert np.array_equal(np.asarray(rendered), np.asarray(expected))


def _renamed_copy(name: bytes) -> bytes:
    """The CT slice with the same UIDs, another PatientName (raw bytes) and no character set."""
    ds = pydicom.dcmread(CT)
    ds.PatientName = name.decode("latin-1")  # written back in pydicom's default, Latin-1
    del ds.SpecificCharacterSet
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_tags_follow_the_file_and_the_default_encoding(make_isengard) -> None:  # type: ignore[no-untyped-def]
    server = make_isengard(OverwriteInstances=True)
    instance = server.upload(_renamed_copy(b"ANNA"))["ID"]
    name = "0010,0010"
    for _ in range(2):
        assert server.json(f"/instances/{instance}/tags")[name]["Value"] == "ANNA"
    assert server.upload(_renamed_copy(b"M\xfcller"))["ID"] == instance  # replaced
    for _ in range(2):
        assert server.json(f"/instances/{instance}/tags")[name]["Value"] == "M\u00fcller"
        assert server.json(f"/instances/{instance}/simplified-tags")["PatientName"] == "M\u00fcller"
    assert server.put("/tools/default-encoding", "Cyrillic").status_code == 200
    assert server.json(f"/instances/{instance}/tags")[name]["Value"] == "M\u045cller"  # 0xFC in ISO 8859-5
    assert server.json(f"/instances/{instance}/tags?ignore-length=PatientName")[name]["Value"] == "M\u045cller"
    assert server.put("/tools/default-encoding", "Latin1").status_code == 200
    assert server.json(f"/instances/{instance}/tags")[name]["Value"] == "M\u00fcller"


def test_without_cache_answers_are_the_same(make_isengard) -> None:  # type: ignore[no-untyped-def]
    cached, uncached = make_isengard(), make_isengard(MaximumStorageCacheSize=0)
    instance = cached.upload(CT)["ID"]
    uncached.upload(CT)
    for route in ("preview", "rendered?window-center=40&window-width=400", "frames/0/raw", "image-int16",
                  "tags", "tags?whole=true", "simplified-tags", "tags?short&ignore-length=PatientName"):
        for _ in range(2):
            assert cached.get(f"/instances/{instance}/{route}").content == \
                uncached.get(f"/instances/{instance}/{route}").content


def test_least_recently_used_entries_go_beyond_the_budget() -> None:
    cache = DecodedCache()
    cache.put("a", 1, 40, 100)
    cache.put("b", 2, 40, 100)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3, 40, 100)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.size == 80
    cache.put("huge", 4, 60, 100)  # more than half the budget: not kept
    assert cache.get("huge") is None and cache.size == 80


def test_a_tags_document_counts_for_its_elements_not_its_file() -> None:
    """A small file's document takes more memory than the file: the cache counts ~600 bytes
    an element, sequences' items included."""
    from server.instance_tags import _footprint
    leaf = {"Name": "PatientName", "Type": "String", "Value": "A"}
    document = {"0010,0010": leaf, "0008,1140": {"Name": "ReferencedImageSequence", "Type": "Sequence",
                                                 "Value": [{"0008,1150": leaf, "0008,1155": leaf}, {}]}}
    assert _footprint(document) == 4 * 600
