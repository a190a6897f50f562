"""The Python side of Orthanc's Lua functions, for one Lua state.

Every function takes the number of Lua arguments first, then the arguments
(Lua strings as ``bytes``), and returns ``(True, value)`` with a plain Lua
value, or ``(False, message)`` to raise a Lua error at the caller's line (see
:mod:`server.scripting.lua_toolbox`).  Return values and failure modes follow
Orthanc 1.10.1 as captured in ``spec/lua.md``: ``RestApi*`` answer nil when the
status is not 200, ``HttpGet/Post/Put`` answer nil without an HTTP answer and
an empty string for an HTTP error, ``HttpDelete`` answers ``"SUCCESS"`` or nil
and raises when the server cannot be reached.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lupa import lua53

from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError
from server.jobs.modification import ModificationServices, modify_and_store
from server.rest.inprocess import Answer, InProcessRest
from server.rest.python_routes import SKIP_SCRIPT_ROUTES
from server.rest.requests import modify_request
from server.scripting.lua_database import LuaDatabase
from server.scripting.lua_http import HttpFailure, HttpSettings, LuaHttpClient
from server.scripting.lua_json import dump, text
from server.scripting.lua_runtime import CALL_HEADER, LuaState, Waiter
from server.store import Origin

if TYPE_CHECKING:
    from server.net.service import NetworkService

log = logging.getLogger("isengard.lua")

Result = tuple[bool, Any]

@dataclass
class LuaServices:
    """What the Lua functions reach outside Lua; shared by the states of one server."""

    rest: InProcessRest
    configuration: dict[str, Any]      # what the user wrote (GetOrthancConfiguration)
    http: HttpSettings
    http_port: int
    executor: Executor                 # runs outgoing HTTP requests while Lua waits
    network: NetworkService            # SendToModality, SendToPeer
    modification: ModificationServices  # ModifyInstance
    database: LuaDatabase              # SetStableStatus, StoreKeyValue...


def _safe(state: LuaState, name: str, function: Callable[..., Result]) -> Callable[..., Result]:
    """No Python exception may cross into Lua: an unexpected one becomes a Lua error."""
    def wrapper(*args: Any) -> Result:
        try:
            return function(*args)
        except Exception as error:  # noqa: BLE001 - reported to the script as a Lua error
            log.exception("Lua: internal error in %s()", name)
            return state.failure(f"Internal error in {name}(): {error}", ErrorCode.INTERNAL)
    return wrapper


def _builtin(honoured: bool, value: Any) -> bool:
    """Orthanc's quirk: ``builtin`` (skip the Python scripts' routes) counts only when it is the
    last argument; with ``headers`` after it, it is taken as false."""
    return honoured and value is not None and value is not False


class LuaApi:
    def __init__(self, state: LuaState, services: LuaServices) -> None:
        self.state = state
        self.services = services
        self.http = LuaHttpClient(services.http)

    def functions(self) -> dict[str, Callable[..., Result]]:
        table: dict[str, Callable[..., Result]] = {
            "RestApiGet": self.rest_api_get, "RestApiPost": self.rest_api_post,
            "RestApiPut": self.rest_api_put, "RestApiDelete": self.rest_api_delete,
            "HttpGet": self.http_get, "HttpPost": self.http_post, "HttpPut": self.http_put,
            "HttpDelete": self.http_delete, "SetHttpCredentials": self.set_http_credentials,
            "SetHttpTimeout": self.set_http_timeout, "ParseJson": self.parse_json,
            "DumpJson": self.dump_json, "GetOrthancConfiguration": self.get_orthanc_configuration,
            "Delete": self.delete, "SendToModality": self.send_to_modality,
            "SendToPeer": self.send_to_peer, "ModifyInstance": self.modify_instance,
            **self.services.database.functions(),
        }
        return {name: _safe(self.state, name, function) for name, function in table.items()}

    # -- the server's own REST API, in process ---------------------------------------

    def rest_api_get(self, argc: int, uri: Any = None, builtin: Any = None, headers: Any = None) -> Result:
        return self._rest("GET", "RestApiGet", uri, b"", _builtin(argc == 2, builtin),
                          headers if argc >= 3 else None)

    def rest_api_delete(self, argc: int, uri: Any = None, builtin: Any = None,
                        headers: Any = None) -> Result:
        return self._rest("DELETE", "RestApiDelete", uri, b"", _builtin(argc == 2, builtin),
                          headers if argc >= 3 else None)

    def rest_api_post(self, argc: int, uri: Any = None, body: Any = None, builtin: Any = None,
                      headers: Any = None) -> Result:
        return self._rest("POST", "RestApiPost", uri, body, _builtin(argc == 3, builtin),
                          headers if argc >= 4 else None)

    def rest_api_put(self, argc: int, uri: Any = None, body: Any = None, builtin: Any = None,
                     headers: Any = None) -> Result:
        return self._rest("PUT", "RestApiPut", uri, body, _builtin(argc == 3, builtin),
                          headers if argc >= 4 else None)

    def _rest(self, method: str, name: str, uri: Any, body: Any, builtin: bool, headers: Any) -> Result:
        if not isinstance(uri, bytes) or not isinstance(body, (bytes, int, float)):
            log.error("Lua: Bad parameters to %s()", name)
            return True, None
        path = text(uri)
        payload = body if isinstance(body, bytes) else str(body).encode()
        values = self._headers(headers)

        def start(waiter: Waiter) -> Any:
            skip = SKIP_SCRIPT_ROUTES.set(builtin)
            try:
                return self.services.rest.submit(method, path, payload, values, Origin("Lua"))
            finally:
                SKIP_SCRIPT_ROUTES.reset(skip)
        answer: Answer = self.state.blocking(start)
        if answer.status != 200:
            log.error("Lua: Error in %s() for URI: %s", name, path)
            return True, None
        return True, (True if method == "DELETE" else answer.body)

    def _headers(self, table: Any) -> dict[str, str]:
        if lua53.lua_type(table) != "table":
            return {}
        values = self.state.json.read(table, keep_strings=True)
        if not isinstance(values, dict):
            return {}
        return {name.lower(): "" if value is None else str(value) for name, value in values.items()}

    # -- HTTP client -----------------------------------------------------------------

    def http_get(self, argc: int, url: Any = None, headers: Any = None) -> Result:
        return self._http_query("GET", "HttpGet", url, None, headers)

    def http_post(self, argc: int, url: Any = None, body: Any = None, headers: Any = None) -> Result:
        return self._http_query("POST", "HttpPost", url, body, headers)

    def http_put(self, argc: int, url: Any = None, body: Any = None, headers: Any = None) -> Result:
        return self._http_query("PUT", "HttpPut", url, body, headers)

    def _http_query(self, method: str, name: str, url: Any, body: Any, headers: Any) -> Result:
        if not isinstance(url, bytes):
            log.error("Lua: Bad parameters to %s()", name)
            return True, None
        payload = body if isinstance(body, bytes) else (b"" if method != "GET" else None)
        try:
            status, answer = self._http(method, text(url), payload, headers)
        except HttpFailure as error:
            log.error("Lua: Error in %s() for URL %s: %s", name, text(url), error)
            return True, None
        if not 200 <= status < 300:
            log.error("Error in HTTP request, received HTTP status %d", status)
            return True, b""
        return True, answer

    def http_delete(self, argc: int, url: Any = None, headers: Any = None) -> Result:
        if not isinstance(url, bytes):
            log.error("Lua: Bad parameters to HttpDelete()")
            return True, None
        try:
            status, _ = self._http("DELETE", text(url), None, headers)
        except HttpFailure as error:
            return self.state.failure(f"Error in the network protocol: {error}",
                                      ErrorCode.NETWORK_PROTOCOL)
        if not 200 <= status < 300:
            log.error("Lua: Error in HttpDelete() for URL %s: HTTP status %d", text(url), status)
            return True, None
        return True, b"SUCCESS"

    def _http(self, method: str, url: str, body: bytes | None, headers: Any) -> tuple[int, bytes]:
        """Send while serving the Lua work of a request to this very server (no self-deadlock)."""
        values = self._headers(headers)

        def start(waiter: Waiter) -> Future[tuple[int, bytes]]:
            if self._is_own_url(url):
                values[CALL_HEADER] = waiter.token
            return self.services.executor.submit(self.http.request, method, url, body, values)
        return self.state.blocking(start)

    def _is_own_url(self, url: str) -> bool:
        try:
            return urllib.parse.urlsplit(url).port == self.services.http_port
        except ValueError:
            return False

    def set_http_credentials(self, argc: int, username: Any = None, password: Any = None) -> Result:
        if not isinstance(username, bytes) or not isinstance(password, bytes):
            return self.state.failure("SetHttpCredentials() expects a username and a password")
        self.http.set_credentials(text(username), text(password))
        return True, None

    def set_http_timeout(self, argc: int, seconds: Any = None) -> Result:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            return self.state.failure("SetHttpTimeout() expects a number of seconds")
        self.http.timeout = float(seconds)
        return True, None

    # -- JSON and configuration ------------------------------------------------------

    def parse_json(self, argc: int, source: Any = None) -> Result:
        if not isinstance(source, bytes):
            return True, None
        try:
            value = json.loads(source.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return True, None
        return True, self.state.to_lua(value)

    def dump_json(self, argc: int, value: Any = None, keep_strings: Any = None) -> Result:
        keep = keep_strings is not None and keep_strings is not False
        return True, dump(self.state.json.read(value, keep)).encode()

    def get_orthanc_configuration(self, argc: int) -> Result:
        return True, self.state.to_lua(self.services.configuration)

    # -- routing helpers -------------------------------------------------------------

    def delete(self, argc: int, instance_id: Any = None) -> Result:
        """Delete an instance now (Orthanc queues it in the callback's job; there is no such job yet)."""
        if not isinstance(instance_id, bytes):
            return self.state.failure("Delete() expects the ID of an instance")
        path = f"/instances/{text(instance_id)}"
        answer: Answer = self.state.blocking(lambda waiter: self.services.rest.submit(
            "DELETE", path, b"", {}, Origin("Lua")))
        if answer.status != 200:
            log.error("Lua: Cannot delete instance %s (HTTP status %d)", text(instance_id), answer.status)
        return True, None

    def send_to_modality(self, argc: int, instance_id: Any = None, modality: Any = None,
                         local_aet: Any = None) -> Result:
        """``SendToModality(instanceId, modality[, localAet])``: C-STORE now; answers the instance ID.

        Orthanc queues these helpers in a job of the callback; here they run at once, in order,
        so that ``ModifyInstance`` -> ``SendToModality`` -> ``Delete`` chains keep their meaning.
        """
        if not isinstance(instance_id, bytes) or not isinstance(modality, bytes):
            return self.state.failure("SendToModality() expects an instance ID and a modality name")
        aet = text(local_aet) if isinstance(local_aet, bytes) else None
        return self._routed("SendToModality", instance_id, lambda: self.services.network
                            .send_instance_to_modality(text(instance_id), text(modality), aet))

    def send_to_peer(self, argc: int, instance_id: Any = None, peer: Any = None) -> Result:
        """``SendToPeer(instanceId, peer)``: ``POST /instances`` to the peer now; answers the ID."""
        if not isinstance(instance_id, bytes) or not isinstance(peer, bytes):
            return self.state.failure("SendToPeer() expects an instance ID and a peer name")
        return self._routed("SendToPeer", instance_id, lambda: self.services.network
                            .send_instance_to_peer(text(instance_id), text(peer)))

    def modify_instance(self, argc: int, instance_id: Any = None, replacements: Any = None,
                        removals: Any = None, remove_private_tags: Any = None) -> Result:
        """``ModifyInstance(instanceId, replacements, removals, removePrivateTags)``: the new ID."""
        if not isinstance(instance_id, bytes):
            return self.state.failure("ModifyInstance() expects the ID of an instance")
        removed = self.state.json.read(removals, True) if removals is not None else []
        request = {"Replace": self.state.json.read(replacements, True) if replacements is not None else {},
                   "Remove": list(removed.values()) if isinstance(removed, dict) else removed or [],
                   "RemovePrivateTags": remove_private_tags is True, "Force": True}
        try:
            modification = modify_request(request, self.services.modification.config["DefaultPrivateCreator"])
            stored = modify_and_store(self.services.modification, text(instance_id), modification, Origin("Lua"))
        except OrthancError as error:
            return self.state.failure(f"ModifyInstance(): {error.details or error.description}")
        return True, stored.ids[Level.INSTANCE].encode()

    def _routed(self, name: str, instance_id: bytes, send: Callable[[], None]) -> Result:
        try:
            send()
        except OrthancError as error:
            return self.state.failure(f"{name}(): {error.details or error.description}")
        return True, instance_id
