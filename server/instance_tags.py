"""The DICOM tags of the instances below a resource: ``/tags``, ``/instances-tags``,
``/shared-tags`` and ``/module``, all derived from each file's full JSON rendering
as Orthanc derives them (so the three output formats behave alike everywhere)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

from server.dicom import dicomweb, json_format
from server.dicom.json_format import Json
from server.dicom.main_tags import Level
from server.dicom.modules import Module, module_keys
from server.dicom.parse import read_dataset, read_stored_dataset
from server.errors import OrthancError
from server.storage.index import Resource

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles


def full_tags(files: InstanceFiles, instance: Resource,
              ignore_length: frozenset[int] = frozenset(), whole: bool = False) -> Json:
    """The tags of one instance in the full format (``/instances/{id}/tags``); with ``whole``,
    the tags stored after the pixel data too.

    Kept in the cache of parsed files (keyed by the file's UUID, so never stale), as Orthanc
    keeps the file parsed: reading, parsing and converting a 34 KB CT slice took ~1 ms of the
    ~1.6 ms of CPU of its ``/tags``.  The document is shared: callers only read it.
    """
    attachment = files.store.dicom_attachment(instance)
    encoding = files.default_encoding  # PUT /tools/default-encoding changes it at run time
    key = ("tags", attachment.uuid, encoding, ignore_length, whole)
    cached = files.decoded.get(key)
    if cached is not None:
        return cast(Json, cached)
    data = files.store.read_dicom(instance, attachment)
    ds = read_stored_dataset(data)
    tags = json_format.tags_full(ds, encoding, ignore_length, whole)
    files.decoded.put(key, tags, _footprint(tags), files.cache_budget)
    return tags


#: The memory a full-format element takes, about (tracemalloc: 560 bytes on average for the
#: 53 elements of a CT slice, whose document takes 29 KB).
_ELEMENT_BYTES = 600


def _footprint(tags: Json) -> int:
    """The bytes a full-format document holds, about: what it counts for in the cache (a
    small file's document can take ten times the file's size)."""
    size = 0
    for node in tags.values():
        size += _ELEMENT_BYTES
        if node.get("Type") == "Sequence":
            size += sum(_footprint(item) for item in node["Value"])
    return size


def dicomweb_file(files: InstanceFiles, instance: Resource, xml: bool) -> str:
    """The whole file of one instance in DICOMweb JSON, or XML (``/file`` with ``Accept``)."""
    ds, _ = read_dataset(files.store.read_dicom(instance))
    document = dicomweb.dicomweb_json(ds, files.default_encoding)
    return dicomweb.dicomweb_xml(document) if xml else json.dumps(document, indent=3, sort_keys=True)


def _instances(files: InstanceFiles, resource: Resource) -> list[Resource]:
    return files.index.descendants(resource.internal_id, Level.INSTANCE)


def instances_tags(files: InstanceFiles, resource: Resource, fmt: str,
                   ignore_length: frozenset[int]) -> dict[str, Json]:
    """Instance ID -> its tags in ``fmt``, for every instance below ``resource``.

    An instance deleted while the answer is built is left out, as in Orthanc."""
    result: dict[str, Json] = {}
    for instance in _instances(files, resource):
        try:
            result[instance.public_id] = json_format.render(
                full_tags(files, instance, ignore_length), fmt)
        except OrthancError:
            if files.index.lookup(instance.public_id) is not None:
                raise
    return result


def shared_tags(files: InstanceFiles, resource: Resource) -> Json:
    """The string tags (full format) whose value is the same in every instance below ``resource``.

    Sequences, binary, empty-number and too long values never count as shared."""
    shared: Json | None = None
    for instance in _instances(files, resource):
        try:
            tags = full_tags(files, instance)
        except OrthancError:
            continue
        strings = {k: v for k, v in tags.items() if v.get("Type") == "String"}
        if shared is None:
            shared = strings
        else:
            shared = {k: v for k, v in shared.items()
                      if k in strings and strings[k]["Value"] == v["Value"]}
    return shared or {}


def module_tags(files: InstanceFiles, resource: Resource, module: Module,
                ignore_length: frozenset[int]) -> Json | None:
    """The tags of a DICOM module (full format), read from the first instance below ``resource``.

    None when the resource has no instance any more."""
    instances = [resource] if resource.level is Level.INSTANCE else _instances(files, resource)
    if not instances:
        return None
    tags = full_tags(files, instances[0], ignore_length)
    keys = module_keys(module)
    return {key: value for key, value in tags.items() if key in keys}
