"""Storage commitment SCP decided by the script.

The factory is called once per N-ACTION request with every UID; what it
returns is handed back to each lookup.  Here an instance is committed only if
it is stored with the same SOP class, and a modality may not ask for more than
MAX_INSTANCES instances at once.
"""

import json

import orthanc

MAX_INSTANCES = 1000
Reason = orthanc.StorageCommitmentFailureReason


def on_request(job_id, transaction_uid, sop_class_uids, sop_instance_uids, remote_aet, called_aet):
    orthanc.LogWarning(f"Storage commitment {transaction_uid} from {remote_aet}: "
                       f"{len(sop_instance_uids)} instance(s)")
    return {"too_many": len(sop_instance_uids) > MAX_INSTANCES}


def lookup(sop_class_uid, sop_instance_uid, request):
    if request["too_many"]:
        return Reason.RESOURCE_LIMITATION
    try:
        instance_id = orthanc.LookupInstance(sop_instance_uid)
    except orthanc.OrthancException:
        return Reason.NO_SUCH_OBJECT_INSTANCE
    stored_class = orthanc.RestApiGet(f"/instances/{instance_id}/metadata/SopClassUid").decode()
    if stored_class != sop_class_uid:
        return Reason.CLASS_INSTANCE_CONFLICT
    tags = json.loads(orthanc.RestApiGet(f"/instances/{instance_id}/simplified-tags"))
    orthanc.LogInfo(f"Committing {sop_instance_uid} of patient {tags.get('PatientID', '')}")
    return Reason.SUCCESS


orthanc.RegisterStorageCommitmentScpCallback(on_request, lookup)
