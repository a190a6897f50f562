"""Every job type of the registry survives a restart: serialize, restore, serialize again.

The engine restores saved jobs only through the registry the composition root gives
it, so a type missing there (or restoring badly) would be lost on the next start.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import server.jobs
from server.app import Server
from server.config import load_configuration
from server.dicom.main_tags import Level
from server.jobs.archive import ArchiveJob, MediaJob
from server.jobs.get_scu import DicomGetScuJob
from server.jobs.job import Job
from server.jobs.modification import ResourceModificationJob
from server.jobs.move_scu import DicomMoveScuJob
from server.jobs.peer_store import OrthancPeerStoreJob
from server.jobs.split_merge import MergeStudyJob, SplitStudyJob
from server.jobs.storage_commitment_scp import StorageCommitmentScpJob
from server.jobs.store_scu import DicomModalityStoreJob
from server.jobs.transfers import PullTransferJob, PushTransferJob, TransferQuery
from server.rest.requests import modify_request
from server.store import Origin

MODALITY = {"AET": "REMOTE", "Host": "127.0.0.1", "Port": 11112}
INSTANCES = ["0a9b3153-2512774b-2d9580de-1fc3dcf6-3bd83918", "1b9b3153-2512774b-2d9580de-1fc3dcf6-3bd83918"]
ORIGIN = Origin("RestApi", remote_ip="127.0.0.1", http_username="alice")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Server]:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"StorageDirectory": str(tmp_path / "storage"),
                                       "IndexDirectory": str(tmp_path / "storage")}))
    context = Server(load_configuration(config_path))
    yield context
    context.index.close()


def samples(root: Server) -> dict[str, Callable[[], Job]]:
    """One job of each type, built with the services the composition root gives its family."""
    modification = root.modification_services
    modify = modify_request({"Replace": {"PatientName": "Renamed"}}, "Isengard")
    modify.set_level(Level.STUDY)
    return {
        ArchiveJob.TYPE: lambda: ArchiveJob(root.archive_services, INSTANCES[:1], transcode="1.2.840.10008.1.2.1"),
        MediaJob.TYPE: lambda: MediaJob(root.archive_services, INSTANCES, extended=True),
        ResourceModificationJob.TYPE: lambda: ResourceModificationJob(
            modification, INSTANCES, modify, Level.STUDY, keep_labels=True, origin=ORIGIN, keep_source=False),
        SplitStudyJob.TYPE: lambda: SplitStudyJob(
            modification, INSTANCES, source_study="study", target_study_uid="1.2.3", replacements={0x00100010: "X"},
            removals=[0x00100030], series_uids={"series": "1.2.4"}, origin=ORIGIN, keep_source=False),
        MergeStudyJob.TYPE: lambda: MergeStudyJob(
            modification, INSTANCES, target_study="target", replacements={}, removals=[], series_uids={},
            origin=ORIGIN, keep_source=True, permissive=True),
        DicomModalityStoreJob.TYPE: lambda: DicomModalityStoreJob(
            root.send_services, INSTANCES, MODALITY, local_aet="LOCAL", timeout=5.0, move_originator_aet="MOVER",
            move_originator_id=7, storage_commitment=True, modality_name="remote"),
        OrthancPeerStoreJob.TYPE: lambda: OrthancPeerStoreJob(
            root.send_services, INSTANCES, ["http://127.0.0.1:8043/", "user", "secret"], peer_name="peer",
            compress=True, transcode="1.2.840.10008.1.2.4.50"),
        DicomMoveScuJob.TYPE: lambda: DicomMoveScuJob(
            root.config, MODALITY, "TARGET", [{"0008,0052": "STUDY", "0020,000d": "1.2.3"}], local_aet="LOCAL",
            query_format="Simplify"),
        DicomGetScuJob.TYPE: lambda: _get_job(root),
        StorageCommitmentScpJob.TYPE: lambda: StorageCommitmentScpJob(
            root.commitment, "2.25.1", [("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4")], "REMOTE", "ISENGARD"),
        PushTransferJob.TYPE: lambda: PushTransferJob(root.transfers.job_services, _transfer_query(root, None)),
        PullTransferJob.TYPE: lambda: PullTransferJob(root.transfers.job_services, _transfer_query(root, "uuid")),
    }


def _transfer_query(root: Server, originator: str | None) -> TransferQuery:
    """A transfer to or from a configured peer (the jobs refuse an unknown one)."""
    root.network.peers.put("peer", {"Url": "http://127.0.0.1:8043/"})
    return TransferQuery.parse({"Peer": "peer", "Resources": [{"Level": "Study", "ID": "study"}],
                                "Compression": "gzip", "Originator": originator} if originator else
                               {"Peer": "peer", "Resources": [{"Level": "Series", "ID": "series"}],
                                "Compression": "none", "SenderTransferID": "transfer"})


def _get_job(root: Server) -> DicomGetScuJob:
    """A C-GET job half done: one command ran (with its received instances), one failed."""
    job = DicomGetScuJob(root.send_services, MODALITY, [{"0008,0052": "STUDY", "0020,000d": "1.2.3"},
                                                        {"0008,0052": "SERIES", "0020,000e": "1.2.4"}],
                         local_aet="LOCAL", timeout=7.0, query_format="Full", permissive=True,
                         sop_classes=["1.2.840.10008.5.1.4.1.1.2"])
    job.commands[0].received.append(INSTANCES[0])
    job.commands[1].dimse_error_status = 0xC000
    job.position = 1
    return job


def all_job_types() -> set[str]:
    """The ``TYPE`` of every concrete job class in ``server.jobs``."""
    for module in pkgutil.iter_modules(server.jobs.__path__):
        importlib.import_module(f"server.jobs.{module.name}")
    found: set[str] = set()
    pending: list[type[Any]] = [Job]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.TYPE and cls.__module__.startswith("server."):  # not the tests' dummies
            found.add(cls.TYPE)
    return found


def test_registry_lists_every_job_type(root: Server) -> None:
    assert set(root.job_registry.types()) == all_job_types()


def test_every_registered_type_round_trips(root: Server) -> None:
    makers = samples(root)
    assert set(makers) == set(root.job_registry.types())
    for type_name in root.job_registry.types():
        job = makers[type_name]()
        saved = json.loads(json.dumps(job.serialize()))
        restored = root.job_registry.restore(type_name, saved)
        assert type(restored) is type(job), type_name
        assert restored.serialize() == saved, type_name
        assert restored.content() == job.content(), type_name
