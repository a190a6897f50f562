"""Auto-routing: send every study to a DICOM modality once it is stable.

Set ``StableAge`` (seconds without new instance) and declare the destination in
``DicomModalities``; TARGET is its symbolic name.  The C-STORE runs as an
asynchronous job, so a slow destination never delays the other changes; the
job appears in ``/jobs`` (and is retried per ``JobsMaxRetries``).
"""

import json

import orthanc

TARGET = "pacs"


def on_change(change_type, level, resource_id):
    if change_type == orthanc.ChangeType.STABLE_STUDY:
        orthanc.LogWarning(f"Stable study {resource_id}: sending it to {TARGET}")
        orthanc.RestApiPost(f"/modalities/{TARGET}/store",
                            json.dumps({"Resources": [resource_id], "Asynchronous": True}))


orthanc.RegisterOnChangeCallback(on_change)
