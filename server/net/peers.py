"""Isengard as an HTTP client of Orthanc peers (``OrthancPeers``).

Errors carry libcurl's wording, as Orthanc reports them (``libCURL error:
Couldn't connect to server``), so that scripts matching on them keep working;
connection failures, timeouts and 502/503/504 answers are transient (a store
job retries them), other HTTP errors are not.
"""

from __future__ import annotations

import gzip
import logging
from typing import TYPE_CHECKING, Any

from server.net.scu import NetworkError

if TYPE_CHECKING:
    import requests

log = logging.getLogger("isengard.peers")

#: HTTP statuses worth another try later.
_TRANSIENT_STATUSES = {502, 503, 504}


class PeerClient:
    """Requests to one peer; keeps its connection alive between calls (one job, one client)."""

    def __init__(self, name: str, settings: dict[str, Any], config: Any) -> None:
        import requests  # here, not at start-up: ~70 ms to import, for peers only

        self.name = name
        self.url = settings["Url"]
        timeout = settings.get("Timeout") or config["HttpTimeout"]
        self.timeout = float(timeout) if timeout else None
        self.session = requests.Session()
        self.session.headers.update(settings.get("HttpHeaders", {}))
        if settings.get("Username") or settings.get("Password"):
            self.session.auth = (settings.get("Username", ""), settings.get("Password", ""))
        if settings.get("CertificateFile"):
            self.session.cert = (settings["CertificateFile"], settings.get("CertificateKeyFile", ""))
        verify = bool(config["HttpsVerifyPeers"])
        self.session.verify = (config["HttpsCACertificates"] or True) if verify else False
        if config["HttpProxy"]:
            proxy = config["HttpProxy"]
            proxy = proxy if "://" in proxy else f"http://{proxy}"
            self.session.proxies = {"http": proxy, "https": proxy}
        self.verbose = bool(config["HttpVerbose"])

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float | None = None) -> requests.Response:
        """One HTTP call; NetworkError for transport failures, the response otherwise.
        ``timeout`` replaces the peer's own (the transfers' commit and detection use theirs)."""
        import requests

        url = self.url + path
        if self.verbose:
            log.info("HTTP %s %s (%d bytes)", method, url, len(body or b""))
        try:
            return self.session.request(method, url, data=body, headers=headers,
                                        timeout=timeout or self.timeout)
        except requests.Timeout:
            raise NetworkError("libCURL error: Timeout was reached") from None
        except requests.exceptions.SSLError as e:
            raise NetworkError(f"libCURL error: SSL connect error ({e})", transient=False) from None
        except requests.ConnectionError:
            raise NetworkError("libCURL error: Couldn't connect to server") from None
        except requests.RequestException as e:
            raise NetworkError(f"libCURL error: {e}", transient=False) from None

    def _failed(self, method: str, path: str, answer: requests.Response) -> NetworkError:
        return NetworkError(f'Orthanc peer "{self.name}" answered HTTP status {answer.status_code} '
                            f"to {method} {self.url}{path}",
                            transient=answer.status_code in _TRANSIENT_STATUSES)

    def system(self) -> tuple[int, bytes]:
        """``GET /system`` of the peer: (HTTP status, body)."""
        answer = self.request("GET", "system")
        return answer.status_code, answer.content

    def store(self, dicom: bytes, compress: bool) -> bytes:
        """``POST /instances`` of one DICOM file; the peer's answer."""
        headers = {"Expect": ""}
        if compress:
            headers["Content-Encoding"] = "gzip"
        answer = self.request("POST", "instances", dicom, headers)
        if answer.status_code != 200:
            raise self._failed("POST", "instances", answer)
        return answer.content

    def close(self) -> None:
        self.session.close()


def compressed(dicom: bytes) -> bytes:
    return gzip.compress(dicom, compresslevel=6)
