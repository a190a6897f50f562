"""Annotated previews: the rendered frame of an instance with its patient and study written over it.

* ``GET /instances/{id}/annotated`` answers the PNG.
* ``POST /instances/{id}/annotated`` stores it as a new Secondary Capture instance in
  the same study (a new series) and answers what ``POST /instances`` answers.

The frame is the server's ``/preview`` (windowed, 8-bit), decoded with
``UncompressImage``; the text is drawn with ``Image.DrawText`` and the new
instance is made by ``CreateDicom`` (the image module comes from the image).
"""

import json

import orthanc

#: Tags copied from the source, so that the new instance joins the same patient and study.
INHERITED = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
             "StudyDescription", "AccessionNumber", "StudyID", "ReferringPhysicianName")
YELLOW = (255, 255, 0)


def annotated(instance_id):
    """The instance's preview as an orthanc.Image, with the text drawn in its top left corner."""
    tags = json.loads(orthanc.RestApiGet(f"/instances/{instance_id}/simplified-tags"))
    image = orthanc.UncompressImage(orthanc.RestApiGet(f"/instances/{instance_id}/preview"),
                                    orthanc.ImageFormat.PNG)
    if image.GetImagePixelFormat() == orthanc.PixelFormat.GRAYSCALE8:
        image = image.ConvertPixelFormat(orthanc.PixelFormat.RGB24)  # for the colour of the text
    text = f"{tags.get('PatientName', '')}\n{tags.get('StudyDate', '')} {tags.get('StudyDescription', '')}"
    image.DrawText(0, text, 4, 4, *YELLOW)
    return image, tags


def on_annotated(output, uri, **request):
    instance_id = request["groups"][0]
    try:
        image, tags = annotated(instance_id)
    except orthanc.OrthancException:
        output.SendHttpStatusCode(404)
        return
    if request["method"] == "GET":
        output.CompressAndAnswerPngImage(image.GetImagePixelFormat(), image.GetImageWidth(),
                                         image.GetImageHeight(), image.GetImagePitch(), image.GetImageBuffer())
        return
    if request["method"] != "POST":
        output.SendMethodNotAllowed("GET,POST")
        return
    new_tags = {name: tags.get(name, "") for name in INHERITED}  # blank rather than generated
    new_tags.update({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7", "Modality": "OT",
                     "SeriesDescription": "Annotated preview"})
    dicom = orthanc.CreateDicom(json.dumps(new_tags), image, orthanc.CreateDicomFlags.GENERATE_IDENTIFIERS)
    output.AnswerBuffer(orthanc.RestApiPost("/instances", dicom), "application/json")


orthanc.RegisterRestCallback("/instances/(.*)/annotated", on_annotated)
