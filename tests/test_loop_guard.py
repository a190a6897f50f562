"""The loop guard (``ISENGARD_LOOP_GUARD``, on in the tests): the index and the storage
area refuse to run on the event loop's thread, and work in the worker threads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from server.loop_guard import ENABLED, BlockingCallOnLoop
from server.storage.area import StorageArea
from server.storage.index import Index


def test_the_suite_runs_with_the_guard() -> None:
    assert ENABLED


def test_index_and_storage_area_refuse_the_loop(tmp_path: Path) -> None:
    index = Index(tmp_path / "index" / "index.sqlite")
    area = StorageArea(tmp_path / "storage")

    async def on_the_loop() -> None:
        with pytest.raises(BlockingCallOnLoop):
            index.lookup("unknown")
        with pytest.raises(BlockingCallOnLoop):
            area.stage(b"data")

    async def in_a_thread() -> None:
        assert await asyncio.to_thread(index.lookup, "unknown") is None
        staged = await asyncio.to_thread(area.stage, b"data")
        await asyncio.to_thread(area.discard, staged.uuid)

    asyncio.run(on_the_loop())
    asyncio.run(in_a_thread())
    index.lookup("unknown")  # no loop running at all: fine
    index.close()


def test_the_guard_is_off_by_default() -> None:
    """Without the variable the guarded methods are the plain functions (no cost)."""
    script = ("from server.storage.area import StorageArea; from server import loop_guard; "
              "print(loop_guard.ENABLED, hasattr(StorageArea.stage, '__wrapped__'))")
    environment = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=environment,
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]
