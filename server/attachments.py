"""Attaching, detaching and re-compressing files: the storage area and the index together.

As for DICOM files (:mod:`server.store`), a new file is staged, the index commits
the row that names it, and only then is the file moved into place and the file it
replaces removed; a refused write (409 on a stale revision) leaves both untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import ErrorCode, OrthancError
from server.storage.area import COMPRESSION_NONE, StorageArea
from server.storage.index import Attachment, Index, Revision, md5_hex


class Attachments:
    def __init__(self, index: Index, area: StorageArea) -> None:
        self.index = index
        self.area = area

    def put(self, internal_id: int, file_type: int, data: bytes,
            expected: Revision | None) -> int:
        """Attach ``data`` (compressed if ``StorageCompression``); returns its revision."""
        return self._write(internal_id, file_type, data, expected, None)

    def delete(self, internal_id: int, file_type: int, expected: Revision | None) -> bool:
        """Detach a file; False when there was none."""
        file_uuid = self.index.delete_attachment(internal_id, file_type, expected)
        if file_uuid is None:
            return False
        self.area.remove(file_uuid)
        return True

    def read(self, attachment: Attachment, uncompress: bool) -> bytes:
        """The attachment's content, or the bytes stored on disk (``compressed-data``)."""
        return self.area.read(attachment.uuid, attachment.compression if uncompress
                              else COMPRESSION_NONE)

    def read_range(self, attachment: Attachment, uncompress: bool,
                   wanted: ByteRange) -> tuple[bytes, str]:
        """Part of the attachment (or of its stored bytes) and its ``Content-Range``; 416 if
        the range ends past the content.  A stored file that is not compressed is read only
        where asked."""
        compressed = uncompress and attachment.compression != COMPRESSION_NONE
        full_size = attachment.uncompressed_size if uncompress else attachment.compressed_size
        start, end = wanted.bounds(full_size)
        if compressed:
            data = self.read(attachment, uncompress=True)[start:end + 1]
        else:
            data = self.area.read_range(attachment.uuid, start, end + 1 - start)
        return data, f"bytes {start}-{end}/{full_size}"

    def verify(self, attachment: Attachment) -> bool:
        """Whether the stored bytes, and their uncompressed content, still have their MD5."""
        stored = self.read(attachment, uncompress=False)
        if md5_hex(stored) != attachment.compressed_md5:
            return False
        if attachment.compression == COMPRESSION_NONE:
            return True
        return md5_hex(self.read(attachment, uncompress=True)) == attachment.uncompressed_md5

    def change_compression(self, internal_id: int, file_type: int, compress: bool) -> None:
        """Rewrite an attachment compressed or not (a new revision of the same content)."""
        attachment = self.index.attachment(internal_id, file_type)
        if attachment is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        if (attachment.compression != COMPRESSION_NONE) == compress:
            return
        data = self.read(attachment, uncompress=True)
        self._write(internal_id, file_type, data,
                    (attachment.revision, attachment.uncompressed_md5), compress)

    def _write(self, internal_id: int, file_type: int, data: bytes,
               expected: Revision | None, compress: bool | None) -> int:
        staged = self.area.stage(data, compress)
        file_uuid = staged.uuid
        attachment = Attachment(file_type, file_uuid, staged.size, staged.uncompressed_size,
                                staged.compression, staged.uncompressed_md5, staged.md5)
        try:
            revision, replaced = self.index.replace_attachment(internal_id, attachment, expected)
        except BaseException:
            self.area.discard(file_uuid)
            raise
        self.area.publish(file_uuid)
        if replaced is not None:
            self.area.remove(replaced)
        return revision


@dataclass(frozen=True)
class ByteRange:
    """One HTTP ``Range`` as Orthanc 1.12.5 reads it (``StorageRange``): ``bytes=a-b``, ``a-``,
    and ``-b``, which Orthanc takes as bytes 0 to b (not as the last b bytes of RFC 9110)."""

    start: int | None
    end: int | None

    @classmethod
    def parse(cls, header: str) -> ByteRange:
        """The range of a ``Range`` header; 416 for anything else (several ranges included)."""
        if not header.startswith("bytes="):
            raise OrthancError(ErrorCode.BAD_RANGE)
        tokens = header[len("bytes="):].split("-")
        if len(tokens) != 2 or not all(t == "" or (t.isascii() and t.isdigit()) for t in tokens):
            raise OrthancError(ErrorCode.BAD_RANGE)
        start, end = (int(t) if t else None for t in tokens)
        if start is not None and end is not None and start > end:
            raise OrthancError(ErrorCode.BAD_RANGE)
        return cls(start, end)

    def bounds(self, full_size: int) -> tuple[int, int]:
        """The first and last (inclusive) byte within a content of ``full_size`` bytes; 416 if
        the content is empty or the range reaches past its end (Orthanc does not clamp)."""
        start = 0 if self.start is None else self.start
        end = full_size - 1 if self.end is None else self.end
        if full_size == 0 or start >= full_size or end >= full_size:
            raise OrthancError(ErrorCode.BAD_RANGE)
        return start, end
