# Image.DrawText and the font functions: GET /draw-text answers what they do.

import json

import orthanc

BYTES = {"GRAYSCALE8": 1, "GRAYSCALE16": 2, "RGB24": 3, "RGBA32": 4, "BGRA32": 4, "FLOAT32": 4}


def attempt(function, *args):
    try:
        return ["ok", function(*args)]
    except orthanc.OrthancException as e:
        return ["OrthancException", e.args[0]]


def drawn(name, text, x, y, width=60, height=40):
    """What DrawText does on a black image: its answer, the box it drew in, the top value of each channel."""
    size = BYTES[name]
    image = orthanc.CreateImageFromBuffer(getattr(orthanc.PixelFormat, name), width, height, width * size,
                                          bytes(width * height * size))
    answer = attempt(image.DrawText, 0, text, x, y, 200, 100, 50)
    buffer = image.GetImageBuffer()
    points = [(i // size % width, i // size // width) for i in range(len(buffer)) if buffer[i]]
    box = [min(p[0] for p in points), min(p[1] for p in points),
           max(p[0] for p in points), max(p[1] for p in points)] if points else None
    return {"answer": answer, "box": box, "max": [max(buffer[i::size]) for i in range(size)]}


def draw_text(output, uri, **request):
    result = {
        "fonts": [orthanc.GetFontsCount(), orthanc.GetFontSize(0), orthanc.GetFontName(1), orthanc.GetFontSize(1)],
        "formats": {name: drawn(name, "Ab", 2, 3) for name in BYTES},
        "font_index": attempt(orthanc.CreateImage(orthanc.PixelFormat.GRAYSCALE8, 4, 4).DrawText,
                              1, "A", 0, 0, 1, 1, 1)[1],
        "one_line": drawn("GRAYSCALE8", "A", 5, 4),
        "two_lines": drawn("GRAYSCALE8", "A\nA", 5, 4),
        "not_latin1": drawn("GRAYSCALE8", "\u20ac\u4e2d", 5, 4),
        "outside": [drawn("RGB24", "ABC", -5, -5)["answer"], drawn("RGB24", "ABC", 100, 100)["box"]],
    }
    output.AnswerBuffer(json.dumps(result), "application/json")


orthanc.RegisterRestCallback("/draw-text", draw_text)
