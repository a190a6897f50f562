"""The configuration schema: defaults, validation and readable error messages.

``schemas/config.schema.json`` is the one place where options are declared. Besides
standard JSON Schema it uses three annotations: ``x-section`` (grouping in the
sample configuration), ``x-default-from`` (an option whose default is another
option's value) and ``x-expected`` (how to word "expected ..." in error messages).
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.config.error import ConfigError
from server.config.quick_check import surely_valid

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.json"

#: Top-level sections read by Orthanc plugins; accepted silently when they are objects.
PLUGIN_SECTIONS = frozenset({
    "Authorization", "AwsS3Storage", "AzureBlobStorage", "DicomWeb", "Gdcm",
    "GoogleCloudStorage", "Housekeeper", "MySQL", "Odbc", "OrthancExplorer2",
    "PostgreSQL", "ServeFolders", "StoneWebViewer", "Transfers", "WebViewer", "Worklists",
})

_SHOWN_VALUE_LENGTH = 80


@functools.cache
def _schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as stream:
        loaded: dict[str, Any] = json.load(stream)
    return loaded


@functools.cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # here: ~50 ms to import, for invalid configurations

    return Draft202012Validator(_schema())


def schema() -> dict[str, Any]:
    """A copy of the parsed schema, safe for the caller to modify."""
    return copy.deepcopy(_schema())


def options() -> dict[str, dict[str, Any]]:
    """The declared options (schema properties) in declaration order; do not modify."""
    properties: dict[str, dict[str, Any]] = _schema()["properties"]
    return properties


def effective_values(user: Mapping[str, Any]) -> dict[str, Any]:
    """The user's values over the declared defaults, every declared option present.

    An option without default and without ``x-default-from`` is ``None`` when the
    user did not set it: for those, "unset" means something of its own.
    """
    values: dict[str, Any] = {}
    for name, declaration in options().items():
        values[name] = copy.deepcopy(declaration.get("default"))
    values.update(copy.deepcopy(dict(user)))
    for name, declaration in options().items():
        source = declaration.get("x-default-from")
        if source is not None and name not in user:
            values[name] = values[source]
    return values


def validate(user: Mapping[str, Any], origins: Mapping[str, Path]) -> None:
    """Raise a one-line `ConfigError` for the first invalid known option."""
    if surely_valid(dict(user), _schema()):
        return
    errors = sorted(_validator().iter_errors(dict(user)), key=_sort_key)
    if errors:
        error = _innermost(errors[0])
        origin = origins.get(str(error.absolute_path[0])) if error.absolute_path else None
        where = f" in {origin}" if origin is not None else ""
        raise ConfigError(f"Invalid configuration{where}: {_describe(error)}")


def unknown_key_warnings(user: Mapping[str, Any], origins: Mapping[str, Path]) -> list[str]:
    """One warning per unknown top-level key, suggesting a close declared name."""
    known = options()
    by_lower = {name.lower(): name for name in known}
    warnings = []
    for key, value in user.items():
        if key in known or (key in PLUGIN_SECTIONS and isinstance(value, dict)):
            continue
        message = f'Unknown configuration option "{key}"'
        if key in origins:
            message += f" in {origins[key]}"
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1)
        if close:
            message += f'; did you mean "{by_lower[close[0]]}"?'
        warnings.append(message)
    return warnings


def _sort_key(error: ValidationError) -> tuple[str, ...]:
    return tuple(str(part) for part in error.absolute_path)


def _innermost(error: ValidationError) -> ValidationError:
    """Follow ``oneOf``/``anyOf`` into the branch the value was obviously meant for.

    A container (object or array) matching the type of exactly one branch is
    reported inside that branch ("Port" of the object form, say); otherwise the
    alternatives as a whole are what was expected.
    """
    while error.validator in ("oneOf", "anyOf") and isinstance(error.instance, dict | list):
        branches = error.validator_value
        candidates = [
            index for index, branch in enumerate(branches)
            if _type_accepts(branch, error.instance)
        ]
        if len(candidates) != 1:
            return error
        inner = [
            child for child in error.context or []
            if child.relative_schema_path and child.relative_schema_path[0] == candidates[0]
        ]
        if not inner:
            return error
        error = sorted(inner, key=_sort_key)[0]
    return error


def _type_accepts(branch: Mapping[str, Any], instance: Any) -> bool:
    declared = branch.get("type")
    if declared is None:
        return True
    types = declared if isinstance(declared, list) else [declared]
    return any(_validator().is_type(instance, name) for name in types)


def _describe(error: ValidationError) -> str:
    key = _key_path(error.absolute_path)
    if error.validator == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        declaration = error.schema.get("properties", {}).get(missing, {})
        child = f"{key}.{missing}" if key else missing
        return f'"{child}" is missing, expected {_expected(declaration)}'
    if "propertyNames" in error.absolute_schema_path:
        return (
            f'"{key}" has an entry named {_show(error.instance)}, '
            f"expected {_expected(error.schema)}"
        )
    return f'"{key}" is {_show(error.instance)}, expected {_expected(error.schema)}'


def _key_path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > _SHOWN_VALUE_LENGTH:
        text = text[: _SHOWN_VALUE_LENGTH - 3] + "..."
    return text


def _expected(declaration: Mapping[str, Any]) -> str:
    """Word what a (sub)schema accepts, for the "expected ..." part of messages."""
    declaration = _resolve(declaration)
    if "x-expected" in declaration:
        return str(declaration["x-expected"])
    if "enum" in declaration:
        return "one of " + ", ".join(json.dumps(value) for value in declaration["enum"])
    for alternatives in ("anyOf", "oneOf"):
        if alternatives in declaration:
            return " or ".join(_expected(branch) for branch in declaration[alternatives])
    kind = declaration.get("type")
    if kind in ("integer", "number"):
        return _expected_number(kind, declaration)
    if kind == "string":
        return _expected_string(declaration)
    return {
        "boolean": "true or false",
        "array": "an array",
        "object": "an object",
    }.get(str(kind), "a valid value")


def _resolve(declaration: Mapping[str, Any]) -> Mapping[str, Any]:
    """Inline a local ``$ref`` ("#/$defs/name"), keeping the referring keywords."""
    reference = declaration.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/$defs/"):
        return declaration
    target = _schema()["$defs"][reference.removeprefix("#/$defs/")]
    return {**target, **{k: v for k, v in declaration.items() if k != "$ref"}}


def _expected_number(kind: str, declaration: Mapping[str, Any]) -> str:
    noun = "an integer" if kind == "integer" else "a number"
    low, high = declaration.get("minimum"), declaration.get("maximum")
    if low is not None and high is not None:
        return f"{noun} between {low} and {high}"
    if low is not None:
        return f"{noun} >= {low}"
    if high is not None:
        return f"{noun} <= {high}"
    return noun


def _expected_string(declaration: Mapping[str, Any]) -> str:
    shortest, longest = declaration.get("minLength"), declaration.get("maxLength")
    if shortest and longest:
        return f"a string of {shortest} to {longest} characters"
    if longest is not None:
        return f"a string of at most {longest} characters"
    if shortest:
        return "a non-empty string"
    return "a string"
