"""Decoding one frame of a DICOM file into Orthanc's pixel formats.

pydicom's pixel backends do the decoding (pylibjpeg-openjpeg for JPEG 2000, pylibjpeg-rle
for RLE, pyjpegls for JPEG-LS) and libjpeg-turbo (imagecodecs) decodes JPEG; this module
only maps the result onto the pixel formats Orthanc 1.10.1 decodes to (``Grayscale8``,
``Grayscale16``, ``SignedGrayscale16``, ``Grayscale32``, ``RGB24``, ``RGB48``) with
Orthanc's rules: bits beyond ``BitsStored``
are masked, 1-bit segmentations become 0/255, palette images become RGB, a native
YBR image is not decodable (as in Orthanc without its GDCM plugin), and JPEG 2000 needs
a configuration that loads Orthanc's GDCM plugin (see :class:`server.dicom.transcode.Settings`).
"""

from __future__ import annotations

import itertools
import logging
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from io import BytesIO

import imagecodecs
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.pixels.processing import apply_color_lut
from pydicom.pixels.utils import pixel_array

from server.errors import ErrorCode, OrthancError

log = logging.getLogger("isengard.pixels")

#: Orthanc's ``ErrorCode_NotEnoughMemory`` (not among :class:`ErrorCode`'s names).
NOT_ENOUGH_MEMORY = 4

#: Largest decoded frame accepted (bytes): beyond, the frame is refused before allocating.
MAX_FRAME_BYTES = 1 << 30

NATIVE_SYNTAXES = frozenset({
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
})
JPEG2000_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
})

RLE_LOSSLESS = "1.2.840.10008.1.2.5"
JPEG_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
})

_PSMCT_COMPRESSION_TYPE = 0x07A11011
_PSMCT_CONTENT = 0x07A1100A


class PixelFormat(Enum):
    """Orthanc's pixel formats (``Orthanc::PixelFormat``) that a DICOM frame decodes to."""

    GRAYSCALE8 = "Grayscale8"
    GRAYSCALE16 = "Grayscale16"
    SIGNED_GRAYSCALE16 = "SignedGrayscale16"
    GRAYSCALE32 = "Grayscale32"
    RGB24 = "RGB24"
    RGB48 = "RGB48"
    FLOAT32 = "Float32"

    @property
    def is_color(self) -> bool:
        return self in (PixelFormat.RGB24, PixelFormat.RGB48)


DTYPES = {
    PixelFormat.GRAYSCALE8: np.uint8, PixelFormat.GRAYSCALE16: np.uint16,
    PixelFormat.SIGNED_GRAYSCALE16: np.int16, PixelFormat.GRAYSCALE32: np.uint32,
    PixelFormat.RGB24: np.uint8, PixelFormat.RGB48: np.uint16, PixelFormat.FLOAT32: np.float32,
}


@dataclass
class Image:
    """A decoded frame: ``pixels`` is (rows, columns) for grayscale, (rows, columns, 3) for colour."""

    format: PixelFormat
    pixels: np.ndarray

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass
class Geometry:
    """What the image tags say about the pixel data."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples * max(1, self.bits_allocated // 8)


def read_image_dataset(data: bytes | mmap.mmap) -> Dataset:
    """The dataset of a stored file, for decoding (a file pydicom cannot read is "Bad file format")."""
    try:
        return pydicom.dcmread(BytesIO(data), force=True)
    except Exception as e:  # noqa: BLE001 - pydicom raises many types on corrupt input
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Cannot parse the DICOM file") from e


def transfer_syntax(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    implicit, little = ds.original_encoding
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.2" if little is False else "1.2.840.10008.1.2.1"


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def geometry(ds: Dataset) -> Geometry:
    """The image tags, refusing what cannot be an image (Orthanc's "Bad file format")."""
    g = Geometry(rows=_int(ds, "Rows", 0), columns=_int(ds, "Columns", 0), frames=max(1, _int(ds, "NumberOfFrames", 1)),
                 samples=_int(ds, "SamplesPerPixel", 1), bits_allocated=_int(ds, "BitsAllocated", 0),
                 bits_stored=_int(ds, "BitsStored", 0), signed=_int(ds, "PixelRepresentation", 0) == 1,
                 photometric=str(ds.get("PhotometricInterpretation", "") or "").strip().upper())
    if g.bits_stored == 0:
        g.bits_stored = g.bits_allocated
    if g.rows <= 0 or g.columns <= 0 or g.bits_allocated not in (1, 8, 16, 32) or g.samples not in (1, 3) \
            or g.bits_stored > g.bits_allocated:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Unsupported image geometry")
    if g.frame_bytes > MAX_FRAME_BYTES:
        raise OrthancError(NOT_ENOUGH_MEMORY,
                           f"Frame of {g.columns}x{g.rows}x{g.samples} at {g.bits_allocated} bits is too large")
    return g


def pixel_format(g: Geometry, compressed: bool) -> PixelFormat | None:
    """The format Orthanc 1.10.1 decodes to (``DicomImageInformation::ExtractPixelFormat``);
    codecs output RGB or grayscale whatever the photometric interpretation says."""
    if g.photometric == "PALETTE COLOR" and g.samples == 1 and not g.signed:
        if g.bits_stored == 8:
            return PixelFormat.RGB24
        if g.bits_stored == 16:
            return PixelFormat.RGB48
    if compressed or g.photometric in ("MONOCHROME1", "MONOCHROME2"):
        if g.samples == 1:
            if g.bits_stored == 8 and not g.signed:
                return PixelFormat.GRAYSCALE8
            if g.bits_allocated == 16:
                return PixelFormat.SIGNED_GRAYSCALE16 if g.signed else PixelFormat.GRAYSCALE16
            if g.bits_allocated == 32 and not g.signed:
                return PixelFormat.GRAYSCALE32
            if g.bits_stored == 1 and not g.signed:
                return PixelFormat.GRAYSCALE8
            if g.bits_allocated == 8 and not g.signed:
                return PixelFormat.GRAYSCALE8
    if g.samples == 3 and not g.signed and (compressed or g.photometric == "RGB"):
        if g.bits_stored == 8:
            return PixelFormat.RGB24
        if g.bits_allocated == 16:
            return PixelFormat.RGB48
    return None


def frames_count(ds: Dataset) -> int:
    """How many frames the instance has (``/instances/{id}/frames``)."""
    if "PixelData" not in ds:
        return 1 if _psmct_pixels(ds) is not None else 0
    return max(1, _int(ds, "NumberOfFrames", 1))


def _psmct_pixels(ds: Dataset) -> bytes | None:
    """ELSCINT1's private PMSCT_RLE1 compression (no PixelData, a private delta-RLE stream)."""
    kind = ds.get(_PSMCT_COMPRESSION_TYPE)
    content = ds.get(_PSMCT_CONTENT)
    if kind is None or content is None or not content.value:
        return None
    value = kind.value
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if str(value).strip("\0 ") != "PMSCT_RLE1":
        return None
    stream = content.value if isinstance(content.value, bytes) else bytes(content.value)
    return _decode_psmct(stream)


def _decode_psmct(stream: bytes) -> bytes:
    """Undo the escape runs (0xA5 count value), then the byte deltas (0x5A = literal 16-bit value)."""
    expanded = bytearray()
    i, n = 0, len(stream)
    while i < n:
        if stream[i] == 0xA5:
            if i + 2 >= n:
                raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Truncated PMSCT_RLE1 escape sequence")
            expanded += bytes([stream[i + 2]]) * (stream[i + 1] + 1)
            i += 3
        else:
            expanded.append(stream[i])
            i += 1
    out = bytearray()
    delta = 0
    i, n = 0, len(expanded)
    while i < n:
        if expanded[i] == 0x5A:
            if i + 2 >= n:
                raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Truncated PMSCT_RLE1 delta sequence")
            value = (expanded[i + 2] << 8) + expanded[i + 1]
            i += 3
        else:
            step = expanded[i] - 256 if expanded[i] >= 128 else expanded[i]
            value = (delta + step) & 0xFFFF
            i += 1
        out += bytes((value & 0xFF, value >> 8))
        delta = value
    return bytes(out)


def decode_frame(ds: Dataset, index: int, allow_jpeg2000: bool) -> Image:
    """Frame ``index`` in Orthanc's pixel format.

    In Orthanc's order: no pixel data is "Bad file format", an image Orthanc has no pixel
    format for "Not implemented", then an index beyond the frames "Parameter out of range";
    a corrupt stream is "Not implemented" too.
    """
    syntax = transfer_syntax(ds)
    psmct = None if "PixelData" in ds else _psmct_pixels(ds)
    if "PixelData" not in ds and psmct is None:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "The DICOM instance has no pixel data")
    g = geometry(ds)
    compressed = syntax not in NATIVE_SYNTAXES and psmct is None
    fmt = pixel_format(g, compressed)
    if fmt is None:
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED,
                           f"Unsupported photometric interpretation: {g.photometric or 'none'}")
    if syntax in JPEG2000_SYNTAXES and not allow_jpeg2000:
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED, "JPEG 2000 decoding needs the GDCM plugin configuration")
    count = frames_count(ds)
    if index < 0 or index >= count:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Frame {index} beyond the {count} frames")
    if psmct is not None:
        if len(psmct) < g.rows * g.columns * 2:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Truncated PMSCT_RLE1 image")
        raw = np.frombuffer(psmct, "<u2", g.rows * g.columns).reshape(g.rows, g.columns)
    else:
        if not compressed:
            _check_native_length(ds, g)
        raw = _pydicom_frame(ds, index, g, fmt, compressed)
    return Image(fmt, _to_format(raw, g, fmt, ds))


def _check_native_length(ds: Dataset, g: Geometry) -> None:
    """A truncated native PixelData is a bad file, not a crash in the decoder."""
    bits = g.rows * g.columns * g.samples * g.frames * g.bits_allocated
    if len(ds.PixelData) * 8 < bits:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "The pixel data is shorter than its image tags say")


def _pydicom_frame(ds: Dataset, index: int, g: Geometry, fmt: PixelFormat, compressed: bool) -> np.ndarray:
    """One frame through pydicom's backends, except JPEG, which libjpeg-turbo (imagecodecs)
    decodes: the IJG code DCMTK uses in Orthanc, hence the same pixels, 12-bit extended
    JPEG included."""
    complete_for_pydicom(ds, g)
    if transfer_syntax(ds) in JPEG_SYNTAXES:
        return _libjpeg_turbo_frame(ds, index, g)
    raw = not compressed and (not fmt.is_color or g.photometric == "PALETTE COLOR")
    if compressed and transfer_syntax(ds) != RLE_LOSSLESS:
        _check_coded_size(ds, index, g)
    if transfer_syntax(ds) in JPEG2000_SYNTAXES and g.samples == 1:
        fast = _openjpeg_threaded_frame(ds, index, g)
        if fast is not None:
            return fast
    if transfer_syntax(ds) == RLE_LOSSLESS and g.photometric == "YBR_FULL" and fmt is PixelFormat.RGB24:
        # Orthanc 1.12.1 converts with its own formula (DCMTK hands the YBR samples over)
        raw_ybr = _decoded(lambda: pixel_array(ds, index=index, raw=True))
        return jpeg_ycbcr_to_rgb(raw_ybr.reshape(g.rows, g.columns, 3))
    try:
        return pixel_array(ds, index=index, raw=raw)
    except MemoryError:
        raise OrthancError(NOT_ENOUGH_MEMORY, "Not enough memory to decode the frame") from None
    except Exception as e:  # noqa: BLE001 - codecs raise anything on corrupt streams
        log.info("Cannot decode frame %d: %s", index, e)
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"Cannot decode the frame: {e}") from None


def _decoded(decode: Callable[[], np.ndarray]) -> np.ndarray:
    """A codec's output; what it raises is Orthanc's answer for an undecodable frame."""
    try:
        return decode()
    except MemoryError:
        raise OrthancError(NOT_ENOUGH_MEMORY, "Not enough memory to decode the frame") from None
    except Exception as e:  # noqa: BLE001 - codecs raise anything on corrupt streams
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"Cannot decode the frame: {e}") from None


def jpeg_ycbcr_to_rgb(ybr: np.ndarray) -> np.ndarray:
    """Orthanc's ``ConvertJpegYCbCrToRgb``: the JPEG (full range) formula in single precision,
    truncated into 0-255 (pydicom's conversion rounds: previews would differ by one here and
    there from Orthanc's, whose MD5s its suite compares)."""
    values = ybr.astype(np.float32)
    y, cb, cr = values[..., 0], values[..., 1] - np.float32(128), values[..., 2] - np.float32(128)
    rgb = np.stack([y + np.float32(1.402) * cr,
                    y - np.float32(0.344136) * cb - np.float32(0.714136) * cr,
                    y + np.float32(1.772) * cb], axis=-1)
    result: np.ndarray = np.clip(rgb, 0, 255).astype(np.uint8)
    return result


def stored_frame(ds: Dataset, index: int, g: Geometry) -> np.ndarray:
    """One compressed frame as stored values (dtype of BitsAllocated, signed if so), YBR colour
    as RGB: what a transcoder re-encodes."""
    complete_for_pydicom(ds, g)
    if transfer_syntax(ds) in JPEG_SYNTAXES:
        values = _libjpeg_turbo_frame(ds, index, g)
    else:
        try:
            values = pixel_array(ds, index=index)
        except MemoryError:
            raise OrthancError(NOT_ENOUGH_MEMORY, "Not enough memory to decode the frame") from None
        except Exception as e:  # noqa: BLE001 - codecs raise anything on corrupt streams
            raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"Cannot decode the frame: {e}") from None
    size = max(1, g.bits_allocated // 8)
    return values.astype(np.dtype(f"{'i' if g.signed else 'u'}{size}"))


def _libjpeg_turbo_frame(ds: Dataset, index: int, g: Geometry) -> np.ndarray:
    try:
        frame = next(itertools.islice(generate_frames(ds.PixelData, number_of_frames=g.frames), index, None))
        if _coded_size(frame) != (g.rows, g.columns):
            raise ValueError("the JPEG frame does not have the size of the image")
        pixels = imagecodecs.jpeg8_decode(frame)
    except Exception as e:  # noqa: BLE001 - corrupt streams
        log.info("Cannot decode JPEG frame %d: %s", index, e)
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"Cannot decode the JPEG frame: {e}") from None
    if g.signed and pixels.dtype.kind == "u":
        values = pixels.astype(np.int32)
        values[values >= 1 << (g.bits_stored - 1)] -= 1 << g.bits_stored
        return values
    return pixels


def _openjpeg_threaded_frame(ds: Dataset, index: int, g: Geometry) -> np.ndarray | None:
    """A grayscale JPEG 2000 frame decoded by OpenJPEG on every core (imagecodecs), about twice
    as fast as pydicom's single-threaded path; None (that path then decodes) unless the
    codestream's samples are exactly what the image tags say, so that no correction pydicom
    would apply is skipped."""
    try:
        frame = next(itertools.islice(generate_frames(ds.PixelData, number_of_frames=g.frames), index, None))
        values = imagecodecs.jpeg2k_decode(frame, numthreads=os.cpu_count() or 1)
    except Exception:  # noqa: BLE001 - pydicom's path decides what a corrupt stream answers
        return None
    expected = np.dtype(f"{'i' if g.signed else 'u'}{max(1, g.bits_allocated // 8)}")
    if values.shape != (g.rows, g.columns) or values.dtype != expected:
        return None
    return values


def _coded_size(stream: bytes) -> tuple[int, int] | None:
    """(rows, columns) that a JPEG, JPEG-LS or JPEG 2000 codestream declares, read before a
    decoder allocates for it; None when no such header is found."""
    if stream[:4] == b"\xff\x4f\xff\x51" and len(stream) >= 24:
        x, y, x0, y0 = (int.from_bytes(stream[i:i + 4], "big") for i in (8, 12, 16, 20))
        return y - y0, x - x0
    position = 2
    while stream[:2] == b"\xff\xd8" and position + 9 <= len(stream):
        if stream[position] != 0xFF:
            return None
        marker = stream[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xF7:
            header = stream[position + 5:position + 9]
            return int.from_bytes(header[:2], "big"), int.from_bytes(header[2:], "big")
        position += 2 + int.from_bytes(stream[position + 2:position + 4], "big")
    return None


def _check_coded_size(ds: Dataset, index: int, g: Geometry) -> None:
    """A frame whose codestream claims another (maybe enormous) size is refused undecoded."""
    try:
        frame = next(itertools.islice(generate_frames(ds.PixelData, number_of_frames=g.frames), index, None))
    except Exception as e:  # noqa: BLE001 - malformed encapsulation
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"Bad encapsulated pixel data: {e}") from None
    size = _coded_size(frame)
    if size is not None and size != (g.rows, g.columns):
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"The frame is coded as {size[1]}x{size[0]} pixels, "
                                                      f"not {g.columns}x{g.rows}")


def complete_for_pydicom(ds: Dataset, g: Geometry) -> None:
    """Give pydicom the tags it insists on and that Orthanc defaults (a file without meta header
    or without PixelRepresentation)."""
    if "PixelRepresentation" not in ds:
        ds.PixelRepresentation = 0
    if "SamplesPerPixel" not in ds:
        ds.SamplesPerPixel = g.samples
    if "BitsStored" not in ds:
        ds.BitsStored = g.bits_stored
    if "PhotometricInterpretation" not in ds:
        ds.PhotometricInterpretation = "MONOCHROME2"
    if g.samples == 3 and "PlanarConfiguration" not in ds:
        ds.PlanarConfiguration = 0
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        syntax = transfer_syntax(ds)
        ds.file_meta = meta if meta is not None else FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax


def _to_format(raw: np.ndarray, g: Geometry, fmt: PixelFormat, ds: Dataset) -> np.ndarray:
    if g.photometric == "PALETTE COLOR" and fmt.is_color:
        try:
            rgb = apply_color_lut(raw, ds)
        except Exception as e:  # noqa: BLE001 - malformed lookup tables
            raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"Bad palette: {e}") from None
        if fmt is PixelFormat.RGB24 and rgb.dtype != np.uint8:
            rgb = (rgb >> 8).astype(np.uint8) if rgb.max(initial=0) > 255 else rgb.astype(np.uint8)
        return np.ascontiguousarray(rgb, DTYPES[fmt])
    if g.bits_allocated == 1:
        return np.where(raw != 0, 255, 0).astype(np.uint8)
    if fmt.is_color:
        return np.ascontiguousarray(raw.reshape(g.rows, g.columns, 3), DTYPES[fmt])
    pixels = raw.reshape(g.rows, g.columns)
    if not g.signed and g.bits_stored < g.bits_allocated and pixels.dtype.kind == "u":
        pixels = pixels & ((1 << g.bits_stored) - 1)
    return np.ascontiguousarray(pixels, DTYPES[fmt])


def raw_frame(ds: Dataset, index: int) -> tuple[bytes, str]:
    """The stored bytes of one frame and their MIME type (``/frames/{n}/raw``), undecoded."""
    syntax = transfer_syntax(ds)
    psmct = None if "PixelData" in ds else _psmct_pixels(ds)
    if "PixelData" not in ds and psmct is None:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "No pixel data")
    count = frames_count(ds)
    if index < 0 or index >= count:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Frame {index} beyond the {count} frames")
    if psmct is not None:
        return psmct, "application/octet-stream"
    if syntax in NATIVE_SYNTAXES:
        g = geometry(ds)
        size = (g.rows * g.columns * g.samples * g.bits_allocated + 7) // 8
        data = ds.PixelData[index * size:(index + 1) * size]
        if len(data) != size:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "The pixel data is shorter than its image tags say")
        return data, "application/octet-stream"
    try:
        frames = generate_frames(ds.PixelData, number_of_frames=count)
        for i, frame in enumerate(frames):
            if i == index:
                return frame, _FRAME_MIME.get(syntax, "application/octet-stream")
    except Exception as e:  # noqa: BLE001 - malformed encapsulation
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"Bad encapsulated pixel data: {e}") from None
    raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Frame {index} is absent")


_FRAME_MIME = {
    "1.2.840.10008.1.2.4.50": "image/jpeg", "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg", "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls", "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2", "1.2.840.10008.1.2.4.91": "image/jp2",
}
