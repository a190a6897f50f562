"""Scripts cannot starve the server: Python REST callbacks on their own bounded pool, Lua memory capped."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from test_hostile_bodies import peak_rss_kb

from conftest import Isengard

SLOW_SCRIPT = '''
import time
import orthanc

def slow(output, uri, **request):
    time.sleep(float(request["get"].get("seconds", "3")))
    output.AnswerBuffer("done", "text/plain")

def allow(uri, **request):
    return True

orthanc.RegisterRestCallback("/slow", slow)
orthanc.RegisterIncomingHttpRequestFilter(allow)
'''


def _scripted(workdir: Path, **options: object) -> Isengard:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "slow.py").write_text(SLOW_SCRIPT)
    return Isengard(workdir, PythonScript="slow.py", **options).start()


def _call_in_threads(server: Isengard, path: str, count: int) -> tuple[list[threading.Thread], list[float]]:
    durations: list[float] = []

    def call() -> None:
        began = time.monotonic()
        server.session.get(server.url + path, timeout=60)
        durations.append(time.monotonic() - began)
    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, durations


def test_busy_python_callbacks_do_not_delay_built_in_routes(tmp_path: Path) -> None:
    server = _scripted(tmp_path / "busy")
    try:
        threads, _ = _call_in_threads(server, "/slow?seconds=4", 12)
        time.sleep(0.7)
        began = time.monotonic()
        answer = server.get("/system")
        assert answer.status_code == 200
        assert time.monotonic() - began < 1.5
        for thread in threads:
            thread.join()
    finally:
        server.stop()


def test_python_callbacks_are_bounded_by_http_threads_count(tmp_path: Path) -> None:
    server = _scripted(tmp_path / "bounded", HttpThreadsCount=2)
    try:
        threads, durations = _call_in_threads(server, "/slow?seconds=1.5", 4)
        for thread in threads:
            thread.join()
        durations.sort()
        assert durations[1] < 2.5 and durations[3] > 2.8, durations
    finally:
        server.stop()


def test_lua_memory_is_capped(make_isengard) -> None:
    server = make_isengard(LuaMemoryLimitMB=32, ExecuteLuaEnabled=True)
    hog = b'local t = {} for i = 1, 1e8 do t[i] = string.rep("x", 100) .. i end'
    answer = server.post("/tools/execute-script", hog)
    assert answer.status_code == 500
    assert "not enough memory" in answer.json()["Details"]
    assert peak_rss_kb(server) < 250 * 1024
    caught = server.post("/tools/execute-script",
                         b'local ok, e = pcall(function() local s = string.rep("x", 64 * 2^20) end) print(ok)')
    assert caught.status_code == 200 and caught.text.strip() == "false"
    assert server.post("/tools/execute-script", b"print(1 + 1)").text.strip() == "2"


def test_lua_timeout_interrupts_pattern_matching(make_isengard) -> None:
    """A backtracking pattern runs in C, where the count hook never fires: it is still stopped."""
    server = make_isengard(LuaCallbackTimeout=2, ExecuteLuaEnabled=True)
    began = time.monotonic()
    answer = server.post("/tools/execute-script",
                         b'print(string.rep("a", 550):find(string.rep(".-", 3) .. "b"))')
    assert answer.status_code == 500
    assert "LuaCallbackTimeout" in answer.json()["Details"]
    assert time.monotonic() - began < 6
    ordinary = server.post("/tools/execute-script", b'print(("key=value"):match("(%w+)=(%w+)"))')
    assert ordinary.text.strip() == "key, value"
