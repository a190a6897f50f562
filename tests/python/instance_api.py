# Calls the DICOM functions of the orthanc module on the instance /instance-api/{id}
# names and answers what each call gave; the same script runs on Isengard and on the
# real Orthanc with orthanc-python.

import hashlib
import json

import orthanc


def attempt(call):
    try:
        value = call()
    except orthanc.OrthancException as e:
        return ["OrthancException", list(e.args)]
    except Exception as e:  # noqa: BLE001 - the kind of error is part of the answer
        return [type(e).__name__, str(e)]
    if isinstance(value, bytes):
        return ["bytes", hashlib.md5(value).hexdigest()]
    return [type(value).__name__, value]


def run(output, uri, **request):
    instance_id = request["groups"][0]
    dicom = orthanc.GetDicomForInstance(instance_id)
    instance = orthanc.CreateDicomInstance(dicom)
    tags = json.loads(orthanc.RestApiGet(f"/instances/{instance_id}/simplified-tags"))
    Format = orthanc.DicomToJsonFormat
    Flags = orthanc.DicomToJsonFlags
    query = orthanc.CreateDicom(json.dumps({"PatientName": tags.get("PatientName", "") + "*"}), None,
                                orthanc.CreateDicomFlags.NONE)
    other = orthanc.CreateDicom(json.dumps({"PatientName": "NOBODY"}), None, orthanc.CreateDicomFlags.NONE)
    results = {
        "frames": attempt(instance.GetInstanceFramesCount),
        "raw_frame": attempt(lambda: instance.GetInstanceRawFrame(0)),
        "raw_frame_out_of_range": attempt(lambda: instance.GetInstanceRawFrame(1000)),
        "transfer_syntax": attempt(instance.GetInstanceTransferSyntaxUid),
        "human": attempt(lambda: json.loads(orthanc.DicomInstanceToJson(instance_id, Format.HUMAN, Flags.NONE, 0))),
        "short": attempt(lambda: json.loads(orthanc.DicomBufferToJson(dicom, Format.SHORT, Flags.NONE, 0))),
        "full_capped": attempt(lambda: json.loads(orthanc.DicomBufferToJson(dicom, Format.FULL, Flags.NONE, 8))),
        "advanced": attempt(lambda: json.loads(instance.GetInstanceAdvancedJson(Format.HUMAN, Flags.NONE, 0))),
        "accession": attempt(lambda: orthanc.LookupStudyWithAccessionNumber(tags.get("AccessionNumber", "")) ==
                             json.loads(orthanc.RestApiGet(f"/instances/{instance_id}/study"))["ID"]),
        "accession_missing": attempt(lambda: orthanc.LookupStudyWithAccessionNumber("nope")),
        "matcher": attempt(lambda: orthanc.CreateFindMatcher(query).FindMatcherIsMatch(dicom)),
        "matcher_other": attempt(lambda: orthanc.CreateFindMatcher(other).FindMatcherIsMatch(dicom)),
        "missing_instance": attempt(lambda: orthanc.DicomInstanceToJson("nope", Format.HUMAN, Flags.NONE, 0)),
    }
    output.AnswerBuffer(json.dumps(results), "application/json")


def png(output, uri, **request):
    output.CompressAndAnswerPngImage(orthanc.PixelFormat.GRAYSCALE8, 4, 2, 4, bytes(range(8)))


orthanc.RegisterRestCallback("/instance-api/(.*)", run)
orthanc.RegisterRestCallback("/png", png)
