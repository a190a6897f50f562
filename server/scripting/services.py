"""What the scripting engines (Lua, Python) use of the server.

Scripts reach most of Orthanc's API (their REST calls, events, filters, the index,
the network), so the engines take these services together rather than one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.dicom.charset import FollowsDefaultEncoding

if TYPE_CHECKING:
    from server.config import Configuration
    from server.events import EventBus
    from server.find import Finder
    from server.jobs.engine import JobsEngine
    from server.jobs.modification import ModificationServices
    from server.key_values import KeyValueStores
    from server.metrics import Metrics
    from server.net.service import NetworkService
    from server.net.storage_commitment import CommitmentService
    from server.rest.inprocess import InProcessRest
    from server.rest.metadata import MetadataNames
    from server.stability import StabilityMonitor
    from server.storage.index import Index
    from server.store import Store


@dataclass(frozen=True)
class ScriptingServices(FollowsDefaultEncoding):
    """The services of the scripting engines, built once by the composition root."""

    config: Configuration
    bus: EventBus
    index: Index
    store: Store
    finder: Finder
    metrics: Metrics
    metadata_names: MetadataNames
    network: NetworkService
    #: Where the scripts' storage commitment lookups go.
    commitment: CommitmentService
    #: For Lua's ``ModifyInstance``.
    modification: ModificationServices
    #: The server's own REST API (``RestApiGet``...), served once the server runs.
    rest: InProcessRest
    http_port: int
    #: The current ``DefaultEncoding`` (``PUT /tools/default-encoding`` changes it at run time).
    encoding: Callable[[], str]
    #: ``SetStableStatus``.
    stability: StabilityMonitor
    #: ``StoreKeyValue``, ``EnqueueValue``... (kept in the index).
    key_values: KeyValueStores
    #: Where the scripts' own jobs go (``orthanc.CreateJob``), and their unserializers.
    jobs: JobsEngine
