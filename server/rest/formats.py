"""The GET arguments that choose how DICOM tags are rendered, read as Orthanc reads them."""

from __future__ import annotations

from typing import Any

from server.dicom.encode import parse_tag
from server.errors import ErrorCode, OrthancError
from server.rest.base import OrthancHandler

FORMATS = ("simplify", "short", "full")


def dicom_format(handler: OrthancHandler, default: str) -> str:
    """``?simplify``, ``?short`` or ``?full`` (the first present wins, whatever its value)."""
    for name in FORMATS:
        if name in handler.request.arguments:
            return name
    return default


def body_format(body: dict[str, Any], default: str) -> str:
    """The ``Simplify``/``Short``/``Full`` Booleans of a JSON request (``/tools/find``...)."""
    for name, key in zip(FORMATS, ("Simplify", "Short", "Full"), strict=True):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT,
                               f'The field "{key}" must contain a Boolean')
        if value:
            return name
    return default


def ignore_length(handler: OrthancHandler) -> frozenset[int]:
    """``?ignore-length=0018-1020,PatientName``: tags shown whatever the length of their value."""
    text = handler.get_argument("ignore-length", None)
    if not text:
        return frozenset()
    return frozenset(parse_tag(token.strip()) for token in text.split(","))
