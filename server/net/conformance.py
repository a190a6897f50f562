"""The DICOM conformance statement served by ``/tools/dicom-conformance``."""

from __future__ import annotations

from pydicom.uid import UID
from pynetdicom.presentation import AllStoragePresentationContexts

from server.net.scp import KNOWN_TRANSFER_SYNTAXES


def conformance_statement() -> str:
    """A plain-text list of the SOP classes and transfer syntaxes the SCP accepts."""
    lines = ["Isengard DICOM conformance statement", "",
             "Verification SCP: 1.2.840.10008.1.1", "", "Storage SCP SOP classes:"]
    for context in AllStoragePresentationContexts:
        uid = UID(context.abstract_syntax)
        lines.append(f"  {uid} {uid.name}")
    lines += ["", "Transfer syntaxes:"]
    lines += [f"  {ts} {UID(ts).name}" for ts in KNOWN_TRANSFER_SYNTAXES]
    return "\n".join(lines) + "\n"
