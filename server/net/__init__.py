"""The DICOM network side: SCP, SCU, modalities and Orthanc peers."""
