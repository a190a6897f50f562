"""Orthanc's XML answers: a client that sends ``Accept: application/xml`` gets every
JSON answer of the REST API converted, as Orthanc's ``Toolbox::JsonToXml`` writes it
(pugixml, two-space indent): the document is ``<root>``, array items are ``<item>``,
object members are elements named after their keys (in sorted order, whatever the
characters), null is the text ``null``, Booleans ``true``/``false``."""

from __future__ import annotations

import re
import struct
from typing import Any

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: What pugixml escapes in text: ``&<>`` and the control characters but tab, CR and LF.
_SPECIAL = re.compile("[&<>\x01-\x08\x0b\x0c\x0e-\x1f]")


def wants_xml(accept: str) -> bool:
    """Orthanc splits ``Accept`` on ``;`` and compares each piece exactly; the last of
    ``application/xml`` or ``application/json`` decides (``text/html,application/xml``
    does not ask for XML, ``application/xml; q=1`` does)."""
    xml = False
    for piece in accept.split(";"):
        if piece == "application/xml":
            xml = True
        elif piece == "application/json":
            xml = False
    return xml


def json_to_xml(value: Any) -> bytes:
    lines = ['<?xml version="1.0" encoding="utf-8"?>']
    _element(lines, "root", value, 0)
    return ("\n".join(lines) + "\n").encode("utf-8")


def _element(lines: list[str], name: str, value: Any, depth: int) -> None:
    indent = "  " * depth
    name = name or ":anonymous"
    children: list[tuple[str, Any]] | None = None
    if isinstance(value, dict):
        children = sorted(value.items())
    elif isinstance(value, list):
        children = [("item", item) for item in value]
    if children is None:
        lines.append(f"{indent}<{name}>{_text(value)}</{name}>")
    elif not children:
        lines.append(f"{indent}<{name} />")
    else:
        lines.append(f"{indent}<{name}>")
        for child_name, child in children:
            _element(lines, child_name, child, depth + 1)
        lines.append(f"{indent}</{name}>")


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_text(value)
    text = str(value).split("\0", 1)[0]
    return _SPECIAL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"&#{code // 10}{code % 10};"


def _float_text(value: float) -> str:
    """Orthanc writes reals through a C++ float, with up to 9 significant digits."""
    single = struct.unpack("f", struct.pack("f", value))[0]
    return f"{single:.9g}"
