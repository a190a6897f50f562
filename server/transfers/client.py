"""HTTP calls of one transfer to one peer, through the peers' HTTP client (credentials,
headers, TLS, proxy and timeout of ``OrthancPeers``).

Parallel bucket requests each use their thread's own keep-alive session.  A failed call is
tried again ``MaxHttpRetries`` times, one second apart (the plugin's ``DoPostPeer``); a
4xx answer is final.  What is still failing then raises :class:`PeerAnswered` (an HTTP
status) or the peers' :class:`NetworkError`, whose ``transient`` flag the jobs use for
their Retry state.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from server.errors import ErrorCode, OrthancError
from server.net.peers import PeerClient
from server.net.scu import NetworkError

RETRY_DELAY = 1.0
_TRANSIENT_STATUSES = {502, 503, 504}


class PeerAnswered(NetworkError):
    """The peer answered an HTTP error status."""

    def __init__(self, details: str, status: int) -> None:
        super().__init__(details, transient=status in _TRANSIENT_STATUSES)
        self.status = status


class TransferClient:
    def __init__(self, name: str, settings: dict[str, Any], config: Any, max_retries: int,
                 transfer_id: str) -> None:
        self.name = name
        self.settings = settings
        self.config = config
        self.max_retries = max_retries
        self.headers = {"sender-transfer-id": transfer_id, "Expect": ""}
        self.url = settings["Url"]
        self._local = threading.local()
        self._clients: list[PeerClient] = []
        self._lock = threading.Lock()

    def _client(self) -> PeerClient:
        client: PeerClient | None = getattr(self._local, "client", None)
        if client is None:
            client = PeerClient(self.name, self.settings, self.config)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
             timeout: float | None = None) -> bytes:
        """The body of a 200 answer to ``method path`` (``path`` absolute on the peer)."""
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            try:
                answer = self._client().request(method, path.lstrip("/"), body, headers, timeout)
                if answer.status_code == 200:
                    return answer.content
                error: NetworkError = PeerAnswered(
                    f'Orthanc peer "{self.name}" answered HTTP status {answer.status_code} to '
                    f"{method} {self.url}{path.lstrip('/')}", answer.status_code)
            except NetworkError as e:
                error = e
            if attempt >= self.max_retries or (isinstance(error, PeerAnswered) and not error.transient):
                raise error
            attempt += 1
            time.sleep(RETRY_DELAY)

    def call_json(self, method: str, path: str, value: Any = None, timeout: float | None = None) -> Any:
        body = None if value is None else json.dumps(value).encode()
        answer = self.call(method, path, body, "application/json" if body is not None else None, timeout)
        try:
            return json.loads(answer) if answer.strip() else {}
        except ValueError:
            raise OrthancError(ErrorCode.NETWORK_PROTOCOL, f"Bad network protocol from peer: {self.name}") from None

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        self._local = threading.local()
