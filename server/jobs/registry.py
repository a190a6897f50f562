"""The one list of the job types the engine restores after a restart.

Each type is rebuilt with the narrow services it uses; the composition root
(:mod:`server.app`) gives those services once and hands the registry to the engine.
A new job type is added here, nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from server.jobs.archive import ArchiveJob, ArchiveServices, MediaJob
from server.jobs.get_scu import DicomGetScuJob
from server.jobs.job import JobRegistry
from server.jobs.modification import ModificationServices, ResourceModificationJob
from server.jobs.move_scu import DicomMoveScuJob
from server.jobs.peer_store import OrthancPeerStoreJob
from server.jobs.split_merge import MergeStudyJob, SplitStudyJob
from server.jobs.storage_commitment_scp import CommitmentScp, StorageCommitmentScpJob
from server.jobs.store_scu import DicomModalityStoreJob, SendServices
from server.jobs.transfers import PullTransferJob, PushTransferJob, TransferServices

if TYPE_CHECKING:
    from server.config import Configuration


@dataclass(frozen=True)
class JobServices:
    """The services of every job family, as the registry restores them."""

    config: Configuration
    send: SendServices
    modification: ModificationServices
    archive: ArchiveServices
    commitment: CommitmentScp
    transfers: TransferServices


def job_registry(services: JobServices) -> JobRegistry:
    """Every job type, each restored with the services of its family."""
    return JobRegistry({
        ArchiveJob.TYPE: partial(ArchiveJob.unserialize, services.archive),
        MediaJob.TYPE: partial(MediaJob.unserialize, services.archive),
        ResourceModificationJob.TYPE: partial(ResourceModificationJob.unserialize, services.modification),
        SplitStudyJob.TYPE: partial(SplitStudyJob.unserialize, services.modification),
        MergeStudyJob.TYPE: partial(MergeStudyJob.unserialize, services.modification),
        DicomModalityStoreJob.TYPE: partial(DicomModalityStoreJob.unserialize, services.send),
        OrthancPeerStoreJob.TYPE: partial(OrthancPeerStoreJob.unserialize, services.send),
        DicomMoveScuJob.TYPE: partial(DicomMoveScuJob.unserialize, services.config),
        DicomGetScuJob.TYPE: partial(DicomGetScuJob.unserialize, services.send),
        StorageCommitmentScpJob.TYPE: partial(StorageCommitmentScpJob.unserialize, services.commitment),
        PushTransferJob.TYPE: partial(PushTransferJob.unserialize, services.transfers),
        PullTransferJob.TYPE: partial(PullTransferJob.unserialize, services.transfers),
    })
