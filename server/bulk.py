"""``/tools/bulk-content`` and ``/tools/bulk-delete``: many resources, any level, one call.

Unknown (or vanished) resources are skipped silently, as Orthanc does, so that a
client can pass a list built a moment ago without racing other deletions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.dicom.main_tags import Level, parse_level
from server.errors import ErrorCode, OrthancError
from server.storage.index import Resource

if TYPE_CHECKING:
    from server.resources import ResourceViews
    from server.rest.metadata import MetadataNames
    from server.storage.index import Index
    from server.store import Store


def _at_level(index: Index, resource: Resource, level: Level) -> list[Resource]:
    """The resources of ``level`` that ``resource`` stands for: itself, its descendants or its ancestor."""
    if resource.level >= level:
        return [index.ancestor(resource, level)]
    return index.descendants(resource.internal_id, level)


def bulk_level(value: Any) -> Level:
    """A ``Level`` of these requests (a string, else a "bad file format")."""
    if not isinstance(value, str):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "The field \"Level\" must contain a string")
    return parse_level(value)


def resolve(index: Index, listed: list[str], level: Level | None) -> list[Resource]:
    """The resources a bulk-content request asks for.

    Without ``Level``: the listed resources in their order.  With it: every resource
    of that level above or below the listed ones, once each, in Orthanc ID order."""
    if level is None:
        return [r for r in map(index.lookup, listed) if r is not None]
    found: dict[str, Resource] = {}
    for public_id in sorted(set(listed)):
        resource = index.lookup(public_id)
        if resource is not None:
            found.update((r.public_id, r) for r in _at_level(index, resource, level))
    return [found[key] for key in sorted(found)]


def bulk_content(index: Index, views: ResourceViews, names: MetadataNames, listed: list[str],
                 level: Level | None, fmt: str, metadata: bool) -> list[dict[str, Any]]:
    """The expanded views of the resources, with their ``Metadata`` unless told otherwise."""
    return views.expand_many(resolve(index, listed, level), fmt, names.name if metadata else None)


def bulk_delete(index: Index, store: Store, body: dict[str, Any]) -> None:
    """Delete each listed resource: an ID, or ``{"ID", "Level"}`` to check its level.  The items
    are read as they are deleted (an invalid one stops the deletion there), as Orthanc does."""
    listed = body.get("Resources")
    if not isinstance(listed, list):
        raise OrthancError(ErrorCode.BAD_REQUEST, "The body must contain a Resources array")
    for item in listed:
        if isinstance(item, str):
            resource = index.lookup(item)
        elif isinstance(item, dict) and isinstance(item.get("ID"), str) and isinstance(item.get("Level"), str):
            resource = index.lookup(item["ID"], bulk_level(item["Level"]))
        else:
            raise OrthancError(ErrorCode.BAD_REQUEST, "Invalid payload")
        if resource is not None:
            store.delete(resource)
