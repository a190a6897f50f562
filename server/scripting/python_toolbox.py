"""The ``orthanc`` module's toolbox functions: files, hashes, HTTP, peers, properties, dictionary.

They are mixed into :class:`server.scripting.python_api._Functions` and keep
orthanc-python 4.0's names, argument order and answers; what they need from the
server goes through :class:`ToolboxHost`.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import mimetypes
import re
import struct
import sys
import zlib
from pathlib import Path
from typing import Any, Protocol

from pydicom.datadict import dictionary_VM

import server
from server.dicom import dictionary
from server.errors import ErrorCode
from server.scripting import python_font
from server.scripting.python_enums import CODES, ENUMERATIONS, VR_NAMES

log = logging.getLogger("isengard.plugins.python")

#: The reported Orthanc version, as ``CheckVersion`` compares it.
ORTHANC_VERSION = tuple(int(part) for part in server.ORTHANC_VERSION.split("."))
#: The database schema version of Orthanc 1.10.1 (``GetExpectedDatabaseVersion``).
DATABASE_VERSION = 6
#: Global properties below this number are Orthanc's own (``SetGlobalProperty`` refuses them).
FIRST_PLUGIN_PROPERTY = 1024
#: Orthanc numbers the error codes registered by plugins from here.
FIRST_PLUGIN_ERROR = 1000000
#: What ``GetErrorDescription`` says of any error code registered by a plugin.
PLUGIN_ERROR_DESCRIPTION = "Error encountered within some plugin"
_HEX_TAG = re.compile(r"[0-9a-fA-F]{4},[0-9a-fA-F]{4}")
_COMPRESSION = ENUMERATIONS["CompressionType"][1]
_VALUE_REPRESENTATIONS = ENUMERATIONS["ValueRepresentation"][1]


def exception(code: int, description: str | None = None) -> Exception:
    """An ``orthanc.OrthancException`` (imported late: python_api imports this module)."""
    from server.scripting.python_api import orthanc_exception

    return orthanc_exception(code, description)


class ToolboxHost(Protocol):
    """What the toolbox functions need from the server."""

    def get_global_property(self, key: int) -> str | None: ...

    def set_global_property(self, key: int, value: str) -> None: ...

    def peers(self) -> dict[str, dict[str, Any]]: ...

    def configuration_path(self) -> str: ...

    def extend_explorer(self, javascript: str) -> None: ...

    def register_error(self, code: int, http_status: int, message: str) -> int: ...

    def lookup_accession(self, accession_number: str) -> str: ...


class Peers:
    """The ``OrthancPeers`` of the configuration, as ``GetPeers()`` answers them."""

    def __init__(self, peers: dict[str, dict[str, Any]]) -> None:
        self._names = sorted(peers)
        self._peers = peers

    def _settings(self, index: int) -> tuple[str, dict[str, Any]] | None:
        """The peer at ``index``; None out of range (orthanc-python answers None, it does not raise)."""
        if not isinstance(index, int) or not 0 <= index < len(self._names):
            return None
        name = self._names[index]
        return name, self._peers[name]

    def GetPeersCount(self) -> int:
        return len(self._names)

    def GetPeerName(self, peer_index: int) -> str | None:
        found = self._settings(peer_index)
        return found[0] if found else None

    def GetPeerUrl(self, peer_index: int) -> str | None:
        found = self._settings(peer_index)
        return str(found[1]["Url"]) if found else None

    def GetPeerUserProperty(self, peer_index: int, user_property: str) -> str | None:
        """A custom field of the peer's configuration (None when absent or not a string)."""
        found = self._settings(peer_index)
        value = found[1].get(user_property) if found else None
        return value if isinstance(value, str) else None


Peers.__module__ = "orthanc"


def _data(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("expected bytes or str")


def _http(method: str, url: str, body: bytes | None, username: str, password: str) -> bytes:
    """Orthanc's plugin HTTP client: 2xx answers the body, anything else raises."""
    import requests  # here, not at start-up: ~70 ms to import, for the scripts that call HTTP only

    auth = (username, password) if username else None
    try:
        answer = requests.request(method, url, data=body, auth=auth, timeout=60)
    except requests.RequestException as e:
        log.error("HTTP %s %s failed: %s", method, url, e)
        raise exception(ErrorCode.NETWORK_PROTOCOL) from None
    if 200 <= answer.status_code < 300:
        return answer.content
    code = {400: ErrorCode.BAD_REQUEST, 401: ErrorCode.UNAUTHORIZED,
            404: ErrorCode.UNKNOWN_RESOURCE}.get(answer.status_code, ErrorCode.NETWORK_PROTOCOL)
    raise exception(code)


def _multiplicity(tag: int) -> tuple[int, int]:
    """(min, max) of a tag's value multiplicity; max 0 means unbounded, as Orthanc says."""
    try:
        vm = dictionary_VM(tag)
    except KeyError:
        return 1, 1
    low, _, high = vm.partition("-")
    minimum = int("".join(c for c in low if c.isdigit()) or 1)
    if not high:
        return minimum, minimum
    return minimum, 0 if "n" in high else int(high)


class ToolboxFunctions:
    """Mixin of the module-level toolbox functions."""

    _host: ToolboxHost
    #: Names added by ``RegisterDictionaryTag`` / ``RegisterPrivateDictionaryTag``.
    _registered_names: set[str]

    # -- files, hashes, compression ------------------------------------------------------

    def ReadFile(self, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError:
            raise exception(CODES["REGULAR_FILE_EXPECTED"]) from None

    def WriteFile(self, path: str, data: bytes) -> None:
        try:
            Path(path).write_bytes(_data(data))
        except OSError:
            raise exception(ErrorCode.CANNOT_WRITE_FILE) from None

    def ComputeMd5(self, buffer: bytes) -> str:
        return hashlib.md5(_data(buffer)).hexdigest()

    def ComputeSha1(self, buffer: bytes) -> str:
        """Orthanc's spelling: five dash-separated groups of eight hexadecimal digits."""
        digest = hashlib.sha1(_data(buffer)).hexdigest()
        return "-".join(digest[i:i + 8] for i in range(0, 40, 8))

    def AutodetectMimeType(self, path: str) -> str:
        found, _ = mimetypes.guess_type(path, strict=False)
        return found or "application/octet-stream"

    def BufferCompression(self, source: bytes, compression: int, uncompress: int) -> bytes:
        """zlib or gzip, optionally with Orthanc's 8-byte little-endian size prefix."""
        data = _data(source)
        with_size = compression in (_COMPRESSION["ZLIB_WITH_SIZE"], _COMPRESSION["GZIP_WITH_SIZE"])
        use_gzip = compression in (_COMPRESSION["GZIP"], _COMPRESSION["GZIP_WITH_SIZE"])
        if compression not in _COMPRESSION.values():
            raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
        try:
            if uncompress:
                if with_size:
                    data = data[8:]
                return gzip.decompress(data) if use_gzip else zlib.decompress(data)
            packed = gzip.compress(data) if use_gzip else zlib.compress(data)
        except (OSError, zlib.error):
            raise exception(ErrorCode.BAD_FILE_FORMAT) from None
        return struct.pack("<Q", len(data)) + packed if with_size else packed

    # -- HTTP client and peers --------------------------------------------------------------

    def HttpGet(self, url: str, username: str, password: str) -> bytes:
        return _http("GET", url, None, username, password)

    def HttpPost(self, url: str, body: bytes, username: str, password: str) -> bytes:
        return _http("POST", url, _data(body), username, password)

    def HttpPut(self, url: str, body: bytes, username: str, password: str) -> bytes:
        return _http("PUT", url, _data(body), username, password)

    def HttpDelete(self, url: str, username: str, password: str) -> None:
        _http("DELETE", url, None, username, password)

    def GetPeers(self) -> Peers:
        return Peers(self._host.peers())

    # -- global properties, error codes, explorer -------------------------------------------

    def GetGlobalProperty(self, property: int, default_value: str) -> str:
        found = self._host.get_global_property(int(property))
        return default_value if found is None else found

    def SetGlobalProperty(self, property: int, value: str) -> None:
        """Kept in the index, as Orthanc does; numbers below 1024 are Orthanc's own."""
        if int(property) < FIRST_PLUGIN_PROPERTY:
            raise exception(CODES["UNKNOWN_PLUGIN_SERVICE"])
        if not isinstance(value, str):
            raise TypeError("value must be a string")
        self._host.set_global_property(int(property), value)

    def RegisterErrorCode(self, code: int, http_status: int, message: str) -> None:
        """Registers the code, then raises the Orthanc error code that now stands for it.

        orthanc-python 4.0 treats the returned error code as a failure: scripts
        read the new code from the ``OrthancException`` it raises.
        """
        registered = self._host.register_error(int(code), int(http_status), str(message))
        raise exception(registered, PLUGIN_ERROR_DESCRIPTION)

    def ExtendOrthancExplorer(self, javascript: str) -> None:
        self._host.extend_explorer(str(javascript))

    def SetDescription(self, description: str) -> None:
        log.info("Python script description: %s", description)

    def SetRootUri(self, uri: str) -> None:
        log.info("Python script root URI: %s", uri)

    # -- DICOM dictionary ------------------------------------------------------------------

    def LookupDictionary(self, name: str) -> dict[str, int]:
        """``{"Group", "Element", "ValueRepresentation", "MinMultiplicity", "MaxMultiplicity"}``."""
        if not isinstance(name, str):
            raise TypeError("Bad types for the arguments (1 arguments expected)")
        tag = int(name[:4] + name[5:], 16) if _HEX_TAG.fullmatch(name) else dictionary.tag_from_name(name)
        if tag is None or name in self._registered_names:  # orthanc-python cannot look up the ones it added
            raise TypeError(f"Unknown DICOM tag: {name}")
        group, element = tag >> 16, tag & 0xFFFF
        found = dictionary.lookup(group, element)
        vr = found[0] if found else "UN"
        minimum, maximum = _multiplicity(tag)
        return {"Group": group, "Element": element,
                "ValueRepresentation": _VALUE_REPRESENTATIONS.get(vr[:2], _VALUE_REPRESENTATIONS["UN"]),
                "MinMultiplicity": minimum, "MaxMultiplicity": maximum}

    def GetTagName(self, group: int, element: int, private_creator: str) -> str:
        if not isinstance(private_creator, str):
            raise TypeError("Bad types for the arguments (3 arguments expected)")
        return dictionary.tag_name(int(group), int(element), private_creator or None)

    def RegisterDictionaryTag(self, group: int, element: int, vr: int, name: str, min_multiplicity: int,
                              max_multiplicity: int) -> None:
        dictionary.add_custom_entry(int(group), int(element), _vr_name(vr), str(name), None)
        self._registered_names.add(str(name))

    def RegisterPrivateDictionaryTag(self, group: int, element: int, vr: int, name: str, min_multiplicity: int,
                                     max_multiplicity: int, private_creator: str) -> None:
        dictionary.add_custom_entry(int(group), int(element), _vr_name(vr), str(name), str(private_creator))
        self._registered_names.add(str(name))

    # -- about the server ------------------------------------------------------------------

    def CheckVersion(self) -> int:
        return 1

    def CheckVersionAdvanced(self, major: int, minor: int, revision: int) -> int:
        return int(ORTHANC_VERSION >= (int(major), int(minor), int(revision)))

    def GetExpectedDatabaseVersion(self) -> int:
        return DATABASE_VERSION

    def GetConfigurationPath(self) -> str:
        return self._host.configuration_path()

    def GetOrthancPath(self) -> str:
        return str(Path(sys.argv[0]).resolve())

    def GetOrthancDirectory(self) -> str:
        return str(Path(sys.argv[0]).resolve().parent)

    def GetCommandLineArgumentsCount(self) -> int:
        return len(sys.argv) - 1

    def GetCommandLineArgument(self, argument: int) -> str:
        if not 0 <= int(argument) < len(sys.argv) - 1:
            raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
        return sys.argv[int(argument) + 1]

    def GetFontsCount(self) -> int:
        """One font, as Orthanc embeds one (for ``Image.DrawText``)."""
        return 1

    def GetFontName(self, font_index: int) -> str | None:
        """None for an unknown index, as orthanc-python answers."""
        return python_font.font().name if font_index == 0 else None

    def GetFontSize(self, font_index: int) -> int:
        """0 for an unknown index, as orthanc-python answers."""
        return python_font.SIZE if font_index == 0 else 0

    def CreateMemoryBuffer(self, size: int) -> bytes:
        return bytes(int(size))

    def LookupStudyWithAccessionNumber(self, accession_number: str) -> str:
        return self._host.lookup_accession(str(accession_number))


def _vr_name(vr: int) -> str:
    name = VR_NAMES.get(int(vr))
    if name is None:
        raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
    return name
