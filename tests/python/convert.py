# Image.ConvertPixelFormat between every pair of pixel formats, on a 3x2 image of each
# format; answers the converted format, pitch and bytes (or the exception's arguments).

import json
import struct

import orthanc

BYTES_PER_PIXEL = {1: 1, 2: 2, 3: 2, 4: 3, 5: 4, 7: 6, 8: 4, 9: 4, 10: 4, 11: 8}


def source(pixel_format):
    if pixel_format == orthanc.PixelFormat.FLOAT32:
        return struct.pack("<6f", 0.0, 1.5, 100.25, 255.0, 300.0, -5.0)
    return bytes((i * 37 + 11) % 256 for i in range(6 * BYTES_PER_PIXEL[pixel_format]))


def run(output, uri, **request):
    results = {}
    for src, size in BYTES_PER_PIXEL.items():
        image = orthanc.CreateImageFromBuffer(src, 3, 2, 3 * size, source(src))
        for dst in BYTES_PER_PIXEL:
            try:
                out = image.ConvertPixelFormat(dst)
                results[f"{src}->{dst}"] = [out.GetImagePixelFormat(), out.GetImagePitch(), out.GetImageBuffer().hex()]
            except orthanc.OrthancException as e:
                results[f"{src}->{dst}"] = list(e.args)
    output.AnswerBuffer(json.dumps(results), "application/json")


orthanc.RegisterRestCallback("/convert", run)
