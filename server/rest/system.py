"""``/system``, ``/statistics``, ``/changes``, ``/exports``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server import ORTHANC_API_VERSION, ORTHANC_VERSION, __version__
from server.dicom.main_tags import Level, main_tags_signature
from server.errors import ErrorCode, OrthancError
from server.resources import size_fields
from server.rest.base import OrthancHandler, Route, with_services
from server.storage.index import SCHEMA_VERSION, Change, ChangeRecord
from server.store import Limits
from server.system_info import database_server_identifier, performance, third_party_versions

if TYPE_CHECKING:
    from server.config import Configuration
    from server.storage.index import Index
    from server.store import Store

#: Changes or exports per page when ``limit`` is not given.
_DEFAULT_LIMIT = 100


class SystemHandler(OrthancHandler):
    config: Configuration
    dicom_port: int
    http_port: int
    store: Store

    async def get(self) -> None:
        config = self.config
        self.answer_json({
            "ApiVersion": ORTHANC_API_VERSION,
            "Capabilities": {"HasExtendedChanges": True, "HasExtendedFind": True,
                             "HasKeyValueStores": True, "HasQueues": True,
                             "HasReserveQueueValue": True},
            "CheckRevisions": config["CheckRevisions"],
            "DatabaseBackendPlugin": self.store.index.database.backend_plugin,
            "DatabaseServerIdentifier": database_server_identifier(config, self.dicom_port,
                                                                   self.http_port),
            "DatabaseVersion": SCHEMA_VERSION,
            "DicomAet": config["DicomAet"],
            "DicomDefaultRetrieveMethod": config["DicomDefaultRetrieveMethod"],
            "DicomPort": self.dicom_port,
            "HasLabels": True,
            "HttpPort": self.http_port,
            "IngestTranscoding": config.get("IngestTranscoding") or "",
            "MainDicomTags": {level.title: main_tags_signature(level) for level in Level},
            "MaximumPatientCount": config["MaximumPatientCount"],
            "MaximumStorageMode": config["MaximumStorageMode"],
            "MaximumStorageSize": config["MaximumStorageSize"],
            "OverwriteInstances": self.store.limits.overwrite,
            "OverwriteInstancesMode": _overwrite_mode(self.store.limits),
            "StorageCompression": config["StorageCompression"],
            "UserMetadata": dict(config["UserMetadata"]),
            "IsHttpServerSecure": bool(config["SslEnabled"] or config["AuthenticationEnabled"]
                                       or not config["RemoteAccessAllowed"]),
            "IsengardVersion": __version__,
            "Name": config["Name"],
            "PatientLevelEnabled": True,
            "Performance": performance(config),
            "PluginsEnabled": False,
            "ReadOnly": config["ReadOnly"],
            "StorageAreaPlugin": None,
            "StoreMD5ForAttachments": config["StoreMD5ForAttachments"],
            "ThirdPartyPatches": [],
            "ThirdPartyVersions": third_party_versions(),
            "Version": ORTHANC_VERSION,
        })


def _overwrite_mode(limits: Limits) -> str:
    if not limits.overwrite:
        return "Never"
    return "IfChanged" if limits.overwrite_if_changed else "Always"


class StatisticsHandler(OrthancHandler):
    index: Index

    async def get(self) -> None:
        self.answer_json(await self.run(self._statistics))

    def _statistics(self) -> dict:
        counts, (disk, uncompressed) = self.index.counts()
        result = {
            "CountPatients": counts[Level.PATIENT],
            "CountStudies": counts[Level.STUDY],
            "CountSeries": counts[Level.SERIES],
            "CountInstances": counts[Level.INSTANCE],
        }
        result |= size_fields("TotalDiskSize", disk)
        result |= size_fields("TotalUncompressedSize", uncompressed)
        return result


def _change_json(change: ChangeRecord) -> dict:
    return {"ChangeType": change.change.name, "Date": change.date, "ID": change.public_id,
            "Path": f"/{change.level.plural}/{change.public_id}",
            "ResourceType": change.level.title, "Seq": change.seq}


def _log_answer(name: str, items: list[dict], done: bool, since: int,
                last_logged: int | None) -> dict:
    """Orthanc's ``FormatLog``: ``Last`` is the last item returned, so that it can be the
    next ``since``; with no item, the last change ever logged (``last_logged``), or ``since``
    when that is not known (exports)."""
    if items:
        last = items[-1]["Seq"]
    else:
        last = since if last_logged is None else last_logged
    answer = {name: items, "Done": done, "Last": last}
    if items:
        answer["First"] = items[0]["Seq"]
    return answer


def _log_window(handler: OrthancHandler) -> tuple[int, int]:
    """``since`` and ``limit`` as Orthanc reads them: both fall back to their defaults
    (0 and 100) when either is not a number; ``limit`` is unsigned 32-bit."""
    try:
        since = int(handler.get_argument("since", "0"))
        limit = int(handler.get_argument("limit", str(_DEFAULT_LIMIT)))
    except ValueError:
        return 0, _DEFAULT_LIMIT
    if not -2**63 <= since < 2**63 or not -2**32 < limit < 2**32:
        return 0, _DEFAULT_LIMIT
    return since, limit & 0xFFFFFFFF


def _change_filters(handler: OrthancHandler) -> tuple[set[Change], int | None]:
    """``type=NewStudy;StableStudy`` and ``to=N`` (Orthanc 1.12.5's ExtendedChanges)."""
    text = handler.get_argument("type", "all")
    types: set[Change] = set()
    if text not in ("all", "All"):
        for name in filter(None, text.split(";")):
            if name not in Change.__members__:
                raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Unknown change type: {name}")
            types.add(Change[name])
    try:
        to = int(handler.get_argument("to")) if "to" in handler.request.arguments else None
    except ValueError:
        to = None
    return types, to


class ChangesHandler(OrthancHandler):
    index: Index

    async def get(self) -> None:
        index = self.index
        if "last" in self.request.arguments:
            records, last_logged = await self.run(index.last_change)
            since, done = 0, True
        else:
            since, limit = _log_window(self)
            types, to = _change_filters(self)
            if types or to is not None:
                records, done, last_logged = await self.run(index.changes_extended, since, to,
                                                            limit, types)
            else:
                records, done, last_logged = await self.run(index.changes, since, limit)
        self.answer_json(_log_answer("Changes", [_change_json(c) for c in records], done, since,
                                     last_logged))

    async def delete(self) -> None:
        await self.run(self.index.clear_changes)
        self.answer_json({})


class ExportsHandler(OrthancHandler):
    index: Index

    async def get(self) -> None:
        if "last" in self.request.arguments:
            rows = await self.run(self.index.last_export)
            since, done = 0, True
        else:
            since, limit = _log_window(self)
            rows, done = await self.run(self.index.exports, since, limit)
        exports = []
        for seq, level, public_id, modality, patient, study, series, sop, date in rows:
            level = Level(level)
            item = {"Date": date, "ID": public_id, "Path": f"/{level.plural}/{public_id}",
                    "PatientID": patient, "RemoteModality": modality,
                    "ResourceType": level.title, "Seq": seq}
            if level >= Level.STUDY:
                item["StudyInstanceUID"] = study
            if level >= Level.SERIES:
                item["SeriesInstanceUID"] = series
            if level >= Level.INSTANCE:
                item["SOPInstanceUID"] = sop
            exports.append(item)
        self.answer_json(_log_answer("Exports", exports, done, since, None))

    async def delete(self) -> None:
        await self.run(self.index.clear_exports)
        self.answer_json({})


def paths() -> list[tuple[str, type]]:
    return [
        (r"/system", SystemHandler),
        (r"/statistics", StatisticsHandler),
        (r"/changes", ChangesHandler),
        (r"/exports", ExportsHandler),
    ]


def routes(*, config: Configuration, dicom_port: int, http_port: int, index: Index, store: Store) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), config=config, dicom_port=dicom_port, http_port=http_port, index=index, store=store)
