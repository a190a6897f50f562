# Storage commitment decided by the script: the last component of the SOP instance
# UID names the answer ("1.2.3.4" -> RESOURCE_LIMITATION, "1.2.3.7" -> an error...).
# Copied as commitment_v2.py, it registers with RegisterStorageCommitmentScpCallback2.

import json

import orthanc

Reason = orthanc.StorageCommitmentFailureReason
REQUESTS = []
ANSWERS = [Reason.SUCCESS, Reason.PROCESSING_FAILURE, Reason.NO_SUCH_OBJECT_INSTANCE, Reason.RESOURCE_LIMITATION,
           Reason.REFERENCED_SOPCLASS_NOT_SUPPORTED, Reason.CLASS_INSTANCE_CONFLICT,
           Reason.DUPLICATE_TRANSACTION_UID]


def on_request(job_id, transaction_uid, sop_class_uids, sop_instance_uids, *rest):
    if len(rest) == 1:
        connection = rest[0]
        rest = ["connection", connection.GetConnectionRemoteAet(), connection.GetConnectionRemoteIp(),
                connection.GetConnectionCalledAet()]
    REQUESTS.append({"job": job_id, "transaction": transaction_uid, "classes": sop_class_uids,
                     "instances": sop_instance_uids, "rest": list(rest), "lookups": []})
    return REQUESTS[-1]


def lookup(sop_class_uid, sop_instance_uid, request):
    request["lookups"].append([sop_class_uid, sop_instance_uid])
    # The REST API is usable from the lookup (it runs in the job's thread).
    orthanc.RestApiGet("/jobs/" + request["job"])
    last = int(sop_instance_uid.rsplit(".", 1)[1])
    if last < len(ANSWERS):
        return ANSWERS[last]
    if last == 7:
        raise ValueError("lookup failed on purpose")
    return "not a reason"


if __name__ == "commitment_v2":
    orthanc.RegisterStorageCommitmentScpCallback2(on_request, lookup)
else:
    orthanc.RegisterStorageCommitmentScpCallback(on_request, lookup)
orthanc.RegisterRestCallback("/commitment/requests", lambda output, uri, **request: output.AnswerBuffer(
    json.dumps(REQUESTS), "application/json"))
