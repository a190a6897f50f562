"""The commented sample configuration printed by ``--config``.

It is generated from the schema so that it cannot drift from the options actually
declared. Every option appears with its default; options without a default (their
absence means something) are shown commented out with an example, as in Orthanc's
own sample.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from server.config.validation import options

_WIDTH = 76

_HEADER = [
    "  // Isengard configuration (JSON with comments). Relative paths are resolved",
    "  // against the folder of this file. \"${VAR}\" and \"${VAR:-default}\" are",
    "  // replaced by environment variables before parsing.",
]


def default_configuration_text() -> str:
    """A JSON-with-comments document listing every option, its default and purpose."""
    declared = options()
    with_default = [name for name, declaration in declared.items() if "default" in declaration]
    last = with_default[-1] if with_default else None
    lines = ["{", *_HEADER]
    section = None
    for name, declaration in declared.items():
        if declaration.get("x-section") != section:
            section = declaration.get("x-section")
            lines += ["", "", "  /**", f"   * {section}", "   **/"]
        lines.append("")
        lines += _option_lines(name, declaration, comma=name != last)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _option_lines(name: str, declaration: dict[str, Any], comma: bool) -> list[str]:
    lines = [f"  // {line}" for line in textwrap.wrap(declaration["description"], _WIDTH)]
    examples = declaration.get("examples")
    if "default" not in declaration:
        lines.append(f"  // {_entry(name, examples[0] if examples else None)},")
        return lines
    if examples:
        lines.append(f"  // Example: {_entry(name, examples[0])}")
    lines.append(f"  {_entry(name, declaration['default'])}" + ("," if comma else ""))
    return lines


def _entry(name: str, value: Any) -> str:
    return f"{json.dumps(name)} : {json.dumps(value, ensure_ascii=False)}"
