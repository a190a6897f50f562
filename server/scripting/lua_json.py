"""JSON <-> Lua values, with Orthanc's conversion rules (``LuaContext::PushJson/GetJson``).

Lua strings arrive as ``bytes`` (the runtime is created without an encoding, so
binary bodies survive) and every value handed to Lua is a plain Lua value: no
Python object ever reaches Lua code.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from typing import Any

from lupa import lua53

log = logging.getLogger("isengard.lua")

_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1


def to_lua(runtime: lua53.LuaRuntime, value: Any) -> Any:
    """A JSON-like Python value as a Lua value; numbers become Lua floats, as in Orthanc.

    ``None`` becomes nil, so null members of objects and arrays are absent from the table;
    a value that already lives in Lua (a handler a script returned) is passed back as is.
    """
    if value is None or isinstance(value, (bool, bytes)) or lua53.lua_type(value) is not None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return runtime.table_from({to_lua(runtime, str(k)): to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    raise TypeError(f"Cannot hand a {type(value).__name__} to Lua")


def text(value: Any) -> str:
    """A Lua string argument as Python text (invalid UTF-8 is kept, escaped)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


class JsonReader:
    """Lua values -> JSON, exactly as Orthanc's ``GetJson`` (``DumpJson``, returned tables).

    ``tonumber``/``tostring`` are the state's own Lua functions, so that numeric
    strings and number keys convert as Lua itself converts them.
    """

    def __init__(self, tonumber: Callable[[Any], Any], tostring: Callable[[Any], bytes]) -> None:
        self._tonumber = tonumber
        self._tostring = tostring

    def read(self, value: Any, keep_strings: bool) -> Any:
        if lua53.lua_type(value) == "table":
            return self._table(value, keep_strings)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return text(self._tostring(value)) if keep_strings else _number(float(value))
        if isinstance(value, bytes):
            number = None if keep_strings else self._tonumber(value)
            return text(value) if number is None else _number(float(number))
        log.warning("Unsupported Lua type when returning Json")
        return None

    def _table(self, table: Any, keep_strings: bool) -> Any:
        members: dict[str, Any] = {}
        is_array = True
        for count, (key, item) in enumerate(table.items(), start=1):
            name = text(key) if isinstance(key, bytes) else text(self._tostring(key))
            members[name] = self.read(item, keep_strings)
            if not (name.isascii() and name.isdigit() and int(name) == count):
                is_array = False
        if is_array:
            return list(members.values())
        return members


def _number(value: float) -> int | float:
    """Orthanc keeps a number as an integer when it truncates to a C ``int`` without loss."""
    if math.isfinite(value) and _INT_MIN <= value <= _INT_MAX and \
            abs(value - int(value)) <= sys.float_info.epsilon:
        return int(value)
    return value


def dump(value: Any) -> str:
    """Compact JSON as jsoncpp's writer emits it (sorted keys, ``%.17g`` doubles, ASCII)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _double(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True).replace("\\u007f", "\x7f")
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return "{" + ",".join(f"{dump(k)}:{dump(value[k])}" for k in sorted(value)) + "}"


def _double(value: float) -> str:
    if math.isnan(value):
        return "null"
    if math.isinf(value):
        return "1e+9999" if value > 0 else "-1e+9999"
    written = f"{value:.17g}"
    if "." not in written and "e" not in written:
        written += ".0"
    return written
