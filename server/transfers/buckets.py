"""The wire format of the transfers accelerator, and how instances are cut into buckets.

Everything here is what the Transfers plugin exchanges, so that a real Orthanc with the
plugin can talk to Isengard: an instance is ``{"ID", "Size", "MD5"}`` and a bucket a list
of ``{"ID", "Offset", "Size"}`` chunks, numbers as strings; compression is ``"gzip"`` or
``"none"``.  Instances smaller than the bucket size are grouped (fewer HTTP round trips),
those past twice the bucket size are split (parallel requests, bounded memory).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from server.errors import ErrorCode, OrthancError

COMPRESSIONS = ("gzip", "none")
#: A pull bucket's URL stays under this length (with room for one more identifier), as in the
#: plugin: "URLs under 2000 characters work in virtually any client and server".
MAX_URL_LENGTH = 2000 - 44


def bad_format(details: str | None = None) -> OrthancError:
    return OrthancError(ErrorCode.BAD_FILE_FORMAT, details)


def compression_of(value: Any) -> str:
    """A ``Compression`` field; Orthanc's 400 for anything but gzip or none."""
    if value not in COMPRESSIONS:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           f'Valid compression methods are "gzip" and "none", but found: {value}')
    return str(value)


def _size(value: Any) -> int:
    """A size or offset as the plugin writes it: a decimal string."""
    if not isinstance(value, str) or not value.isdigit():
        raise bad_format()
    return int(value)


def _string(item: Any, key: str) -> str:
    if not isinstance(item, dict) or not isinstance(item.get(key), str):
        raise bad_format()
    value: str = item[key]
    return value


@dataclass(frozen=True)
class InstanceInfo:
    """One instance to transfer: its Orthanc ID, file size and MD5 (hexadecimal)."""

    id: str
    size: int
    md5: str

    def to_json(self) -> dict[str, str]:
        return {"ID": self.id, "Size": str(self.size), "MD5": self.md5}

    @classmethod
    def from_json(cls, item: Any) -> InstanceInfo:
        return cls(_string(item, "ID"), _size(_string(item, "Size")), _string(item, "MD5"))


@dataclass(frozen=True)
class Chunk:
    """``size`` bytes of an instance's file from ``offset``."""

    instance: str
    offset: int
    size: int


@dataclass
class Bucket:
    """What one HTTP request carries: whole small instances, or a piece of a large one."""

    chunks: list[Chunk] = field(default_factory=list)

    @property
    def total_size(self) -> int:
        return sum(chunk.size for chunk in self.chunks)

    def to_json(self) -> list[dict[str, str]]:
        return [{"ID": c.instance, "Offset": str(c.offset), "Size": str(c.size)} for c in self.chunks]

    @classmethod
    def from_json(cls, items: Any) -> Bucket:
        if not isinstance(items, list):
            raise bad_format()
        return cls([Chunk(_string(i, "ID"), _size(_string(i, "Offset")), _size(_string(i, "Size")))
                    for i in items])

    def pull_uri(self, compression: str) -> str:
        """``/transfers/chunks/{id}.{id}...?offset=&size=&compression=``: only the first chunk
        may start past 0; the size runs on across the following instances."""
        ids = ".".join(chunk.instance for chunk in self.chunks)
        return (f"/transfers/chunks/{ids}?offset={self.chunks[0].offset}&size={self.total_size}"
                f"&compression={compression}")


def compute_buckets(instances: Iterable[InstanceInfo], bucket_size: int, base_url: str = "",
                    compression: str = "none") -> list[Bucket]:
    """The plugin's schedule: instances below ``bucket_size`` grouped until a bucket reaches it
    (or, when pulling from ``base_url``, until its URL would get too long); those up to twice
    the size alone; larger ones split into equal chunks of at most twice the size."""
    group, separate = bucket_size, 2 * bucket_size
    buckets: list[Bucket] = []
    small: list[InstanceInfo] = []
    for info in sorted(instances, key=lambda i: i.id):
        if info.size < group:
            small.append(info)
        elif info.size < separate:
            buckets.append(Bucket([Chunk(info.id, 0, info.size)]))
        else:
            count = -(-info.size // separate)
            piece = info.size // count
            for i in range(count):
                offset = i * piece
                size = info.size - offset if i == count - 1 else piece
                buckets.append(Bucket([Chunk(info.id, offset, size)]))
    current = Bucket()
    for info in small:
        if info.size > 0:
            current.chunks.append(Chunk(info.id, 0, info.size))
        full = current.total_size >= group
        if not full and base_url and current.chunks:
            full = len(base_url.rstrip("/") + current.pull_uri(compression)) >= MAX_URL_LENGTH
        if full:
            buckets.append(current)
            current = Bucket()
    if current.chunks:
        buckets.append(current)
    return buckets


def pack(data: bytes, compression: str) -> bytes:
    """A bucket's body as sent: gzip (level 6, quick) or as is."""
    return gzip.compress(data, compresslevel=6) if compression == "gzip" else data


def unpack(data: bytes, compression: str) -> bytes:
    """A received bucket's bytes; a bad gzip stream is Orthanc's bad file format."""
    if compression != "gzip":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        raise bad_format("Bad gzip stream in a transferred bucket") from None
