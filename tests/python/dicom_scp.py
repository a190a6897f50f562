# DICOM SCP callbacks: a worklist served from a folder (as the Orthanc Book's worklist.py),
# a C-FIND SCP answering "HELLO<i>-<value>" (as dicom-find-scp.py) and a C-MOVE SCP that
# records its requests.  What they received is answered on /scp/state.

import json
import os

import orthanc

FOLDER = json.loads(orthanc.GetConfiguration())["WorklistsFolder"]
STATE = {"worklist": [], "find": [], "move": []}


def on_worklist(answers, query, issuer_aet, called_aet):
    dicom = orthanc.CreateDicomInstance(query.WorklistGetDicomQuery())
    asked = json.loads(dicom.GetInstanceSimplifiedJson())
    STATE["worklist"].append({"issuer": issuer_aet, "called": called_aet,
                              "PatientName": asked.get("PatientName")})
    for name in sorted(os.listdir(FOLDER)):
        with open(os.path.join(FOLDER, name), "rb") as f:
            content = f.read()
        if query.WorklistIsMatch(content):
            answers.WorklistAddAnswer(query, content)


def on_find(answers, query, issuer_aet, called_aet):
    keys = []
    answer = {}
    for i in range(query.GetFindQuerySize()):
        name = query.GetFindQueryTagName(i)
        keys.append([name, query.GetFindQueryTagGroup(i), query.GetFindQueryTagElement(i),
                     query.GetFindQueryValue(i)])
        answer[name] = f"HELLO{i}-{query.GetFindQueryValue(i)}"
    STATE["find"].append({"issuer": issuer_aet, "called": called_aet, "keys": keys})
    answers.FindAddAnswer(orthanc.CreateDicom(json.dumps(answer), None, orthanc.CreateDicomFlags.NONE))


def on_move(**request):
    STATE["move"].append(request)
    if request["StudyInstanceUID"] == "fail":
        raise RuntimeError("move failed on purpose")


def state(output, uri, **request):
    output.AnswerBuffer(json.dumps(STATE), "application/json")


orthanc.RegisterWorklistCallback(on_worklist)
orthanc.RegisterFindCallback(on_find)
orthanc.RegisterMoveCallback(on_move)
orthanc.RegisterRestCallback("/scp/state", state)
