"""The scratch folder of a benchmark script: its servers' storage, its datasets.

Removed when the script ends, unless ``BENCH_KEEP_SCRATCH`` is set: ``make bench`` sets it
(and ``TMPDIR``) and removes every script's folder after the last one.  The disk here is an
ext4 without a journal, which does not reuse an inode freed in the last minutes and scans
them one by one for each file made: a script that cleaned up at its end made the next
script's servers pay, each differently (README, "Storage folders")."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A new folder under ``TMPDIR``, removed at the end unless ``BENCH_KEEP_SCRATCH`` is set."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if not os.environ.get("BENCH_KEEP_SCRATCH"):
            shutil.rmtree(folder, ignore_errors=True)
