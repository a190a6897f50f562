"""``/system``, ``/statistics``, ``/changes``, ``/exports``."""

from __future__ import annotations

from server import ORTHANC_API_VERSION, ORTHANC_VERSION, __version__
from server.dicom.main_tags import Level
from server.resources import size_fields
from server.rest.base import OrthancHandler
from server.storage.index import SCHEMA_VERSION, ChangeRecord

_MAX_CHANGES = 10000


class SystemHandler(OrthancHandler):
    async def get(self) -> None:
        config = self.ctx.config
        self.answer_json({
            "ApiVersion": ORTHANC_API_VERSION,
            "CheckRevisions": config["CheckRevisions"],
            "DatabaseBackendPlugin": None,
            "DatabaseVersion": SCHEMA_VERSION,
            "DicomAet": config["DicomAet"],
            "DicomPort": self.ctx.dicom_port,
            "HttpPort": self.ctx.http_port,
            "IsHttpServerSecure": bool(config["SslEnabled"] or config["AuthenticationEnabled"]
                                       or not config["RemoteAccessAllowed"]),
            "IsengardVersion": __version__,
            "Name": config["Name"],
            "PluginsEnabled": False,
            "StorageAreaPlugin": None,
            "Version": ORTHANC_VERSION,
        })


class StatisticsHandler(OrthancHandler):
    async def get(self) -> None:
        self.answer_json(await self.run(self._statistics))

    def _statistics(self) -> dict:
        index = self.ctx.index
        disk, uncompressed = index.totals()
        result = {
            "CountPatients": index.count(Level.PATIENT),
            "CountStudies": index.count(Level.STUDY),
            "CountSeries": index.count(Level.SERIES),
            "CountInstances": index.count(Level.INSTANCE),
        }
        result |= size_fields("TotalDiskSize", disk)
        result |= size_fields("TotalUncompressedSize", uncompressed)
        return result


def _change_json(change: ChangeRecord) -> dict:
    return {"ChangeType": change.change.name, "Date": change.date, "ID": change.public_id,
            "Path": f"/{change.level.plural}/{change.public_id}",
            "ResourceType": change.level.title, "Seq": change.seq}


class ChangesHandler(OrthancHandler):
    async def get(self) -> None:
        index = self.ctx.index
        if self.flag("last"):
            records, last = await self.run(index.last_change)
            done = True
        else:
            since = self.int_argument("since", 0)
            limit = min(self.int_argument("limit", 100), _MAX_CHANGES)
            records, done, last = await self.run(index.changes, since, limit)
        self.answer_json({"Changes": [_change_json(c) for c in records], "Done": done,
                          "Last": last})

    async def delete(self) -> None:
        await self.run(self.ctx.index.clear_changes)
        self.answer_json({})


class ExportsHandler(OrthancHandler):
    async def get(self) -> None:
        if self.flag("last"):
            _, _, last = await self.run(self.ctx.index.exports, 0, 0)
            rows, done, last = await self.run(self.ctx.index.exports, max(last - 1, 0), 1)
        else:
            since = self.int_argument("since", 0)
            limit = min(self.int_argument("limit", 100), _MAX_CHANGES)
            rows, done, last = await self.run(self.ctx.index.exports, since, limit)
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
        self.answer_json({"Done": done, "Exports": exports, "Last": last})

    async def delete(self) -> None:
        await self.run(self.ctx.index.clear_exports)
        self.answer_json({})


def routes() -> list[tuple[str, type]]:
    return [
        (r"/system", SystemHandler),
        (r"/statistics", StatisticsHandler),
        (r"/changes", ChangesHandler),
        (r"/exports", ExportsHandler),
    ]
