"""How many frames an instance has, counted as Orthanc counts them (``/frames``)."""

from __future__ import annotations

from server.errors import ErrorCode, OrthancError
from server.storage.index import Index, Metadata, Resource

NUMBER_OF_FRAMES = (0x0028, 0x0008)

#: MPEG-2, MPEG-4 and HEVC: a video is one frame, whatever its NumberOfFrames.
VIDEO_TRANSFER_SYNTAXES = frozenset(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109))


def frame_count(index: Index, instance: Resource) -> int:
    """NumberOfFrames (indexed as a main tag), 1 when absent or for a video."""
    syntax = index.metadata(instance.internal_id).get(Metadata.TransferSyntax)
    if syntax in VIDEO_TRANSFER_SYNTAXES:
        return 1
    value = index.main_tags(instance.internal_id).get(NUMBER_OF_FRAMES)
    if value is None:
        return 1
    text = value.strip()
    if not text.isdigit():
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Invalid number of frames")
    return int(text)
