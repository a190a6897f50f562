"""Orthanc-like logging: line format, verbosity levels and log categories.

Orthanc has three verbosities ("default": warnings and errors, "verbose": adds
information, "trace": everything) that can be set globally or per category
(``--verbose-http``, ``/tools/log-level-http`` ...). Here each category is a set of
Python logger names; any other ``isengard.*`` or ``server.*`` logger belongs to
"generic" through inheritance.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from server.errors import OrthancError

LEVELS = ("default", "verbose", "trace")
CATEGORIES = ("generic", "plugins", "http", "sqlite", "dicom", "jobs", "lua")

_PYTHON_LEVELS = {"default": logging.WARNING, "verbose": logging.INFO, "trace": logging.DEBUG}

_CATEGORY_LOGGERS: dict[str, tuple[str, ...]] = {
    "generic": ("isengard", "server"),
    "plugins": ("isengard.plugins", "server.plugins"),
    "http": ("isengard.http", "server.rest"),
    "sqlite": ("isengard.sqlite", "server.storage"),
    "dicom": ("isengard.dicom", "server.dicom", "server.net"),
    "jobs": ("isengard.jobs", "server.jobs"),
    "lua": ("isengard.lua", "server.lua"),
}

# Libraries whose INFO output is per-request noise that Orthanc does not print in
# verbose mode: they only follow their category when it is at "trace".
_LIBRARY_LOGGERS: dict[str, tuple[str, ...]] = {
    "http": ("tornado",),
    "dicom": ("pynetdicom",),
}

_LETTERS = ((logging.ERROR, "E"), (logging.WARNING, "W"), (logging.INFO, "I"))

_levels: dict[str, str] = dict.fromkeys(CATEGORIES, "default")
_handler: logging.Handler | None = None


class OrthancFormatter(logging.Formatter):
    """``W1122 05:47:49.738438 file.py:123] message``, as Orthanc 1.10.1 prints.

    An :class:`OrthancError` gets no traceback: it is a refusal its message describes
    (pynetdicom logs the exception of a refusing C-MOVE handler with its traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        letter = next((ch for level, ch in _LETTERS if record.levelno >= level), "T")
        moment = datetime.fromtimestamp(record.created)
        text = (
            f"{letter}{moment:%m%d %H:%M:%S.%f} {record.filename}:{record.lineno}] "
            f"{record.getMessage()}"
        )
        if record.exc_info and not isinstance(record.exc_info[1], OrthancError):
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(
    levels: Mapping[str, str] | None = None,
    logfile: str | os.PathLike[str] | None = None,
    logdir: str | os.PathLike[str] | None = None,
) -> Path | None:
    """Install the single log handler and set the category levels.

    Logs go to ``logfile``, else to a timestamped file in ``logdir`` (Orthanc's
    naming), else to stderr. Returns the log file used, if any. Calling it again
    replaces the previous handler, so a restarted server does not log twice.
    """
    global _handler
    target = Path(logfile) if logfile is not None else None
    if target is None and logdir is not None:
        target = _timestamped_log(Path(logdir))
    handler: logging.Handler = (
        logging.FileHandler(target, encoding="utf-8")
        if target is not None
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(OrthancFormatter())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    _handler = handler
    for category in CATEGORIES:
        set_category_log_level(category, (levels or {}).get(category, "default"))
    return target


def _timestamped_log(folder: Path) -> Path:
    if not folder.is_dir():
        raise NotADirectoryError(f"The directory where to store the log files is inexistent: "
                                 f"{folder}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return folder / f"Isengard.log.{stamp}.{os.getpid()}"


def set_log_level(level: str) -> None:
    """Set every category to ``level`` ("default", "verbose" or "trace")."""
    _check_level(level)
    for category in CATEGORIES:
        set_category_log_level(category, level)


def get_log_level() -> str:
    """The global verbosity: that of the "generic" category, as Orthanc reports it."""
    return _levels["generic"]


def set_category_log_level(category: str, level: str) -> None:
    """Set the verbosity of one category; ValueError for unknown names."""
    if category not in CATEGORIES:
        raise ValueError(f"Unknown log category: {category}")
    _check_level(level)
    _levels[category] = level
    for name in _CATEGORY_LOGGERS[category]:
        logging.getLogger(name).setLevel(_PYTHON_LEVELS[level])
    library_level = logging.DEBUG if level == "trace" else logging.WARNING
    for name in _LIBRARY_LOGGERS.get(category, ()):
        logging.getLogger(name).setLevel(library_level)
    if category == "dicom":
        _pynetdicom_debug_output(level == "trace")


def _pynetdicom_debug_output(enabled: bool) -> None:
    """pynetdicom formats its debug lines (every PDU, every message, every C-FIND identifier)
    whatever its logger's level: ~10 % of a C-STORE, a third of a C-FIND answer's encoding.
    Below "trace" they are dropped anyway, so they are not made (its documented switches)."""
    from pynetdicom import _config  # imported here: the logging comes up before the DICOM side

    _config.LOG_HANDLER_LEVEL = "standard" if enabled else "none"
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = enabled


def get_category_log_level(category: str) -> str:
    """The verbosity of one category; ValueError for unknown names."""
    if category not in CATEGORIES:
        raise ValueError(f"Unknown log category: {category}")
    return _levels[category]


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"Unknown log level: {level} (expected one of {', '.join(LEVELS)})")
