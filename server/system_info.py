"""The parts of ``GET /system`` that are computed rather than read from the configuration."""

from __future__ import annotations

import functools
import hashlib
import importlib
import platform
from pathlib import Path
from typing import Any

#: The libraries Isengard is built on, as ``ThirdPartyVersions`` names them (Orthanc 1.13
#: lists its own: dcmtk, boost...; a client tests a library by name), with the module and the
#: attribute that tell the version in use.
_LIBRARIES = {"pydicom": ("pydicom", "__version__"), "pynetdicom": ("pynetdicom", "__version__"),
              "tornado": ("tornado", "version"), "lupa": ("lupa", "__version__"),
              "Pillow": ("PIL", "__version__"), "numpy": ("numpy", "__version__")}


def database_server_identifier(config: Any, dicom_port: int, http_port: int) -> str:
    """Orthanc 1.11.1's ``DatabaseServerIdentifier``: the option, or else the SHA-1 (Orthanc's
    dashed form) of the host's MAC addresses, the AET and the two ports, so that servers
    sharing one database tell themselves apart."""
    configured = config.get("DatabaseServerIdentifier")
    if configured:
        return str(configured)
    return _hashed_identifier(config["DicomAet"], dicom_port, http_port)


@functools.cache
def _hashed_identifier(aet: str, dicom_port: int, http_port: int) -> str:
    """Hashed once per AET and ports (each ``/system`` shows it)."""
    items = {f"mac={mac}" for mac in _mac_addresses()}
    items |= {f"aet={aet}", f"dicom-port={dicom_port}", f"http-port={http_port}"}
    digest = hashlib.sha1("|".join(sorted(items)).encode()).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


@functools.cache
def _mac_addresses() -> frozenset[str]:
    """Read once: ``/system`` is answered on the event loop, which must not touch the disk."""
    addresses: set[str] = set()
    for path in Path("/sys/class/net").glob("*/address"):
        try:
            mac = path.read_text().strip()
        except OSError:
            continue
        if mac and mac.strip("0:"):
            addresses.add(mac)
    return frozenset(addresses)


def performance(config: Any) -> dict[str, int]:
    """Orthanc 1.13's ``Performance``: the sizes (MB) and thread counts that bound the work,
    limited to the pools Isengard has."""
    return {"ConcurrentJobs": int(config["ConcurrentJobs"]),
            "DicomThreadsCount": int(config["DicomThreadsCount"]),
            "HttpThreadsCount": int(config["HttpThreadsCount"]),
            "MaximumStorageCacheSize": int(config["MaximumStorageCacheSize"])}


def third_party_versions() -> dict[str, str]:
    """Orthanc 1.13's ``ThirdPartyVersions``: the versions of the libraries in use."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> dict[str, str]:
    """Found once, from the modules serving has imported already (the packages' metadata, read
    from disk on the event loop, took ~4 ms of the first ``/system``)."""
    versions = {"Python": platform.python_version()}
    for name, (module, attribute) in _LIBRARIES.items():
        try:
            versions[name] = str(getattr(importlib.import_module(module), attribute))
        except ImportError:
            continue
    return versions
