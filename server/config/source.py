"""Reading configuration files the way Orthanc does.

Orthanc accepts JSON with ``//`` and ``/* */`` comments (jsoncpp), replaces
``${VAR}`` references with environment variables before parsing, and accepts a
folder whose JSON files are merged key by key. Isengard also reads YAML files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.config.error import ConfigError

#: Extensions read when a folder is given (compared case-insensitively).
JSON_SUFFIXES = frozenset({".json"})
YAML_SUFFIXES = frozenset({".yml", ".yaml"})

# The name cannot contain ":" or "}"; the default is double-quoted, single-quoted or
# bare. A default that matches none of these (e.g. starting with a backslash) leaves
# the reference untouched, as Orthanc 1.10.1 does (verified).
_VARIABLE = re.compile(
    r"""\$\{(?P<name>[^:}]*)(?::-(?:"(?P<dq>[^"}]*)"|'(?P<sq>[^'}]*)'|(?P<bare>[^"'}]*)))?\}"""
)
_STRING_OR_COMMENT = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_STRING_OR_TRAILING_COMMA = re.compile(r'"(?:\\.|[^"\\])*"|,(?=\s*[}\]])')
_NOT_NEWLINE = re.compile(r"[^\n]")


def substitute_environment(text: str, environment: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` references.

    A defined variable wins even when empty (Orthanc's rule, unlike the shell's);
    an undefined one without default becomes the empty string.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name in environment:
            return environment[name]
        for group in ("dq", "sq", "bare"):
            if match.group(group) is not None:
                return match.group(group)
        return ""

    return _VARIABLE.sub(replace, text)


def strip_comments(text: str) -> str:
    """Blank out comments and trailing commas, leaving strings untouched.

    Comments are replaced by spaces (newlines kept) so that the line and column of
    a JSON syntax error still point into the user's file. Trailing commas are
    dropped because jsoncpp, hence Orthanc, accepts them in objects.
    """

    def blank_comment(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if token.startswith('"') else _NOT_NEWLINE.sub(" ", token)

    def blank_comma(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if token.startswith('"') else " "

    without_comments = _STRING_OR_COMMENT.sub(blank_comment, text)
    return _STRING_OR_TRAILING_COMMA.sub(blank_comma, without_comments)


def parse_text(text: str, path: Path) -> dict[str, Any]:
    """Parse one file's text (already substituted) into its top-level object."""
    if path.suffix.lower() in YAML_SUFFIXES:
        document = _parse_yaml(text, path)
    else:
        document = _parse_json(text, path)
    if not isinstance(document, dict):
        raise ConfigError(
            f"The configuration file does not follow the JSON syntax: {path} "
            f"(the document must be an object, found {_json_kind(document)})"
        )
    for key in document:
        if not isinstance(key, str):
            raise ConfigError(
                f"The configuration file {path} has a non-string top-level key: {key!r}"
            )
    return document


def _json_kind(value: Any) -> str:
    """Name a parsed value's type the way a JSON user thinks of it."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(strip_comments(text))
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"The configuration file does not follow the JSON syntax: {path} "
            f"({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml  # type: ignore[import-untyped]  # here: ~10 ms to import, for the YAML configurations only

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = ""
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ConfigError(
            f"The configuration file is not valid YAML: {path} ({problem}{where})"
        ) from None
    return {} if document is None else document


def read_file(path: Path, environment: Mapping[str, str]) -> dict[str, Any]:
    """Read, substitute and parse one configuration file."""
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise ConfigError(
            f"Cannot read the configuration file {path}: {error.strerror}"
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"The configuration file {path} is not UTF-8 (byte {error.start})"
        ) from None
    return parse_text(substitute_environment(raw, environment), path)


def folder_files(folder: Path) -> list[Path]:
    """The configuration files directly inside ``folder``, in a stable order."""
    suffixes = JSON_SUFFIXES | YAML_SUFFIXES
    return sorted(
        entry for entry in folder.iterdir()
        if entry.is_file() and entry.suffix.lower() in suffixes
    )


def read_path(
    path: Path, environment: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read a file or a folder; also return the file each top-level key came from.

    In a folder the top-level keys of all files are merged and the same key in two
    files is fatal: Orthanc does no deep merge, and silently picking one would hide
    a mistake.
    """
    if not path.exists():
        raise ConfigError(f"Inexistent path to configuration: {path}")
    files = folder_files(path) if path.is_dir() else [path]
    merged: dict[str, Any] = {}
    origins: dict[str, Path] = {}
    for file in files:
        for key, value in read_file(file, environment).items():
            if key in origins:
                raise ConfigError(
                    f'The configuration section "{key}" is defined in 2 different '
                    f"configuration files: {origins[key]} and {file}"
                )
            merged[key] = value
            origins[key] = file
    return merged, origins
