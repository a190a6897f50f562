"""``DicomModalities`` and ``OrthancPeers`` entries in Orthanc's normalized JSON form.

The configuration accepts short array forms and object forms (see the spec's
dicom-network.md); everything else in the server reads the normalized form.
"""

from __future__ import annotations

from typing import Any

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
        "Manufacturer": params.get("Manufacturer", "Generic"),
        "LocalAet": params.get("LocalAet", ""),
        "Timeout": params.get("Timeout", 0),
        "UseDicomTls": params.get("UseDicomTls", False),
    }
    commitment = params.get("AllowStorageCommitment")
    for flag in _ALLOW_FLAGS:
        default = commitment if commitment is not None and flag in (
            "AllowNAction", "AllowEventReport") else True
        result[flag] = params.get(flag, default)
    return result


def normalized_modalities(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: normalize_modality(params) for name, params in config.items()}


def normalize_peer(params: Any) -> dict[str, Any]:
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
    if "Username" in params:
        result["Username"] = params["Username"]
        result["Password"] = None
    for key in ("CertificateFile", "CertificateKeyFile"):
        if key in params:
            result[key] = params[key]
    return result


def normalized_peers(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: normalize_peer(params) for name, params in config.items()}
