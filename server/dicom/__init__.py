"""DICOM parsing and Orthanc JSON formats."""
