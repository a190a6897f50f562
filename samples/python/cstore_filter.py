"""A C-STORE filter: only CT and MR images are accepted over DICOM.

The filter answers 0 to store the instance, or the DIMSE status that the
sender receives (here 0xA700, "Refused: Out of resources", which modalities
report clearly).  Uploads through the REST API are not filtered.
"""

import json

import orthanc

ACCEPTED_MODALITIES = {"CT", "MR"}
REFUSED = 0xA700


def filter_cstore(instance):
    tags = json.loads(instance.GetInstanceSimplifiedJson())
    if tags.get("Modality") in ACCEPTED_MODALITIES:
        return 0
    orthanc.LogWarning(f"Refusing a {tags.get('Modality', 'unknown')} instance from "
                       f"{instance.GetInstanceRemoteAet()}")
    return REFUSED


orthanc.RegisterIncomingCStoreInstanceFilter(filter_cstore)
