"""Command line, compatible with Orthanc's: ``python -m server [OPTION]... [CONFIGURATION]``.

Options are processed left to right, as Orthanc does: informational options
(``--help``, ``--version``, ``--errors``, ``--config``, ``--openapi``,
``--cheatsheet``) act and exit as soon as they are read, and a later ``--verbose``
overrides earlier per-category settings. Unlike Orthanc, an unknown option is a
usage error (exit status 2) rather than a log line that is easy to miss.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import server
from server.config import ConfigError, default_configuration_text, load_configuration
from server.errors import DESCRIPTIONS
from server.logging_setup import CATEGORIES, configure_logging

PROGRAM = "isengard"
USAGE_ERROR = 2

logger = logging.getLogger("isengard")

_CATEGORY_HELP = "".join(
    f'  --verbose-{c}\tbe verbose in logs of category "{c}"\n'
    f'  --trace-{c}\tuse highest verbosity for logs of category "{c}"\n'
    for c in CATEGORIES
)

HELP = f"""\
Usage: {PROGRAM} [OPTION]... [CONFIGURATION]
Isengard, an Orthanc-compatible DICOM server written in Python.

The "CONFIGURATION" argument can be a single file or a directory. A file is JSON
(with comments) or YAML (".yml"/".yaml"). In the case of a directory, all the
JSON and YAML files it contains are merged. If no configuration path is given on
the command line, a set of default parameters is used.

Pay attention to the fact that the order of the options is important.
Options are read left to right. In particular, options such as "--verbose" can
reset the value of other log-related options that were read before.

The recommended set of options to debug DICOM communications is
"--verbose --trace-dicom --logfile=dicom.log"

Command-line options:
  --help\t\tdisplay this help and exit
  --logdir=[dir]\tdirectory where to store the log files
\t\t\t(by default, the log is dumped to stderr)
  --logfile=[file]\tfile where to store the log of Isengard
\t\t\t(by default, the log is dumped to stderr)
  --config=[file]\tcreate a sample configuration file and exit
\t\t\t(if "file" is "-", dumps to stdout)
  --errors\t\tprint the supported error codes and exit
  --verbose\t\tbe verbose in logs
  --trace\t\thighest verbosity in logs (for debug)
  --upgrade\t\tallow Isengard to upgrade the version of the
\t\t\tdatabase (beware that the database will become
\t\t\tincompatible with former versions)
  --no-jobs\t\tdon't restart the jobs that were stored during
\t\t\tthe last execution
  --openapi=[file]\twrite the OpenAPI documentation and exit
\t\t\t(if "file" is "-", dumps to stdout)
  --cheatsheet=[file]\twrite the cheat sheet of REST API as CSV
\t\t\tand exit (if "file" is "-", dumps to stdout)
  --version\t\toutput version information and exit

Fine-tuning of log categories:
{_CATEGORY_HELP}
Exit status:
  0\tif success,
  1\tif error (have a look at the logs),
  2\tif the command line is invalid.
"""


class UsageError(Exception):
    """A malformed command line; the message is shown with a hint to use --help."""


@dataclass
class Options:
    """What the command line asks for, once every argument has been read."""

    configuration: str | None = None
    levels: dict[str, str] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, "default"))
    logfile: str | None = None
    logdir: str | None = None
    no_jobs: bool = False


def _print_version(_: Options) -> int:
    print(f"Isengard {server.__version__} (Orthanc API {server.ORTHANC_VERSION})")
    print("Licensing GPLv3+: GNU GPL version 3 or later <http://gnu.org/licenses/gpl.html>.")
    return 0


def _print_help(_: Options) -> int:
    print(HELP, end="")
    return 0


def _print_errors(_: Options) -> int:
    """The table of error codes, laid out as ``Orthanc --errors`` does."""
    print(f"Isengard {server.__version__}")
    print("Isengard, an Orthanc-compatible DICOM server written in Python.")
    print()
    print("List of error codes that could be returned by Isengard:")
    print()
    for code in sorted(DESCRIPTIONS):
        print(f"{code:>16}   {DESCRIPTIONS[code]}")
    print()
    return 0


def _set_all_levels(level: str) -> Callable[[Options], None]:
    def apply(options: Options) -> None:
        options.levels = dict.fromkeys(CATEGORIES, level)

    return apply


def _set_category_level(category: str, level: str) -> Callable[[Options], None]:
    def apply(options: Options) -> None:
        options.levels[category] = level

    return apply


def _accept_upgrade(_: Options) -> None:
    """``--upgrade`` is accepted as Orthanc's: there is no older index schema to upgrade."""


def _disable_jobs(options: Options) -> None:
    options.no_jobs = True


def _set_logfile(options: Options, value: str) -> None:
    options.logfile = value


def _set_logdir(options: Options, value: str) -> None:
    options.logdir = value


def _write_output(target: str, text: str) -> int:
    """Write ``text`` to the file ``target``, or to stdout when it is "-"."""
    if target == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(target).write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"{PROGRAM}: cannot write {target}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def _openapi_text() -> str:
    """The OpenAPI document of the routes table (imported late: only this option needs it)."""
    from server import openapi

    return json.dumps(openapi.application_document(), indent=2, ensure_ascii=False) + "\n"


def _write_openapi(_: Options, target: str) -> int:
    return _write_output(target, _openapi_text())


def _write_cheatsheet(_: Options, target: str) -> int:
    """Orthanc's CSV cheat sheet: one row per path, its methods and a summary."""
    from server import openapi

    return _write_output(target, openapi.cheatsheet(openapi.application_document()))


def _write_sample_configuration(_: Options, target: str) -> int:
    return _write_output(target, default_configuration_text())


_ACTIONS: dict[str, Callable[[Options], int]] = {
    "--help": _print_help,
    "--version": _print_version,
    "--errors": _print_errors,
}
_VALUED_ACTIONS: dict[str, Callable[[Options, str], int]] = {
    "--config": _write_sample_configuration,
    "--openapi": _write_openapi,
    "--cheatsheet": _write_cheatsheet,
}
_FLAGS: dict[str, Callable[[Options], None]] = {
    "--verbose": _set_all_levels("verbose"),
    "--trace": _set_all_levels("trace"),
    "--upgrade": _accept_upgrade,
    "--no-jobs": _disable_jobs,
    **{f"--verbose-{c}": _set_category_level(c, "verbose") for c in CATEGORIES},
    **{f"--trace-{c}": _set_category_level(c, "trace") for c in CATEGORIES},
}
_VALUED_FLAGS: dict[str, Callable[[Options, str], None]] = {
    "--logfile": _set_logfile,
    "--logdir": _set_logdir,
}


def parse_command_line(arguments: list[str]) -> Options | int:
    """Read the arguments left to right.

    Returns the options to start the server with, or the exit status of an
    informational option that has already run. Raises `UsageError`.
    """
    options = Options()
    for argument in arguments:
        if not argument.startswith("-") or argument == "-":
            _set_configuration(options, argument)
            continue
        name, has_value, value = argument.partition("=")
        if name in _ACTIONS and not has_value:
            return _ACTIONS[name](options)
        if name in _FLAGS and not has_value:
            _FLAGS[name](options)
        elif name in _VALUED_ACTIONS or name in _VALUED_FLAGS:
            if not has_value or not value:
                raise UsageError(f"option '{name}' requires a value: {name}=...")
            if name in _VALUED_ACTIONS:
                return _VALUED_ACTIONS[name](options, value)
            _VALUED_FLAGS[name](options, value)
        else:
            raise UsageError(f"unrecognized option '{argument}'")
    return options


def _set_configuration(options: Options, path: str) -> None:
    if options.configuration is not None:
        raise UsageError(
            f"only one configuration path can be given, got '{options.configuration}' "
            f"and '{path}'"
        )
    options.configuration = path


def _usage_error(message: str, stream: TextIO) -> int:
    print(f"{PROGRAM}: {message}", file=stream)
    print(f"Try '{PROGRAM} --help' for more information.", file=stream)
    return USAGE_ERROR


@contextmanager
def _kept_for_good() -> Iterator[None]:
    """Around imports: what they make (modules, classes, functions, tables: ~150,000 objects
    the collector tracks) lives as long as the process, yet the cyclic garbage collector went
    through it over and over while it grew (~200 collections, ~25 ms of the start-up).
    Collections wait until the imports are done, and what they made is then left out of every
    later one (``gc.freeze``); the few cycles that became garbage meanwhile (~750 objects) stay."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _import_dicom_libraries() -> None:
    """Import pydicom and pynetdicom for serving, at less cost than plain imports.

    - Without ``requests``, which pydicom imports when installed only for its downloads of
      test data (then made with urllib): ~70 ms of each start-up.  Isengard needs
      ``requests`` only to call peers, and imports it then.
    - With OpenBLAS on one thread unless ``OPENBLAS_NUM_THREADS`` says otherwise: pydicom
      imports numpy, whose OpenBLAS starts a worker per core that spins for a while; on a
      busy or small machine they take the CPU from the rest of the start-up (numpy's import
      took 60 to 100 ms on two busy cores, 48 ms with one thread).  Isengard's numpy work
      (pixels) calls no BLAS.
    - pynetdicom (the logging imports it next) under pydicom's documented
      ``disable_value_validation``, "for performance reasons if the values are known to be
      valid": its import makes ~3000 UIDs of pydicom's own dictionary (~5 ms to validate).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if "requests" not in sys.modules:
        sys.modules["requests"] = None  # type: ignore[assignment]  # makes "import requests" fail
        try:
            import pydicom  # noqa: F401
        finally:
            del sys.modules["requests"]
    from pydicom.config import disable_value_validation

    with disable_value_validation():
        import pynetdicom  # noqa: F401


def main(arguments: list[str] | None = None) -> int:
    """Entry point of ``python -m server`` and of the ``isengard`` console script."""
    try:
        parsed = parse_command_line(sys.argv[1:] if arguments is None else arguments)
    except UsageError as error:
        return _usage_error(str(error), sys.stderr)
    if isinstance(parsed, int):
        return parsed
    with _kept_for_good():
        _import_dicom_libraries()
    try:
        configure_logging(parsed.levels, logfile=parsed.logfile, logdir=parsed.logdir)
    except OSError as error:
        print(f"{PROGRAM}: cannot open the log: {error}", file=sys.stderr)
        return 1
    logger.info("Isengard version: %s", server.__version__)
    try:
        configuration = load_configuration(parsed.configuration)
    except ConfigError as error:
        logger.error("%s", error)
        return 1
    with _kept_for_good():
        from server import app  # imported late: start-up errors above must not need it

    return app.run(configuration, no_jobs=parsed.no_jobs)


if __name__ == "__main__":
    sys.exit(main())
