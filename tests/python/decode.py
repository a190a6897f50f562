# Decodes frames 0 and 1000 of /decode/{id} with DecodeDicomImage and answers their pixel
# format, size, pitch and MD5 (or the OrthancException's arguments).

import hashlib
import json

import orthanc


def describe(image):
    return [image.GetImagePixelFormat(), image.GetImageWidth(), image.GetImageHeight(), image.GetImagePitch(),
            hashlib.md5(image.GetImageBuffer()).hexdigest()]


def run(output, uri, **request):
    data = orthanc.GetDicomForInstance(request["groups"][0])
    result = {}
    for frame in (0, 1000):
        try:
            result[frame] = describe(orthanc.DecodeDicomImage(data, frame))
        except orthanc.OrthancException as e:
            result[frame] = list(e.args)
    output.AnswerBuffer(json.dumps(result), "application/json")


orthanc.RegisterRestCallback("/decode/(.*)", run)
