"""The storage area in Python: attachments stored where the script decides.

Here each file goes to the folder named by ``"ScriptStorageFolder"`` in the
configuration, as ``<content type>-<uuid>``; a real script would write to an
object store, a database...  Orthanc calls ``create`` once the index has
committed the file, ``read`` to serve it and ``remove`` when the resource is deleted.
"""

import json
import os

import orthanc

FOLDER = json.loads(orthanc.GetConfiguration()).get("ScriptStorageFolder", "ScriptStorage")
os.makedirs(FOLDER, exist_ok=True)


def path(uuid, content_type):
    return os.path.join(FOLDER, f"{content_type}-{uuid}")


def on_create(uuid, content_type, data):
    with open(path(uuid, content_type), "wb") as f:
        f.write(data)


def on_read(uuid, content_type):
    with open(path(uuid, content_type), "rb") as f:
        return f.read()


def on_remove(uuid, content_type):
    os.remove(path(uuid, content_type))


orthanc.RegisterStorageArea(on_create, on_read, on_remove)
