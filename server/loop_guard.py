"""A debug guard: the index and the storage area are never used on the event loop's thread.

A SQLite query or a disk read on Tornado's loop stalls every other request (a large
delete, a find over thousands of instances); handlers must go through
``await self.run(...)``.  Such a mistake is invisible in a functional test, so with
``ISENGARD_LOOP_GUARD=1`` in the environment (the test suite sets it for every server
it starts) each guarded call checks its thread, logs the offending stack and raises
:class:`BlockingCallOnLoop`.  Off by default: the check costs a lookup per call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

ENVIRONMENT_VARIABLE = "ISENGARD_LOOP_GUARD"
ENABLED = os.environ.get(ENVIRONMENT_VARIABLE, "") not in ("", "0")

log = logging.getLogger("isengard")
P = ParamSpec("P")
T = TypeVar("T")


class BlockingCallOnLoop(AssertionError):
    """A guarded (blocking) call ran on the thread of a running asyncio loop."""


def check(what: str) -> None:
    """Raise :class:`BlockingCallOnLoop` when called on a running event loop's thread."""
    if not ENABLED:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # a worker thread: fine
    log.error("Blocking call on the event loop: %s", what, stack_info=True)
    raise BlockingCallOnLoop(f"{what} called on the event loop's thread")


def off_loop(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorate a blocking method: :func:`check` runs before it when the guard is on."""
    if not ENABLED:
        return fn

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        check(fn.__qualname__)
        return fn(*args, **kwargs)

    return guarded
