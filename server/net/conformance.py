"""The DICOM conformance statement served by ``/tools/dicom-conformance``."""

from __future__ import annotations

from pydicom.uid import UID
from pynetdicom import AE


def conformance_statement(ae: AE | None) -> str:
    """The SOP classes the running DICOM server accepts, with their roles and transfer syntaxes."""
    lines = ["Isengard DICOM conformance statement", ""]
    if ae is None:
        return "\n".join([*lines, "The DICOM server is disabled (DicomServerEnabled is false)."]) + "\n"
    syntaxes: dict[str, None] = {}
    lines.append("SOP classes (SCP unless noted):")
    for context in sorted(ae.supported_contexts, key=lambda cx: UID(cx.abstract_syntax).name):
        uid = UID(context.abstract_syntax)
        roles = " (SCU and SCP roles)" if context.scu_role and context.scp_role else ""
        lines.append(f"  {uid} {uid.name}{roles}")
        syntaxes.update(dict.fromkeys(context.transfer_syntax))
    lines += ["", "Transfer syntaxes:"]
    lines += [f"  {ts} {UID(ts).name}" for ts in syntaxes]
    return "\n".join(lines) + "\n"
