"""``DicomModalities`` and ``OrthancPeers`` entries in Orthanc's normalized JSON form.

The configuration accepts short array forms and object forms (see the spec's
dicom-network.md); everything else in the server reads the normalized form.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from server.errors import ErrorCode, OrthancError

log = logging.getLogger("isengard.dicom")

_ALLOW_FLAGS = ("AllowEcho", "AllowEventReport", "AllowFind", "AllowFindWorklist", "AllowGet",
                "AllowMove", "AllowNAction", "AllowStore", "AllowTranscoding")


def normalize_modality(params: Any) -> dict[str, Any]:
    if isinstance(params, list):
        params = {"AET": params[0], "Host": params[1], "Port": params[2],
                  **({"Manufacturer": params[3]} if len(params) > 3 else {})}
    result: dict[str, Any] = {
        "AET": params["AET"],
        "Host": params["Host"],
        "Port": int(params["Port"]),
        "Manufacturer": canonical_manufacturer(params.get("Manufacturer", "Generic")),
        "LocalAet": params.get("LocalAet", ""),
        "Timeout": params.get("Timeout", 0),
        "UseDicomTls": params.get("UseDicomTls", False),
        "RetrieveMethod": params.get("RetrieveMethod", "SystemDefault"),
    }
    commitment = params.get("AllowStorageCommitment")
    for flag in _ALLOW_FLAGS:
        default = commitment if commitment is not None and flag in (
            "AllowNAction", "AllowEventReport") else True
        result[flag] = params.get(flag, default)
    return result


def normalized_modalities(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: normalize_modality(params) for name, params in config.items()}


#: Fields of a peer that Orthanc reads itself; any other field is a user property.
PEER_RESERVED = ("CertificateFile", "CertificateKeyFile", "CertificateKeyPassword", "HttpHeaders",
                 "Password", "Pkcs11", "Url", "URL", "Username", "Timeout")


def user_property(value: Any) -> str | None:
    """A user property of a peer as Orthanc keeps it (a string), None when of no such kind."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (str, int)):
        return str(value)
    return None


def normalize_peer(params: Any) -> dict[str, Any]:
    """A peer as ``GET /peers?expand`` shows it (Orthanc's ``FormatPublic``): no secrets."""
    if isinstance(params, list):
        params = {"Url": params[0],
                  **({"Username": params[1], "Password": params[2]} if len(params) >= 3 else {})}
    url = params.get("Url", params.get("URL", ""))
    result: dict[str, Any] = {
        "HttpHeaders": sorted(params.get("HttpHeaders", {})),
        "Pkcs11": params.get("Pkcs11", False),
        "Timeout": params.get("Timeout", 0),
        "Url": url if url.endswith("/") else url + "/",
    }
    if params.get("Username"):
        result["Username"] = params["Username"]
        result["Password"] = None
    if params.get("CertificateFile"):
        result["CertificateFile"] = params["CertificateFile"]
        result["CertificateKeyFile"] = None
        result["CertificateKeyPassword"] = None
    for key, value in params.items():
        if key not in PEER_RESERVED and user_property(value) is not None:
            result[key] = user_property(value)
    return result


# -- validation of REST bodies (PUT /modalities/{n}, PUT /peers/{p}) ---------------------

_NAME = re.compile(r"[A-Za-z0-9_-]+")
MANUFACTURERS = ("Generic", "GenericNoWildcardInDates", "GenericNoUniversalWildcard", "Vitrea", "GE",
                 "SiemensSyngoCT")
#: Names of older Orthanc versions, still accepted (with a warning) as what they became.
OBSOLETE_MANUFACTURERS = {"AgfaImpax": "GenericNoWildcardInDates",
                          "SyngoVia": "GenericNoWildcardInDates", "EFilm2": "Generic",
                          "MedInria": "Generic", "ClearCanvas": "Generic", "Dcm4Chee": "Generic"}
_MODALITY_BOOLEANS = (*_ALLOW_FLAGS, "AllowStorageCommitment", "UseDicomTls")
#: A modality's ``RetrieveMethod`` (Orthanc 1.12.6); SystemDefault: ``DicomDefaultRetrieveMethod``.
RETRIEVE_METHODS = ("C-MOVE", "C-GET", "SystemDefault")
_PEER_STRINGS = ("Username", "Password", "CertificateFile", "CertificateKeyFile",
                 "CertificateKeyPassword")


def check_name(name: str) -> None:
    """Orthanc's rule for the symbolic names of modalities and peers."""
    if not _NAME.fullmatch(name):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           "Only alphanumeric, dash characters and underscores are allowed in the "
                           f"names of modalities/peers, but found: {name}")


def _port(value: Any) -> int:
    if isinstance(value, bool):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        value = int(value)
    if not isinstance(value, int):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    if not 1 <= value <= 65534:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           f"A TCP port number must be in range [1..65534], but found: {value}")
    return value


def canonical_manufacturer(value: str) -> str:
    """The manufacturer Orthanc uses for a name, obsolete names mapped to their successor."""
    if value in MANUFACTURERS:
        return value
    if value in OBSOLETE_MANUFACTURERS:
        return OBSOLETE_MANUFACTURERS[value]
    raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f'Unknown modality manufacturer: "{value}"')


def _manufacturer(value: Any) -> str:
    if not isinstance(value, str):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "String value expected in field: Manufacturer")
    if value in OBSOLETE_MANUFACTURERS:
        log.warning('The "%s" manufacturer is obsolete since Orthanc 1.3.0, using "%s" instead',
                    value, OBSOLETE_MANUFACTURERS[value])
    return canonical_manufacturer(value)


def _field(params: dict, key: str, kind: type, label: str) -> None:
    if key in params and (not isinstance(params[key], kind) or
                          (kind is int and isinstance(params[key], bool))):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"{label} value expected in field: {key}")


def parse_modality(params: Any) -> dict[str, Any]:
    """A modality from a REST body, validated as Orthanc does, in normalized form."""
    if isinstance(params, list):
        if len(params) not in (3, 4) or not all(isinstance(p, str) for p in params[:2]):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        port = _port(params[2])
        manufacturer = _manufacturer(params[3]) if len(params) == 4 else "Generic"
        return normalize_modality([params[0], params[1], port, manufacturer])
    if not isinstance(params, dict):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    for key in ("AET", "Host"):
        if not isinstance(params.get(key), str):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"String value expected in field: {key}")
    if "Port" not in params:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    checked = dict(params, Port=_port(params["Port"]))
    if "Manufacturer" in params:
        _manufacturer(params["Manufacturer"])
    for key in _MODALITY_BOOLEANS:
        _field(params, key, bool, "Boolean")
    _field(params, "LocalAet", str, "String")
    if "RetrieveMethod" in params:
        retrieve_method(params["RetrieveMethod"])
    if "Timeout" in params and (not isinstance(params["Timeout"], int) or
                                isinstance(params["Timeout"], bool) or params["Timeout"] < 0):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           "Unsigned integer value expected in field: Timeout")
    return normalize_modality(checked)


def retrieve_method(value: Any, key: str = "RetrieveMethod") -> str:
    """A ``RetrieveMethod`` as Orthanc's ``StringToRetrieveMethod`` reads it."""
    if not isinstance(value, str):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"String value expected in field: {key}")
    if value not in RETRIEVE_METHODS:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           f'RetrieveMethod can be "C-MOVE", "C-GET" or "SystemDefault": {value}')
    return value


def parse_peer(params: Any) -> dict[str, Any]:
    """A peer from a REST body, validated as Orthanc does, in object form (password kept)."""
    if isinstance(params, list):
        if len(params) not in (1, 3) or not all(isinstance(p, str) for p in params):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
        params = {"Url": params[0], **({"Username": params[1], "Password": params[2]}
                                       if len(params) == 3 else {})}
    if not isinstance(params, dict):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    url = params.get("Url", params.get("URL", ""))
    if not isinstance(url, str):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "String value expected in field: Url")
    if not url:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Empty URL")
    if not url.startswith(("http://", "https://")):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"Bad URL: {url}")
    for key in _PEER_STRINGS:
        _field(params, key, str, "String")
    _field(params, "Pkcs11", bool, "Boolean")
    headers = params.get("HttpHeaders", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "HttpHeaders must be an object of strings")
    if "Timeout" in params and (not isinstance(params["Timeout"], int) or
                                isinstance(params["Timeout"], bool) or params["Timeout"] < 0):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                           "Unsigned integer value expected in field: Timeout")
    for key, value in params.items():
        if key not in PEER_RESERVED and user_property(value) is None:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "User-defined properties associated "
                               f"with a Web service must be strings: {key}")
    result = {k: v for k, v in params.items() if k != "URL"}
    result["Url"] = url if url.endswith("/") else url + "/"
    return result


def peer_settings(params: Any) -> dict[str, Any]:
    """A configured peer in object form with its secrets, for the HTTP client."""
    if isinstance(params, list):
        params = {"Url": params[0],
                  **({"Username": params[1], "Password": params[2]} if len(params) >= 3 else {})}
    result = dict(params)
    url = result.pop("URL", None) or result.get("Url", "")
    result["Url"] = url if url.endswith("/") else url + "/"
    return result


def peer_job_view(params: Any) -> Any:
    """How a store job shows its peer (Orthanc's ``WebServiceParameters`` without passwords).

    The short array form is used unless an advanced setting needs the object form.
    """
    settings = peer_settings(params)
    advanced = bool(settings.get("HttpHeaders") or settings.get("CertificateFile") or
                    settings.get("Pkcs11") or settings.get("Timeout"))
    has_user = bool(settings.get("Username") or settings.get("Password"))
    if not advanced:
        return [settings["Url"], settings.get("Username", ""), ""] if has_user else [settings["Url"]]
    view: dict[str, Any] = {"HttpHeaders": dict(settings.get("HttpHeaders", {})),
                            "Pkcs11": bool(settings.get("Pkcs11", False)),
                            "Timeout": int(settings.get("Timeout", 0)), "Url": settings["Url"]}
    if has_user:
        view["Username"] = settings.get("Username", "")
        view["Password"] = None
    if settings.get("CertificateFile"):
        view["CertificateFile"] = settings["CertificateFile"]
        view["CertificateKeyFile"] = settings.get("CertificateKeyFile", "")
        view["CertificateKeyPassword"] = None
    return view


def find_by_aet(modalities: dict[str, dict[str, Any]], aet: str,
                strict: bool) -> list[tuple[str, dict[str, Any]]]:
    """The (name, normalized params) of the modalities whose AET is ``aet``."""
    return [(name, params) for name, params in sorted(modalities.items())
            if params["AET"] == aet or (not strict and params["AET"].upper() == aet.upper())]
