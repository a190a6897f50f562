"""Modality worklists answered by a script: the ``.wl`` files of a folder, as in the Orthanc Book.

Declare the folder in the configuration (``"WorklistsFolder": "/path/to/worklists"``);
each C-FIND on the Modality Worklist model (``findscu -W``) gets the worklists that
match the query, with the keys the query asks for.  For a plain folder, Orthanc's
``Worklists`` option does the same without code; a script is for worklists that
come from elsewhere (a RIS, a database...) or need filtering.
"""

import json
import os

import orthanc

FOLDER = json.loads(orthanc.GetConfiguration()).get("WorklistsFolder", "WorklistsDatabase")


def on_worklist(answers, query, issuer_aet, called_aet):
    asked = json.loads(orthanc.DicomBufferToJson(query.WorklistGetDicomQuery(), orthanc.DicomToJsonFormat.SHORT,
                                                 orthanc.DicomToJsonFlags.NONE, 0))
    orthanc.LogInfo(f"Worklist query from {issuer_aet}: {json.dumps(asked, sort_keys=True)}")
    for name in sorted(os.listdir(FOLDER)):
        if os.path.splitext(name)[1].lower() != ".wl":
            continue
        with open(os.path.join(FOLDER, name), "rb") as f:
            worklist = f.read()
        if query.WorklistIsMatch(worklist):
            orthanc.LogInfo(f"Worklist {name} matches")
            answers.WorklistAddAnswer(query, worklist)


orthanc.RegisterWorklistCallback(on_worklist)
