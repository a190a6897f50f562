"""Attaching, detaching and re-compressing files: the storage area and the index together.

As for DICOM files (:mod:`server.store`), a new file is staged, the index commits
the row that names it, and only then is the file moved into place and the file it
replaces removed; a refused write (409 on a stale revision) leaves both untouched.
"""

from __future__ import annotations

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
