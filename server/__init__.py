"""Isengard: an Orthanc-compatible DICOM server written in Python."""

import os

__version__ = "0.1.0"

#: The Orthanc release whose REST API level Isengard implements (``/system`` Version).
ORTHANC_VERSION = "1.13.0"
#: Orthanc's ``ApiVersion`` for that release.
ORTHANC_API_VERSION = 31

# ``ISENGARD_ORTHANC_LEVEL=1.10.1:16`` (a release and its ApiVersion): answer as that older
# release does, wherever Orthanc's behaviour changed since (each change is keyed on the
# ApiVersion).  For the tests that compare Isengard with the real Orthanc 1.10.1 Debian
# ships; not a configuration option, as Orthanc has none.
if _level := os.environ.get("ISENGARD_ORTHANC_LEVEL"):
    _version, _, _api = _level.partition(":")
    ORTHANC_VERSION, ORTHANC_API_VERSION = _version, int(_api)
