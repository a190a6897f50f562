"""The storage commitment SCP lookup written in Lua: the seed's factory / lookup / destructor.

A script defines ``StorageCommitmentFactory(jobId, transactionUid, sopClassUids,
sopInstanceUids, remoteAet, calledAet)`` returning a handler (any Lua value; nil
lets the default lookup answer), ``StorageCommitmentLookup(handler, sopClassUid,
sopInstanceUid)`` returning a failure reason (name or number), and optionally
``StorageCommitmentDestructor(handler)``, which the job calls exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.scripting.lua_json import text

if TYPE_CHECKING:
    from server.scripting.lua import LuaScripting

FACTORY = "StorageCommitmentFactory"
LOOKUP = "StorageCommitmentLookup"
DESTRUCTOR = "StorageCommitmentDestructor"


@dataclass
class _Handler:
    """Wraps the script's handler, which may itself be ``false`` or any Lua value."""

    value: Any


class LuaCommitmentProvider:
    """A :class:`server.net.storage_commitment.LookupProvider` backed by the main Lua state."""

    def __init__(self, lua: LuaScripting) -> None:
        self.lua = lua

    def create(self, job_id: str, transaction_uid: str, sop_classes: list[str], sop_instances: list[str],
               remote_aet: str, called_aet: str) -> _Handler | None:
        defined, value = self.lua.main.call(FACTORY, job_id, transaction_uid, sop_classes, sop_instances,
                                            remote_aet, called_aet)
        return _Handler(value) if defined and value is not None else None

    def lookup(self, handler: _Handler, sop_class: str, sop_instance: str) -> Any:
        defined, value = self.lua.main.call(LOOKUP, handler.value, sop_class, sop_instance)
        if not defined:
            raise ValueError(f"{FACTORY} returned a handler but {LOOKUP} is not defined")
        return text(value) if isinstance(value, bytes) else value

    def destroy(self, handler: _Handler) -> None:
        self.lua.main.call(DESTRUCTOR, handler.value)
