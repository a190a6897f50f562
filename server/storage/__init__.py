"""The storage area (DICOM files on disk) and the index (SQLite) that describes it."""
