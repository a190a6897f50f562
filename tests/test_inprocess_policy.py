"""In-process REST calls (Lua's ``RestApi*``) follow their request policy, not HTTP's.

Over HTTP the credentials and the scripts' ``IncomingHttpRequestFilter`` apply; the
same routes called in-process skip both and store what they upload with the
caller's origin, as Orthanc does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import sample

FILTER = """
function IncomingHttpRequestFilter(method, uri, ip, username, headers)
  return uri == '/tools/execute-script'
end
"""


def test_in_process_calls_skip_credentials_and_filters_and_carry_the_lua_origin(
        make_isengard: Any, tmp_path: Path) -> None:
    script = tmp_path / "filter.lua"
    script.write_text(FILTER)
    server = make_isengard(LuaScripts=[str(script)], ExecuteLuaEnabled=True, AuthenticationEnabled=True,
                           RegisteredUsers={"alice": "secret"})
    assert server.get("/system").status_code == 401
    server.session.auth = ("alice", "secret")
    assert server.get("/system").status_code == 403  # the filter refuses it over HTTP
    data = sample("ColorTestMalaterre.dcm").read_bytes().hex()
    answer = server.post("/tools/execute-script", (
        "local function unhex(s) return (s:gsub('..', function(c) return string.char(tonumber(c, 16)) end)) end\n"
        "print(RestApiGet('/system'))\n"
        f"print(ParseJson(RestApiPost('/instances', unhex('{data}')))['ID'])\n").encode())
    assert answer.status_code == 200
    system_text, _, instance = answer.text.rstrip("\n").rpartition("\n")
    assert json.loads(system_text)["ApiVersion"] >= 1
    lua = server.post("/tools/execute-script", f"print(RestApiGet('/instances/{instance}/metadata/Origin'))".encode())
    assert lua.text.strip() == "Lua"
