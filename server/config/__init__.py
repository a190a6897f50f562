"""Loading and validating the configuration (Orthanc-compatible).

``load_configuration`` reads a JSON-with-comments file, a YAML file or a folder of
such files, validates it against ``schemas/config.schema.json`` and returns a
`Configuration` whose ``values`` hold every declared option (user value or
default), so that the rest of the server never repeats a default.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.config.error import ConfigError
from server.config.sample import default_configuration_text
from server.config.source import read_path
from server.config.validation import effective_values, schema, unknown_key_warnings, validate

__all__ = [
    "ConfigError",
    "Configuration",
    "default_configuration_text",
    "load_configuration",
    "schema",
]

logger = logging.getLogger("isengard.config")


@dataclass
class Configuration:
    """A loaded, validated configuration.

    ``user_values`` is exactly what the user wrote (after ``${VAR}`` substitution),
    which is what Orthanc exposes to Lua's ``GetOrthancConfiguration()``; ``values``
    adds the defaults.
    """

    path: Path | None
    base_dir: Path
    values: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    user_values: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The effective value of ``key``, or ``default`` if neither set nor declared."""
        return self.values.get(key, default)

    def resolve_path(self, value: str) -> Path:
        """Resolve a path option: Orthanc makes relative paths start at ``base_dir``."""
        return self.base_dir / Path(value).expanduser()

    def user_value(self, key: str) -> Any | None:
        """What the user wrote for ``key``, or None when the default applies."""
        return self.user_values.get(key)


def load_configuration(path: str | os.PathLike[str] | None) -> Configuration:
    """Load the configuration file or folder at ``path`` (None: all defaults).

    Raises `ConfigError` for a missing path, a syntax error, the same key in two
    files of a folder, or an invalid value; unknown top-level keys only warn.
    """
    if path is None:
        return Configuration(
            path=None, base_dir=Path.cwd(), values=effective_values({}),
        )
    location = Path(path)
    logger.info("Reading the configuration from: %s", location)
    user, origins = read_path(location, os.environ)
    validate(user, origins)
    warnings = unknown_key_warnings(user, origins)
    for warning in warnings:
        logger.warning("%s", warning)
    folder = location if location.is_dir() else location.parent
    return Configuration(
        path=location,
        base_dir=folder.resolve(),
        values=effective_values(user),
        warnings=warnings,
        user_values=user,
    )
