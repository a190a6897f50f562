"""``GET /series/{id}/ordered-slices``: the instances and frames of a series in viewing order.

As Orthanc's ``SliceOrdering``: along the normal of the series
(ImageOrientationPatient) when every instance has a position, lies in a parallel
plane and no two slices coincide (a ``Volume``); otherwise by IndexInSeries (a
``Sequence``).  The arithmetic is done in single precision like Orthanc's, so
that the same series is judged a volume or not alike.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from server.dicom.main_tags import Level
from server.errors import OrthancError
from server.storage.index import Index, Metadata, Resource

IMAGE_POSITION_PATIENT = (0x0020, 0x0032)
IMAGE_ORIENTATION_PATIENT = (0x0020, 0x0037)
NUMBER_OF_FRAMES = (0x0028, 0x0008)
CANNOT_ORDER_SLICES = 2040

_FLOAT_EPSILON = 1.1920928955078125e-07
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

Vector = tuple[float, float, float]


def _f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _floats(text: str | None, count: int) -> list[float] | None:
    if text is None:
        return None
    tokens = [token.strip() for token in text.split("\\")]
    if len(tokens) != count or not all(_FLOAT.fullmatch(token) for token in tokens):
        return None
    return [_f32(float(token)) for token in tokens]


def _normal(orientation: str | None) -> Vector | None:
    c = _floats(orientation, 6)
    if c is None:
        return None
    return (_f32(c[1] * c[5] - c[2] * c[4]), _f32(c[2] * c[3] - c[0] * c[5]),
            _f32(c[0] * c[4] - c[1] * c[3]))


def _close_to_zero(value: float) -> bool:
    return abs(value) < 10 * _FLOAT_EPSILON


def _parallel_or_opposite(u: Vector, v: Vector) -> bool:
    norms = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(x * x for x in v))
    if _close_to_zero(norms):
        return False
    cosine = sum(a * b for a, b in zip(u, v, strict=True)) / norms
    return _close_to_zero(cosine - 1.0) or _close_to_zero(abs(cosine) - 1.0)


def _unsigned(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


@dataclass
class _Slice:
    public_id: str
    frames: int
    position: list[float] | None
    normal: Vector | None
    index_in_series: int | None

    def along(self, normal: Vector) -> float:
        assert self.position is not None
        p = self.position
        return _f32(_f32(_f32(normal[0] * p[0]) + _f32(normal[1] * p[1])) + _f32(normal[2] * p[2]))


def _slice(index: Index, instance: Resource) -> _Slice:
    tags = index.main_tags(instance.internal_id)
    metadata = index.metadata(instance.internal_id)
    return _Slice(instance.public_id, _unsigned(tags.get(NUMBER_OF_FRAMES)) or 1,
                  _floats(tags.get(IMAGE_POSITION_PATIENT), 3),
                  _normal(tags.get(IMAGE_ORIENTATION_PATIENT)),
                  _unsigned(metadata.get(Metadata.IndexInSeries)))


def _by_position(slices: list[_Slice], normal: Vector | None) -> list[_Slice] | None:
    if normal is None:
        return None
    for s in slices:
        if s.position is None or (s.normal is not None and not _parallel_or_opposite(s.normal, normal)):
            return None
    ordered = sorted(slices, key=lambda s: s.along(normal))
    positions = [s.along(normal) for s in ordered]
    if any(abs(_f32(b - a)) <= 10 * _FLOAT_EPSILON
           for a, b in zip(positions, positions[1:], strict=False)):
        return None  # two slices too close along the normal: not a volume
    return ordered


def _by_index(slices: list[_Slice]) -> list[_Slice] | None:
    if any(s.index_in_series is None for s in slices):
        return None
    return sorted(slices, key=lambda s: s.index_in_series or 0)


def ordered_slices(index: Index, series: Resource) -> dict[str, Any]:
    slices = [_slice(index, i) for i in index.children(series.internal_id)
              if i.level is Level.INSTANCE]
    normal = _normal(index.main_tags(series.internal_id).get(IMAGE_ORIENTATION_PATIENT))
    volume = False
    if len(slices) <= 1:
        ordered: list[_Slice] | None = slices
    else:
        ordered = _by_position(slices, normal)
        volume = ordered is not None
        if ordered is None:
            ordered = _by_index(slices)
    if ordered is None:
        raise OrthancError(CANNOT_ORDER_SLICES,
                           f"Unable to order the slices of series {series.public_id}")
    return {
        "Dicom": [f"/instances/{s.public_id}/file" for s in ordered],
        "Slices": [f"/instances/{s.public_id}/frames/{j}" for s in ordered for j in range(s.frames)],
        "SlicesShort": [[s.public_id, 0, s.frames] for s in ordered],
        "Type": "Volume" if volume else "Sequence",
    }
