"""The stored DICOM files, as the services that read them back see them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.config import Configuration
    from server.storage.index import Index
    from server.store import Store


@dataclass(frozen=True)
class InstanceFiles:
    """What the services reading stored instances use (tags, images, reconstruction, bulk)."""

    config: Configuration
    index: Index
    store: Store
    #: The current ``DefaultEncoding`` (``PUT /tools/default-encoding`` changes it at run time).
    encoding: Callable[[], str]

    @property
    def default_encoding(self) -> str:
        return self.encoding()
