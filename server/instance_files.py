"""The stored DICOM files, as the services that read them back see them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.decoded_cache import DecodedCache
from server.dicom.charset import FollowsDefaultEncoding

if TYPE_CHECKING:
    from server.config import Configuration
    from server.storage.index import Index
    from server.store import Store


@dataclass(frozen=True)
class InstanceFiles(FollowsDefaultEncoding):
    """What the services reading stored instances use (tags, images, reconstruction, bulk)."""

    config: Configuration
    index: Index
    store: Store
    #: The current ``DefaultEncoding`` (``PUT /tools/default-encoding`` changes it at run time).
    encoding: Callable[[], str]
    #: Parsed files, decoded frames and tags documents (:mod:`server.decoded_cache`).
    decoded: DecodedCache = field(default_factory=DecodedCache, compare=False)

    @property
    def cache_budget(self) -> int:
        """The bytes :attr:`decoded` may hold: ``MaximumStorageCacheSize`` (MB; 0 disables it)."""
        return max(0, int(self.config.get("MaximumStorageCacheSize", 128))) * 1024 * 1024
