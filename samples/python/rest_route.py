"""A custom REST route: ``GET /studies/{id}/summary``, a one-look view of a study.

The callback builds its answer with the built-in REST API (``orthanc.RestApiGet``)
and answers with ``output.AnswerBuffer``; other methods get 405, an unknown
study 404.
"""

import json

import orthanc


def study_summary(output, uri, **request):
    if request["method"] != "GET":
        output.SendMethodNotAllowed("GET")
        return
    study_id = request["groups"][0]
    try:
        study = json.loads(orthanc.RestApiGet(f"/studies/{study_id}"))
    except orthanc.OrthancException:
        output.SendHttpStatusCode(404)
        return
    series = json.loads(orthanc.RestApiGet(f"/studies/{study_id}/series"))
    summary = {
        "PatientName": study["PatientMainDicomTags"].get("PatientName", ""),
        "StudyDate": study["MainDicomTags"].get("StudyDate", ""),
        "Modalities": sorted({s["MainDicomTags"].get("Modality", "") for s in series}),
        "SeriesCount": len(series),
        "InstancesCount": sum(len(s["Instances"]) for s in series),
    }
    output.AnswerBuffer(json.dumps(summary, indent=2), "application/json")


orthanc.RegisterRestCallback("/studies/([^/]+)/summary", study_summary)
