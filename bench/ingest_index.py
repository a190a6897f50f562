"""In-process ingest on each index engine: what one ``Store.ingest`` costs this process's CPU,
without HTTP, for the SQL path alone (SQLite, and PostgreSQL with its server's CPU apart).

Usage: .venv/bin/python bench/ingest_index.py [--instances 1000] [--engine sqlite|postgresql]
                                              [--threads 1] [--profile out.txt]

The files are ``scale.py``'s (10 instances a series, 5 studies a patient), ingested one by
one from ``--threads`` threads.  PostgreSQL is a throw-away server of the bench's own
(``cluster.py``'s, default durability).  ``--profile`` writes cProfile's top functions by
internal CPU time (of the main thread: use it with one thread).  With one thread, the median CPU per
instance of each hundred is shown too (less sensitive to other work on the machine).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cluster import Postgres, section  # noqa: E402
from scale import instances  # noqa: E402
from scratch import scratch_folder  # noqa: E402

from server import events  # noqa: E402
from server.storage.area import StorageArea  # noqa: E402
from server.storage.index import Index  # noqa: E402
from server.store import Limits, Origin, Store  # noqa: E402


def open_index(engine: str, root: Path, postgres: Postgres | None) -> Index:
    if engine == "sqlite":
        return Index(root / "index.sqlite")
    from server.storage.postgresql import PostgresDatabase, Settings

    assert postgres is not None
    return Index(PostgresDatabase(Settings.from_config(section(postgres, postgres.database()))))


def run(engine: str, count: int, threads: int, profile: str | None) -> None:
    postgres = Postgres().start() if engine == "postgresql" else None
    try:
        with scratch_folder("isengard-bench-index-") as folder:
            root = Path(folder)
            index = open_index(engine, root, postgres)
            store = Store(index, StorageArea(root / "storage"), events.EventBus(), Limits())
            files = list(instances(count))
            origin = Origin()
            profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, not waits
            db_cpu = postgres.cpu() if postgres else 0.0
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            chunks: list[float] = []  # CPU per instance of each hundred: their median resists bursts of load
            if threads == 1:  # in this thread, which is the one cProfile sees
                results = []
                for start in range(0, count, 100):
                    chunk = time.process_time()
                    results += [store.ingest(data, origin).status for data in files[start:start + 100]]
                    chunks.append((time.process_time() - chunk) / len(files[start:start + 100]))
            else:
                with ThreadPoolExecutor(threads) as pool:
                    results = list(pool.map(lambda data: store.ingest(data, origin).status, files))
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            db_cpu = (postgres.cpu() - db_cpu) if postgres else 0.0
            assert results == ["Success"] * count, set(results)
            index.close()
            print(f"{engine}: {count} instances, {threads} thread(s): {count / wall:.0f} inst/s, "
                  f"{1000 * cpu / count:.2f} ms CPU/instance"
                  + (f" (median of hundreds {1000 * statistics.median(chunks):.2f})" if chunks else "")
                  + (f", PostgreSQL {1000 * db_cpu / count:.2f} ms/instance" if postgres else ""))
            if profiler and profile:
                with open(profile, "w") as out:
                    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
                    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
    finally:
        if postgres:
            postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile")
    arguments = parser.parse_args()
    run(arguments.engine, arguments.instances, arguments.threads, arguments.profile)


if __name__ == "__main__":
    main()
