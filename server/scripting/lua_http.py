"""The HTTP client of Lua's ``HttpGet/Post/Put/Delete`` (one per Lua state, as in Orthanc).

Credentials (``SetHttpCredentials``) and the timeout (``SetHttpTimeout``,
default ``HttpTimeout``) persist across calls of the same state.  Proxy and
HTTPS verification follow ``HttpProxy``, ``HttpsVerifyPeers`` and
``HttpsCACertificates``; environment proxies are ignored, as the
configuration is the one place that decides.
"""

from __future__ import annotations

import base64
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass


class HttpFailure(Exception):
    """The request got no HTTP answer (connection refused, timeout, TLS...)."""


@dataclass
class HttpSettings:
    timeout: float          # seconds; 0: none
    proxy: str              # "host:port", empty: none
    verify_peers: bool
    ca_certificates: str    # PEM file, empty: the system's


class LuaHttpClient:
    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self.timeout = settings.timeout
        self._credentials: str | None = None
        self._lock = threading.Lock()
        self._built_opener: urllib.request.OpenerDirector | None = None

    def _opener(self) -> urllib.request.OpenerDirector:
        """Built at the first request: its TLS context loads the system's CA certificates
        (~20 ms, for each Lua state at start-up), and most scripts never call HTTP."""
        with self._lock:
            if self._built_opener is None:
                self._built_opener = urllib.request.build_opener(
                    urllib.request.ProxyHandler(self._proxies(self.settings.proxy)),
                    urllib.request.HTTPSHandler(context=self._tls(self.settings)))
            return self._built_opener

    @staticmethod
    def _proxies(proxy: str) -> dict[str, str]:
        if not proxy:
            return {}
        address = proxy if "://" in proxy else f"http://{proxy}"
        return {"http": address, "https": address}

    @staticmethod
    def _tls(settings: HttpSettings) -> ssl.SSLContext:
        if not settings.verify_peers:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=settings.ca_certificates or None)

    def set_credentials(self, username: str, password: str) -> None:
        self._credentials = base64.b64encode(f"{username}:{password}".encode()).decode()

    def request(self, method: str, url: str, body: bytes | None,
                headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body) of the answer, whatever its status; :class:`HttpFailure` without one."""
        request = urllib.request.Request(url, data=body, method=method)
        for name, value in headers.items():
            request.add_header(name, value)
        if self._credentials is not None:
            request.add_header("Authorization", f"Basic {self._credentials}")
        try:
            with self._opener().open(request, timeout=self.timeout or None) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read() if error.fp is not None else b""
        except TimeoutError:
            raise HttpFailure("Timeout was reached") from None
        except urllib.error.URLError as error:
            raise HttpFailure(str(error.reason)) from None
        except (OSError, ValueError) as error:
            raise HttpFailure(str(error)) from None
