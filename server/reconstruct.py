"""``POST /{level}/{id}/reconstruct`` and ``/tools/reconstruct``: re-index from the files.

Each instance below the resource is parsed again and its main DICOM tags (and
those of its patient, study and series, with the signature of the main tags of
today's configuration and the ``MainDicomSequences``) replace what the index holds, so that
the last instance reconstructed decides the tags of its parents, as in Orthanc.
This is how a client repairs parents whose children disagree (after a
modification that kept the UIDs, a change of the ``Dictionary``...).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from server.dicom.main_tags import Level
from server.dicom.parse import parse_for_index
from server.errors import OrthancError
from server.storage.index import Metadata, Resource
from server.store import main_tags_metadata

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles
    from server.storage.index import Index
    from server.store import Store

log = logging.getLogger("isengard.reconstruct")


def reconstruct_resource(files: InstanceFiles, resource: Resource) -> None:
    log.warning("Reconstructing resource %s", resource.public_id)
    for instance in files.index.descendants(resource.internal_id, Level.INSTANCE):
        reconstruct_instance(files.index, files.store, files.default_encoding, instance)


def reconstruct_instance(index: Index, store: Store, default_encoding: str, instance: Resource) -> None:
    """Re-index one instance and its ancestors from its file (also the end of a
    modification job, Orthanc 1.11.3); nothing if it was deleted meanwhile."""
    try:
        data = store.read_dicom(instance)
    except OrthancError:
        if index.lookup(instance.public_id) is None:
            return
        raise
    parsed = parse_for_index(data, default_encoding)
    metadata: dict[int, str] = {}
    if parsed.transfer_syntax:
        metadata[Metadata.TransferSyntax] = parsed.transfer_syntax
    if parsed.sop_class_uid:
        metadata[Metadata.SopClassUid] = parsed.sop_class_uid
    index.reconstruct_instance(instance, parsed.tags, metadata, {
        level: main_tags_metadata(parsed, level) for level in Level})


def reconstruct_all(files: InstanceFiles) -> None:
    """Every study in turn, so that memory stays bounded on a large index."""
    for study_id in files.index.list_ids(Level.STUDY):
        study = files.index.lookup(study_id, Level.STUDY)
        if study is not None:
            reconstruct_resource(files, study)
