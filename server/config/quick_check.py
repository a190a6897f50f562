"""A quick check of a configuration against the schema, without importing jsonschema.

Importing jsonschema takes ~50 ms, a tenth of Isengard's start-up, to validate a handful of
options.  Most configurations are valid: this module confirms that with the keywords
``schemas/config.schema.json`` uses, and :mod:`server.config.validation` runs jsonschema
only when it cannot (an error to explain, or a keyword it does not know).  It is sound
rather than complete: it says "valid" only where jsonschema (Draft 2020-12) would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

#: Keywords that do not constrain the value.
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description", "default", "examples",
                          "x-section", "x-expected", "x-default-from"})

#: Types as JSON Schema sees them: a boolean is no number, an integral float is an integer.
_TYPES: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
}


def surely_valid(instance: Any, schema: Mapping[str, Any]) -> bool:
    """True when ``instance`` is valid against ``schema``, a root schema with local ``$defs``;
    False when it is not, or when this check cannot tell."""
    return _Checker(schema).check(instance, schema) is True


class _Checker:
    """Each check answers True (valid), False (invalid) or None (cannot tell)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def check(self, instance: Any, schema: Any) -> bool | None:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            return None
        verdict: bool | None = True
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            method = _KEYWORDS.get(keyword)
            result = method(self, instance, value, schema) if method is not None else None
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    def _all(self, checks: Any) -> bool | None:
        verdict: bool | None = True
        for result in checks:
            if result is False:
                return False
            if result is None:
                verdict = None
        return verdict

    def _ref(self, instance: Any, reference: Any, _: Any) -> bool | None:
        if not isinstance(reference, str) or not reference.startswith("#/$defs/"):
            return None
        target = self.root.get("$defs", {}).get(reference.removeprefix("#/$defs/"))
        return None if target is None else self.check(instance, target)

    def _type(self, instance: Any, declared: Any, _: Any) -> bool | None:
        names = declared if isinstance(declared, list) else [declared]
        if not all(name in _TYPES for name in names):
            return None
        return any(_TYPES[name](instance) for name in names)

    def _enum(self, instance: Any, values: Any, _: Any) -> bool | None:
        """Found among the values of its own type, else unknown (jsonschema's equality,
        between 1 and 1.0 or inside containers, is not Python's)."""
        if isinstance(instance, str | bool | int | float) and any(
                type(value) is type(instance) and value == instance for value in values):
            return True
        return None

    def _minimum(self, instance: Any, low: Any, _: Any) -> bool | None:
        return not _TYPES["number"](instance) or instance >= low

    def _maximum(self, instance: Any, high: Any, _: Any) -> bool | None:
        return not _TYPES["number"](instance) or instance <= high

    def _minLength(self, instance: Any, low: Any, _: Any) -> bool | None:
        return not isinstance(instance, str) or len(instance) >= low

    def _maxLength(self, instance: Any, high: Any, _: Any) -> bool | None:
        return not isinstance(instance, str) or len(instance) <= high

    def _pattern(self, instance: Any, pattern: Any, _: Any) -> bool | None:
        return not isinstance(instance, str) or re.search(pattern, instance) is not None

    def _minItems(self, instance: Any, low: Any, _: Any) -> bool | None:
        return not isinstance(instance, list) or len(instance) >= low

    def _maxItems(self, instance: Any, high: Any, _: Any) -> bool | None:
        return not isinstance(instance, list) or len(instance) <= high

    def _prefixItems(self, instance: Any, schemas: Any, _: Any) -> bool | None:
        if not isinstance(instance, list):
            return True
        return self._all(self.check(item, schema) for item, schema in zip(instance, schemas, strict=False))

    def _items(self, instance: Any, schema: Any, parent: Any) -> bool | None:
        if not isinstance(instance, list):
            return True
        rest = instance[len(parent.get("prefixItems", [])):]
        return self._all(self.check(item, schema) for item in rest)

    def _required(self, instance: Any, names: Any, _: Any) -> bool | None:
        return not isinstance(instance, dict) or all(name in instance for name in names)

    def _properties(self, instance: Any, schemas: Any, _: Any) -> bool | None:
        if not isinstance(instance, dict):
            return True
        return self._all(self.check(value, schemas[key]) for key, value in instance.items() if key in schemas)

    def _additionalProperties(self, instance: Any, schema: Any, parent: Any) -> bool | None:
        if not isinstance(instance, dict):
            return True
        if "patternProperties" in parent:
            return None
        declared = parent.get("properties", {})
        return self._all(self.check(value, schema) for key, value in instance.items() if key not in declared)

    def _propertyNames(self, instance: Any, schema: Any, _: Any) -> bool | None:
        if not isinstance(instance, dict):
            return True
        return self._all(self.check(key, schema) for key in instance)

    def _anyOf(self, instance: Any, branches: Any, _: Any) -> bool | None:
        results = [self.check(instance, branch) for branch in branches]
        if True in results:
            return True
        return None if None in results else False

    def _oneOf(self, instance: Any, branches: Any, _: Any) -> bool | None:
        results = [self.check(instance, branch) for branch in branches]
        if None in results:
            return None
        return results.count(True) == 1


_KEYWORDS: dict[str, Callable[[_Checker, Any, Any, Any], bool | None]] = {
    "$ref": _Checker._ref, "type": _Checker._type, "enum": _Checker._enum,
    "minimum": _Checker._minimum, "maximum": _Checker._maximum,
    "minLength": _Checker._minLength, "maxLength": _Checker._maxLength, "pattern": _Checker._pattern,
    "minItems": _Checker._minItems, "maxItems": _Checker._maxItems,
    "prefixItems": _Checker._prefixItems, "items": _Checker._items,
    "required": _Checker._required, "properties": _Checker._properties,
    "additionalProperties": _Checker._additionalProperties, "propertyNames": _Checker._propertyNames,
    "anyOf": _Checker._anyOf, "oneOf": _Checker._oneOf,
}
