"""Orthanc's Lua functions over the database: ``SetStableStatus`` (1.12.9) and the key-value
stores ``StoreKeyValue``, ``GetKeyValue``, ``DeleteKeyValue`` (1.13).

As in Orthanc, bad arguments or a failure are logged and answer nil (no Lua error);
a number given where a string is expected counts as its text, as ``lua_tostring`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from server.errors import OrthancError
from server.key_values import KeyValueStores
from server.stability import StabilityMonitor

log = logging.getLogger("isengard.lua")

Result = tuple[bool, Any]


def _text(value: Any) -> str | None:
    """A Lua string argument (numbers convert), else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


class LuaDatabase:
    def __init__(self, key_values: KeyValueStores, stability: StabilityMonitor) -> None:
        self.key_values = key_values
        self.stability = stability

    def functions(self) -> dict[str, Callable[..., Result]]:
        return {"SetStableStatus": self.set_stable_status, "StoreKeyValue": self.store_key_value,
                "GetKeyValue": self.get_key_value, "DeleteKeyValue": self.delete_key_value}

    def set_stable_status(self, argc: int, resource_id: Any = None, stable: Any = None) -> Result:
        """``SetStableStatus(resourceId, isStable)``: whether the status changed; nil for an
        unknown resource."""
        identifier = _text(resource_id)
        if not 1 <= argc <= 3 or identifier is None or not isinstance(stable, bool):
            log.error("Lua: Bad parameters to SetStableStatus()")
            return True, None
        changed = self.stability.set_stable_status(identifier, stable)
        if changed is None:
            log.error("Lua: Error in SetStableStatus() for Resource: %s", identifier)
        return True, changed

    def store_key_value(self, argc: int, store_id: Any = None, key: Any = None, value: Any = None) -> Result:
        """``StoreKeyValue(storeId, key, value)``: the value as Lua holds it (binary safe)."""
        names = self._strings("StoreKeyValue", argc, 3, store_id, key, value)
        if names is not None:
            raw = value if isinstance(value, bytes) else names[2].encode()
            self._run("StoreKeyValue", names[0], lambda: self.key_values.store(names[0], names[1], raw))
        return True, None

    def get_key_value(self, argc: int, store_id: Any = None, key: Any = None) -> Result:
        """``GetKeyValue(storeId, key)``: the value, nil when the key is absent."""
        names = self._strings("GetKeyValue", argc, 2, store_id, key)
        if names is None:
            return True, None
        return True, self._run("GetKeyValue", names[0], lambda: self.key_values.get(names[0], names[1]))

    def delete_key_value(self, argc: int, store_id: Any = None, key: Any = None) -> Result:
        """``DeleteKeyValue(storeId, key)``."""
        names = self._strings("DeleteKeyValue", argc, 2, store_id, key)
        if names is not None:
            self._run("DeleteKeyValue", names[0], lambda: self.key_values.delete(names[0], names[1]))
        return True, None

    @staticmethod
    def _strings(name: str, argc: int, expected: int, *values: Any) -> list[str] | None:
        """The arguments as text when there are ``expected`` of them, all strings (or numbers)."""
        texts = [_text(value) for value in values]
        if argc != expected or any(text is None for text in texts):
            log.error("Lua: Bad parameters to %s()", name)
            return None
        return [text for text in texts if text is not None]

    @staticmethod
    def _run(name: str, store_id: str, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except OrthancError as error:
            log.error("Lua: %s", error.details or error.description)
            log.error("Lua: Error in %s() for storeId: %s", name, store_id)
            return None
