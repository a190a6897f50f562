"""Isengard: an Orthanc-compatible DICOM server written in Python."""

__version__ = "0.1.0"

#: The Orthanc release whose REST API level Isengard implements (``/system`` Version).
ORTHANC_VERSION = "1.10.1"
#: Orthanc's ``ApiVersion`` for that release.
ORTHANC_API_VERSION = 16
