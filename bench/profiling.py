"""Optional sampling of Isengard with py-spy during the phases where it lags.

py-spy attaches to the running server from outside, so the server needs no change. It samples
only the thread holding the GIL (``--gil``): with Python 3.11 its idle detection counts threads
parked on locks and selectors as busy, which buries the real costs. The shares therefore describe
Python CPU time; system calls and SQLite, which run without the GIL, do not show up (``strace -c``
sees them). Figures measured while sampling are slightly pessimistic: use a plain run for ratios.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servers import REPO, Isengard, Server

SAMPLE_RATE = 1000  # per second; an ingest phase at N=500 lasts only a second or two
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*)(?::\d+)?\)$")  # py-spy: "function (file:line)"
LIBRARY_PREFIX = re.compile(r"^.*/(?:site-packages|python3\.\d+)/")
OWN_PREFIX = f"{REPO}/"


def py_spy() -> str | None:
    """py-spy from PATH or beside the running interpreter (``.venv/bin/pip install py-spy``)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


class Profiler:
    """Records one collapsed-stack file per profiled phase of Isengard into ``folder``."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.executable = py_spy() if folder is not None else None
        if folder is not None and self.executable is None:
            print("warning: --profile needs py-spy (.venv/bin/pip install py-spy); not profiling", file=sys.stderr)
        self.outputs: list[Path] = []

    @contextmanager
    def record(self, server: Server, phase: str) -> Iterator[None]:
        """Sample ``server`` while the block runs; only Isengard, whose Python stacks py-spy can read."""
        if self.folder is None or self.executable is None or not isinstance(server, Isengard):
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        output = self.folder / f"{server.name}-{phase}.txt"
        command = [self.executable, "record", "--pid", str(server.pid), "--rate", str(SAMPLE_RATE), "--gil",
                   "--subprocesses", "--nonblocking", "--format", "raw", "--full-filenames", "--output", str(output)]
        sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            yield
        finally:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
            _, errors = sampler.communicate(timeout=60)
            if output.exists():
                self.outputs.append(output)
            else:
                print(f"warning: py-spy wrote no profile for {phase}: {errors.decode(errors='replace')[-300:]}",
                      file=sys.stderr)


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (``frame;frame;... count``) as a counter of frame tuples, outermost first."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            # --subprocesses prefixes every stack with a "process PID:command" pseudo-frame: drop it
            frames = tuple(_short(frame) for frame in stack.split(";") if not frame.startswith("process "))
            stacks[frames or ("(no Python frame)",)] += int(count)
    return stacks


def _short(frame: str) -> str:
    """``function (/abs/path/file.py:123)`` -> ``function (package/file.py)``: one entry per function, not line.

    Isengard's files are shown relative to the repository (``server/...``), libraries from their package.
    """
    match = FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"].removeprefix(OWN_PREFIX)
    return f"{match['function']} ({LIBRARY_PREFIX.sub('', file)})"


def shares(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Per function: self samples, and samples whose deepest Isengard frame it is; plus the sample total.

    The second count charges library time (pydicom, pynetdicom, tornado...) to the Isengard
    function that called into it, which is where a change would have to be made.
    """
    stacks = read_stacks(path)
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for frames, count in stacks.items():
        own[frames[-1]] += count
        deepest = next((frame for frame in reversed(frames) if "(server/" in frame), "(outside Isengard's code)")
        ours[deepest] += count
    return own, ours, sum(stacks.values())


def report(paths: list[Path], top: int = 5) -> str:
    lines = []
    for path in paths:
        own, ours, total = shares(path)
        total = total or 1
        lines.append(f"\nHot spots in {path.name}, {total} samples (share of GIL-holding samples):")
        lines += [f"  self        {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
        lines += [f"  via server  {count / total:6.1%}  {name}" for name, count in ours.most_common(top)]
    return "\n".join(lines)
