"""The ``orthanc`` module's images: ``Image``, PNG/JPEG (de)compression, decoded DICOM frames.

Images in memory and their PNG/JPEG encoding need only Pillow and are done here.
Decoding DICOM pixel data is the job of the pixel-codec module
``server.dicom.pixels`` (written on another branch): :func:`decode_frame` uses its
``read_image_dataset(data)`` and ``decode_frame(ds, index, allow_jpeg2000)``, whose
image has a ``format`` named like ``orthanc.PixelFormat`` and ``pixels`` (an
array with ``tobytes()``), and raises ``OrthancException(NotImplemented)`` while
that module is not there.
"""

from __future__ import annotations

import importlib
import io
import math
import mmap
import struct
from types import ModuleType
from typing import Any

from PIL import Image as PillowImage

from server.dicom.create import Raster
from server.errors import ErrorCode, OrthancError
from server.scripting import python_font
from server.scripting.python_enums import CODES, ENUMERATIONS
from server.scripting.python_toolbox import exception

PIXEL = ENUMERATIONS["PixelFormat"][1]
IMAGE_FORMAT = ENUMERATIONS["ImageFormat"][1]
#: Bytes per pixel of each ``orthanc.PixelFormat``.
BYTES_PER_PIXEL = {PIXEL["GRAYSCALE8"]: 1, PIXEL["GRAYSCALE16"]: 2, PIXEL["SIGNED_GRAYSCALE16"]: 2,
                   PIXEL["RGB24"]: 3, PIXEL["RGBA32"]: 4, PIXEL["RGB48"]: 6, PIXEL["GRAYSCALE32"]: 4,
                   PIXEL["FLOAT32"]: 4, PIXEL["BGRA32"]: 4, PIXEL["GRAYSCALE64"]: 8}
#: Pillow's raw mode of the formats PNG and JPEG can hold.
_PILLOW_MODES = {PIXEL["GRAYSCALE8"]: ("L", "L"), PIXEL["GRAYSCALE16"]: ("I;16", "I;16"),
                 PIXEL["RGB24"]: ("RGB", "RGB"), PIXEL["RGBA32"]: ("RGBA", "RGBA")}
INTERNAL_ERROR = -1
_GRAY = {PIXEL["GRAYSCALE8"]: "B", PIXEL["GRAYSCALE16"]: "H", PIXEL["SIGNED_GRAYSCALE16"]: "h",
         PIXEL["GRAYSCALE32"]: "I", PIXEL["FLOAT32"]: "f", PIXEL["GRAYSCALE64"]: "Q"}
_RANGES = {PIXEL["GRAYSCALE8"]: (0, 255), PIXEL["GRAYSCALE16"]: (0, 65535),
           PIXEL["SIGNED_GRAYSCALE16"]: (-32768, 32767)}
#: The (source, target) pairs orthanc-python 4.0 converts (the others raise InternalError).
CONVERSIONS = frozenset([(f, f) for f in BYTES_PER_PIXEL] + [
    (1, 2), (1, 3), (1, 4), (1, 5), (1, 9), (1, 10), (2, 1), (2, 3), (2, 9), (2, 10), (3, 1), (3, 2), (3, 9),
    (3, 10), (4, 1), (4, 2), (4, 3), (4, 5), (4, 10), (5, 1), (5, 4), (5, 10), (7, 4), (8, 9), (9, 1), (9, 2),
    (9, 4), (10, 1), (10, 4), (10, 5)])
_FROM_PILLOW = {"L": PIXEL["GRAYSCALE8"], "I;16": PIXEL["GRAYSCALE16"], "RGB": PIXEL["RGB24"],
                "RGBA": PIXEL["RGBA32"]}


def _codec() -> ModuleType:
    try:
        return importlib.import_module("server.dicom.pixels")
    except ImportError:
        raise exception(ErrorCode.NOT_IMPLEMENTED, "Decoding DICOM pixel data is not available yet") from None


class Image:
    """An image in memory: pixel format, size, pitch (bytes per row) and the pixels."""

    def __init__(self, pixel_format: int, width: int, height: int, pitch: int, buffer: bytes) -> None:
        if pixel_format not in BYTES_PER_PIXEL or width < 0 or height < 0:
            raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
        if pitch < width * BYTES_PER_PIXEL[pixel_format] or len(buffer) < pitch * height:
            raise exception(ErrorCode.BAD_PARAMETER_TYPE)
        self._format = pixel_format
        self._width = width
        self._height = height
        self._pitch = pitch
        self._buffer = bytearray(buffer)  # DrawText draws in place

    def GetImagePixelFormat(self) -> int:
        return self._format

    def GetImageWidth(self) -> int:
        return self._width

    def GetImageHeight(self) -> int:
        return self._height

    def GetImagePitch(self) -> int:
        return self._pitch

    def GetImageBuffer(self) -> bytes:
        return bytes(self._buffer)

    def ConvertPixelFormat(self, target_format: int) -> Image:
        """Orthanc's ``ImageProcessing::Convert``: the same pairs, clamping and luminance."""
        if (self._format, target_format) not in CONVERSIONS:
            raise exception(INTERNAL_ERROR)
        row = self._width * BYTES_PER_PIXEL[self._format]
        rows = [self._buffer[y * self._pitch:y * self._pitch + row] for y in range(self._height)]
        data = b"".join(rows)
        if target_format != self._format:
            pixels = _unpack(self._format, data)
            data = _pack(target_format, [_convert(self._format, target_format, p) for p in pixels])
        return Image(target_format, self._width, self._height, self._width * BYTES_PER_PIXEL[target_format], data)

    def DrawText(self, font_index: int, utf8_text: str, x: int, y: int, r: int, g: int, b: int) -> None:
        """Draw text with the one font (index 0) as Orthanc does (:mod:`server.scripting.python_font`)."""
        if font_index != 0:
            raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
        if not isinstance(utf8_text, str):
            raise TypeError("the text must be a string")
        try:
            python_font.draw(self._buffer, self._format, self._width, self._height, self._pitch, utf8_text,
                             int(x), int(y), (int(r) & 255, int(g) & 255, int(b) & 255))
        except python_font.UnsupportedFormat:
            raise exception(ErrorCode.NOT_IMPLEMENTED) from None


Image.__module__ = "orthanc"


def create_image(pixel_format: int, width: int, height: int) -> Image:
    """``CreateImage``: a black image."""
    pitch = int(width) * BYTES_PER_PIXEL.get(pixel_format, 0)
    return Image(pixel_format, int(width), int(height), pitch, bytes(pitch * int(height)))


def _pillow(pixel_format: int, width: int, height: int, pitch: int, buffer: Any) -> PillowImage.Image:
    modes = _PILLOW_MODES.get(pixel_format)
    if modes is None:
        raise exception(CODES["INCOMPATIBLE_IMAGE_FORMAT"])
    return PillowImage.frombuffer(modes[0], (width, height), bytes(buffer), "raw", modes[1], pitch, 1)


def compress(kind: str, pixel_format: int, width: int, height: int, pitch: int, buffer: Any,
             quality: int = 90) -> bytes:
    """PNG (lossless) or JPEG (8-bit grayscale and RGB only) of raw pixels."""
    image = _pillow(pixel_format, width, height, pitch, buffer)
    out = io.BytesIO()
    if kind == "PNG":
        image.save(out, "PNG")
    else:
        if image.mode not in ("L", "RGB") or not 1 <= quality <= 100:
            raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
        image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def uncompress(data: bytes, image_format: int) -> Image:
    """``UncompressImage``: PNG and JPEG here; DICOM through the pixel-codec module."""
    if image_format == IMAGE_FORMAT["DICOM"]:
        return decode_frame(data, 0)
    if image_format not in (IMAGE_FORMAT["PNG"], IMAGE_FORMAT["JPEG"]):
        raise exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
    try:
        image: PillowImage.Image = PillowImage.open(io.BytesIO(bytes(data)))
        image.load()
    except (OSError, ValueError):
        raise exception(INTERNAL_ERROR) from None  # orthanc-python: no image -> InternalError
    if image.mode not in _FROM_PILLOW:
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    pixel_format = _FROM_PILLOW[image.mode]
    raw = image.tobytes("raw", _PILLOW_MODES[pixel_format][1])
    return Image(pixel_format, image.width, image.height, image.width * BYTES_PER_PIXEL[pixel_format], raw)


def decode_frame(dicom: bytes | mmap.mmap, frame: int) -> Image:
    """``DecodeDicomImage`` / ``GetInstanceDecodedFrame``: through the pixel-codec module.

    JPEG 2000 is not decoded, as Orthanc without its GDCM plugin.  Checked against
    orthanc-python 4.0 with wt-transcode's module: same pixel formats, sizes and bytes.
    """
    pixels = _codec()
    try:
        decoded = pixels.decode_frame(pixels.read_image_dataset(bytes(dicom)), int(frame), False)
    except OrthancError:
        raise exception(INTERNAL_ERROR) from None  # orthanc-python: no image -> InternalError
    pixel_format = PIXEL[decoded.format.name]
    width, height = int(decoded.pixels.shape[1]), int(decoded.pixels.shape[0])
    return Image(pixel_format, width, height, width * BYTES_PER_PIXEL[pixel_format], decoded.pixels.tobytes())


def raster(image: Image) -> Raster:
    """The pixels of ``image`` for ``CreateDicom``: 8/16-bit grayscale or RGB24, rows without padding."""
    layouts = {PIXEL["GRAYSCALE8"]: (1, 8), PIXEL["GRAYSCALE16"]: (1, 16), PIXEL["RGB24"]: (3, 8)}
    pixel_format = image.GetImagePixelFormat()
    if pixel_format not in layouts:
        raise exception(ErrorCode.NOT_IMPLEMENTED)
    samples, bits = layouts[pixel_format]
    row = image.GetImageWidth() * BYTES_PER_PIXEL[pixel_format]
    buffer, pitch = image.GetImageBuffer(), image.GetImagePitch()
    data = b"".join(buffer[y * pitch:y * pitch + row] for y in range(image.GetImageHeight()))
    return Raster(image.GetImageWidth(), image.GetImageHeight(), samples, bits, data)


def _unpack(pixel_format: int, data: bytes) -> list[Any]:
    """Gray values (numbers) or colours (r, g, b, a) of packed pixels."""
    if pixel_format in _GRAY:
        return list(struct.unpack(f"<{len(data) // BYTES_PER_PIXEL[pixel_format]}{_GRAY[pixel_format]}", data))
    if pixel_format == PIXEL["RGB48"]:
        words = struct.unpack(f"<{len(data) // 2}H", data)
        return [(words[i] >> 8, words[i + 1] >> 8, words[i + 2] >> 8, 255) for i in range(0, len(words), 3)]
    size = BYTES_PER_PIXEL[pixel_format]
    pixels = [tuple(data[i:i + size]) for i in range(0, len(data), size)]
    if pixel_format == PIXEL["RGB24"]:
        return [(r, g, b, 255) for r, g, b in pixels]
    if pixel_format == PIXEL["BGRA32"]:
        return [(r, g, b, a) for b, g, r, a in pixels]
    return pixels


def _luminance(colour: tuple[int, int, int, int]) -> int:
    """Orthanc's RGB -> gray, whose blue weight is written ``0722``: an octal 466 in C."""
    r, g, b, _ = colour
    return (2126 * r + 7152 * g + 466 * b) // 10000


def _clamped(value: float, low: int, high: int) -> int:
    return max(low, min(high, int(math.floor(value + 0.5))))


def _convert(source: int, target: int, pixel: Any) -> Any:
    colour_source = source not in _GRAY
    if target in _RANGES:
        return _luminance(pixel) if colour_source else _clamped(pixel, *_RANGES[target])
    if target == PIXEL["FLOAT32"]:
        return float(pixel)
    if colour_source:
        return pixel
    gray = _clamped(pixel, 0, 255)
    return gray, gray, gray, 255


def _pack(pixel_format: int, pixels: list[Any]) -> bytes:
    if pixel_format in _GRAY:
        return struct.pack(f"<{len(pixels)}{_GRAY[pixel_format]}", *pixels)
    if pixel_format == PIXEL["RGB24"]:
        return bytes(v for r, g, b, _ in pixels for v in (r, g, b))
    if pixel_format == PIXEL["BGRA32"]:
        return bytes(v for r, g, b, a in pixels for v in (b, g, r, a))
    if pixel_format == PIXEL["RGB48"]:
        return struct.pack(f"<{3 * len(pixels)}H", *(v << 8 for r, g, b, _ in pixels for v in (r, g, b)))
    return bytes(v for pixel in pixels for v in pixel)
