"""The ``ExtraMainDicomTags`` option (Orthanc 1.11): more tags indexed for each level."""

from __future__ import annotations

import logging
from typing import Any

import server
from server.config import ConfigError
from server.dicom import main_tags
from server.dicom.dictionary import tag_name, vr_without_creator
from server.dicom.main_tags import Level, Tag
from server.errors import OrthancError
from server.find import parse_tag
from server.requested_tags import COMPUTED

log = logging.getLogger("isengard.config")


def parse_option(option: Any) -> dict[Level, list[tuple[Tag, str, bool]]]:
    """Orthanc's ``LoadMainDicomTags``: ``{level: [name or gggg,eeee, ...]}`` -> for each level
    its ``(tag, keyword, is_sequence)``.  A computed tag is left out with a warning; an unknown
    level, a non-array entry or an unknown tag stops start-up."""
    if not isinstance(option, dict):
        return {}
    result: dict[Level, list[tuple[Tag, str, bool]]] = {}
    for level_name, names in option.items():
        try:
            level = Level.parse(level_name)
        except ValueError:
            raise ConfigError(f"Invalid resource type '{level_name}' in ExtraMainDicomTags") from None
        if not isinstance(names, list):
            raise ConfigError(f"The definition of the '{level_name}' ExtraMainDicomTags entry is "
                              "invalid (not an array).")
        entries = result.setdefault(level, [])
        for name in names:
            try:
                tag = parse_tag(str(name))
            except OrthancError:
                raise ConfigError(f"Unknown DICOM tag in ExtraMainDicomTags: {name}") from None
            if tag in COMPUTED:
                log.warning("  - %s cannot be added in the Extra Main Dicom Tags since the value "
                            "of this tag is computed when requested", name)
                continue
            entries.append((tag, tag_name(*tag), vr_without_creator(*tag) == "SQ"))
    return result


def configure(option: Any) -> None:
    """Set the process-wide main tags of this run (before anything is indexed)."""
    for warning in main_tags.configure(parse_option(option), server.ORTHANC_API_VERSION):
        log.warning("  - !!! %s", warning)
