"""What Orthanc's image routes make of a decoded frame: the four extraction modes
(``preview``, ``image-uint8``, ``image-uint16``, ``image-int16``), ``rendered`` (rescale,
windowing, resizing), and the encodings (PNG, JPEG, PAM, Matlab, numpy).

The arithmetic copies Orthanc 1.10.1's (float32, rounding half away from zero in
``preview``, flooring in ``rendered``) and the PNG writer copies libpng's defaults (adaptive
filters, ``Z_FILTERED`` deflate, 8 KiB IDAT chunks, reduced window for small images), so
that the answers are the bytes Orthanc sends, not merely the same picture.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
from PIL import Image as PilImage
from pydicom.dataset import Dataset

from server.dicom.pixels import DTYPES, Image, PixelFormat
from server.errors import ErrorCode, OrthancError

#: Orthanc's ``ErrorCode_IncompatibleImageFormat`` and ``ErrorCode_IncompatibleImageSize``.
INCOMPATIBLE_IMAGE_FORMAT, INCOMPATIBLE_IMAGE_SIZE = 31, 32


class Mode(Enum):
    PREVIEW = "preview"
    UINT8 = "image-uint8"
    UINT16 = "image-uint16"
    INT16 = "image-int16"


_TRUNCATE_TO = {Mode.UINT8: PixelFormat.GRAYSCALE8, Mode.UINT16: PixelFormat.GRAYSCALE16,
                Mode.INT16: PixelFormat.SIGNED_GRAYSCALE16}
_LIMITS = {PixelFormat.GRAYSCALE8: (0, 255), PixelFormat.GRAYSCALE16: (0, 65535),
           PixelFormat.SIGNED_GRAYSCALE16: (-32768, 32767), PixelFormat.GRAYSCALE32: (0, 2**32 - 1)}


def _not_implemented(why: str) -> OrthancError:
    return OrthancError(ErrorCode.NOT_IMPLEMENTED, why)


def convert(image: Image, target: PixelFormat) -> Image:
    """Orthanc's ``ImageProcessing::Convert`` between grayscale formats (values clamped)."""
    if image.format is target:
        return image
    if target in _LIMITS and image.format in _LIMITS or image.format is PixelFormat.FLOAT32:
        low, high = _LIMITS[target]
        values = image.pixels
        if values.dtype.kind == "f":
            values = np.rint(values)
        return Image(target, np.clip(values, low, high).astype(DTYPES[target]))
    if image.format is PixelFormat.RGB48 and target is PixelFormat.RGB24:
        return Image(target, (image.pixels >> 8).astype(np.uint8))
    raise _not_implemented(f"Cannot convert {image.format.value} to {target.value}")


def extract(image: Image, mode: Mode, invert: bool) -> Image:
    """``DicomImageDecoder::ApplyExtractionMode``: truncation for image-*, stretching for preview."""
    if mode is Mode.PREVIEW:
        result = _preview(image)
    else:
        target = _TRUNCATE_TO[mode]
        if image.format.is_color:
            raise _not_implemented("Color images cannot be extracted as grayscale")
        result = convert(image, target)
    if invert:
        if result.format is not PixelFormat.GRAYSCALE8:
            raise _not_implemented("Inversion of non-8bpp images")
        result = Image(result.format, 255 - result.pixels)
    return result


def _preview(image: Image) -> Image:
    if image.format is PixelFormat.RGB24:
        return image
    if image.format is PixelFormat.RGB48:
        return convert(image, PixelFormat.RGB24)
    if image.format not in (PixelFormat.GRAYSCALE8, PixelFormat.GRAYSCALE16, PixelFormat.SIGNED_GRAYSCALE16):
        raise _not_implemented(f"No preview for {image.format.value}")
    pixels = image.pixels
    low, high = int(pixels.min(initial=0)), int(pixels.max(initial=0))
    if pixels.size:
        low, high = int(pixels.min()), int(pixels.max())
    if low == high:
        return Image(PixelFormat.GRAYSCALE8, np.zeros(pixels.shape, np.uint8))
    scaling = np.float32(255.0) / np.float32(high - low)
    offset = np.float32(-low) * scaling
    values = pixels.astype(np.float32)
    values *= scaling
    values += offset  # never below 0 (the minimum maps to exactly 0), so rounding half away
    values += np.float32(0.5)  # from zero is floor(v + 0.5)
    np.floor(values, out=values)
    np.clip(values, 0, 255, out=values)
    return Image(PixelFormat.GRAYSCALE8, values.astype(np.uint8))


# -- rendered ------------------------------------------------------------------------------

@dataclass
class RenderArguments:
    """The query of ``/rendered`` (Orthanc's names), None where absent."""

    window_center: float | None = None
    window_width: float | None = None
    width: int = 0
    height: int = 0
    smooth: bool = False


def _number(value: Any) -> float | None:
    try:
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            value = value[0]
        return float(value)
    except (TypeError, ValueError, IndexError):
        return None


def _frame_item(ds: Dataset, frame: int, sequence: str) -> list[Dataset]:
    """The per-frame then shared functional-group items that hold ``sequence``."""
    items: list[Dataset] = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame) and sequence in per_frame[frame]:
        items += list(per_frame[frame][sequence])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and sequence in shared[0]:
        items += list(shared[0][sequence])
    return items


def rescale(ds: Dataset, frame: int) -> tuple[float, float]:
    """(intercept, slope) of the frame: functional groups first, then the top level, else (0, 1)."""
    for item in [*_frame_item(ds, frame, "PixelValueTransformationSequence"), ds]:
        intercept, slope = _number(item.get("RescaleIntercept")), _number(item.get("RescaleSlope"))
        if intercept is not None and slope is not None:
            return intercept, slope
    return 0.0, 1.0


def default_windowing(ds: Dataset, frame: int) -> tuple[float, float]:
    """(center, width) of the frame; without windowing tags, the full range of BitsStored."""
    for item in [*_frame_item(ds, frame, "FrameVOILUTSequence"), ds]:
        center, width = _number(item.get("WindowCenter")), _number(item.get("WindowWidth"))
        if center is not None and width is not None:
            return center, width
    bits = _number(ds.get("BitsStored"))
    if bits is not None and 0 < bits <= 32:
        full = float(1 << int(bits))
        return full / 2.0, full
    return 128.0, 256.0


def render(image: Image, ds: Dataset, frame: int, args: RenderArguments) -> tuple[Image, bool]:
    """Orthanc's ``RenderedFrameHandler``: the image to encode, and whether it is inverted
    (MONOCHROME1); colour images are only resized."""
    invert = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    intercept, slope = rescale(ds, frame)
    center, width = default_windowing(ds, frame)
    if args.window_center is not None:
        center = args.window_center
    if args.window_width is not None:
        width = args.window_width
    target = _target_size(image, args)
    if image.format.is_color:
        rendered = convert(image, PixelFormat.RGB24) if image.format is PixelFormat.RGB48 else image
        return _resize(rendered, target, args.smooth), False
    width = max(width, 1.0)
    if abs(slope) <= 0.0001:
        slope = 0.0001
    scaling = np.float32(255.0 * slope / width)
    offset = np.float32((intercept - center + width / 2.0) / slope)
    values = image.pixels.astype(np.float32)
    values *= scaling
    values += offset * scaling
    np.floor(values, out=values)
    np.clip(values, 0, 255, out=values)
    gray = Image(PixelFormat.GRAYSCALE8, values.astype(np.uint8))
    return _resize(gray, target, args.smooth), invert


def _target_size(image: Image, args: RenderArguments) -> tuple[int, int]:
    if image.width == 0 or image.height == 0:
        return image.width, image.height
    ratio = 1.0
    if args.width and args.height:
        ratio = min(args.width / image.width, args.height / image.height)
    elif args.width:
        ratio = args.width / image.width
    elif args.height:
        ratio = args.height / image.height
    return _iround(ratio * image.width), _iround(ratio * image.height)


def _iround(value: float) -> int:
    return int(np.floor(value + 0.5)) if value >= 0 else -int(np.floor(-value + 0.5))


def _resize(image: Image, size: tuple[int, int], smooth: bool) -> Image:
    if size == (image.width, image.height):
        return image
    if size[0] <= 0 or size[1] <= 0:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "Empty target size")
    pil = PilImage.fromarray(image.pixels)
    if smooth and (size[0] < image.width or size[1] < image.height):
        from PIL import ImageFilter
        pil = pil.filter(ImageFilter.GaussianBlur(1))
    return Image(image.format, np.asarray(pil.resize(size, PilImage.Resampling.BILINEAR)))


# -- encodings -------------------------------------------------------------------------------

def encode_png(image: Image) -> bytes:
    """The PNG libpng writes with Orthanc's (default) settings."""
    pixels = image.pixels
    if image.format is PixelFormat.GRAYSCALE8:
        color_type, depth, rows = 0, 8, pixels.astype(np.uint8)
    elif image.format in (PixelFormat.GRAYSCALE16, PixelFormat.SIGNED_GRAYSCALE16):
        color_type, depth, rows = 0, 16, pixels.astype(">u2" if image.format is PixelFormat.GRAYSCALE16 else ">i2")
    elif image.format is PixelFormat.RGB24:
        color_type, depth, rows = 2, 8, pixels.astype(np.uint8)
    elif image.format is PixelFormat.RGB48:
        color_type, depth, rows = 2, 16, pixels.astype(">u2")
    else:
        raise _not_implemented(f"No PNG for {image.format.value}")
    height, width = pixels.shape[0], pixels.shape[1]
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(height, -1)
    bpp = max(1, (depth // 8) * (3 if color_type == 2 else 1))
    filtered = _png_filter(raw, bpp)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", ihdr)]
    stream = _png_deflate(filtered, len(filtered))
    out += [_chunk(b"IDAT", stream[i:i + 8192]) for i in range(0, len(stream), 8192)]
    out.append(_chunk(b"IEND", b""))
    if depth == 16 and color_type == 0 and height > 0:
        out.append(_chunk(b"IEND", b""))  # Orthanc ends 16-bit grayscale twice (png_write_png, then png_write_end)
    return b"".join(out)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


#: Bytes of image rows filtered at a time: the working set (five candidate filterings and
#: temporaries) then stays in the CPU's cache, 2.5x faster than the whole image at once.
_FILTER_BLOCK_BYTES = 64 * 1024


def _png_filter(raw: np.ndarray, bpp: int) -> bytes:
    """libpng's adaptive filtering: per row, the filter with the smallest sum of absolute
    (signed-byte) residuals, the first one on ties (None, Sub, Up, Average, Paeth).

    Everything stays in bytes but Paeth's distances, the choices are masks rather than
    ``np.where``, and the rows go by blocks: ~0.9 ms for a 512x512 rendering."""
    height, width = raw.shape
    padded = np.zeros((height + 1, width + bpp), np.uint8)  # a zero row above, zero bytes on the left
    padded[1:, bpp:] = raw
    out = np.empty((height, width + 1), np.uint8)
    block = max(1, _FILTER_BLOCK_BYTES // max(1, width))
    candidates = np.empty((5, min(block, height), width), np.uint8)
    for top in range(0, height, block):
        rows = min(block, height - top)
        below, above = padded[top + 1:top + 1 + rows], padded[top:top + rows]
        x, left, up, upleft = below[:, bpp:], below[:, :-bpp], above[:, bpp:], above[:, :-bpp]
        filtered = candidates[:, :rows]
        filtered[0] = x
        np.subtract(x, left, out=filtered[1])
        np.subtract(x, up, out=filtered[2])
        np.subtract(x, (left & up) + ((left ^ up) >> 1), out=filtered[3])  # floor((a + b) / 2) in bytes
        np.subtract(x, _paeth_predictor(left, up, upleft), out=filtered[4])
        # a byte's distance to zero as a signed byte, min(v, 256 - v): |int8| read back unsigned (-128 -> 128)
        costs = np.abs(filtered.view(np.int8)).view(np.uint8).sum(axis=2, dtype=np.uint32)
        choice = np.argmin(costs, axis=0)
        out[top:top + rows, 0] = choice
        out[top:top + rows, 1:] = filtered[choice, np.arange(rows)]
    return out.tobytes()


def _paeth_predictor(left: np.ndarray, up: np.ndarray, upleft: np.ndarray) -> np.ndarray:
    """PNG's Paeth predictor of each byte: left, up or up-left, whichever is nearest to
    left + up - upleft (in that order on ties)."""
    bc = np.subtract(up, upleft, dtype=np.int16)
    ac = np.subtract(left, upleft, dtype=np.int16)
    pa, pb, pc = np.abs(bc), np.abs(ac), np.abs(bc + ac)  # |p - left|, |p - up|, |p - upleft|
    use_left = (pa <= pb) & (pa <= pc)
    use_up = (pb <= pc) & ~use_left
    use_upleft = ~(use_left | use_up)
    chosen: np.ndarray = ((left * use_left.view(np.uint8)) | (up * use_up.view(np.uint8))
                          | (upleft * use_upleft.view(np.uint8)))
    return chosen


def _png_deflate(data: bytes, size: int) -> bytes:
    """zlib as libpng sets it up: level 6, Z_FILTERED, a window shrunk to the data when small,
    and the header's window field shrunk further (``optimize_cmf``)."""
    bits = 15
    if size <= 16384:
        half = 1 << (bits - 1)
        while size + 262 <= half:
            half >>= 1
            bits -= 1
    bits = max(bits, 9)
    compressor = zlib.compressobj(6, zlib.DEFLATED, bits, 8, zlib.Z_FILTERED)
    stream = bytearray(compressor.compress(data) + compressor.flush())
    if size <= 16384:
        cinfo = stream[0] >> 4
        half = 1 << (cinfo + 7)
        while size <= half and half >= 256:
            cinfo -= 1
            half >>= 1
        cmf = (stream[0] & 0x0F) | (cinfo << 4)
        stream[0] = cmf
        flg = stream[1] & 0xE0
        stream[1] = flg + 0x1F - ((cmf << 8) + flg) % 0x1F
    return bytes(stream)


def encode_jpeg(image: Image, quality: int) -> bytes:
    """Baseline JPEG of an 8-bit image (Orthanc refuses other depths)."""
    if image.format not in (PixelFormat.GRAYSCALE8, PixelFormat.RGB24):
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "JPEG needs an 8-bit image")
    buffer = io.BytesIO()
    PilImage.fromarray(image.pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def encode_pam(image: Image) -> bytes:
    """Netpbm's PAM (``image/x-portable-arbitrarymap``)."""
    pixels = image.pixels
    depth = 3 if image.format.is_color else 1
    tupltype = "RGB" if depth == 3 else "GRAYSCALE"
    maxval = 255 if pixels.dtype.itemsize == 1 else 65535
    header = (f"P7\nWIDTH {image.width}\nHEIGHT {image.height}\nDEPTH {depth}\nMAXVAL {maxval}\n"
              f"TUPLTYPE {tupltype}\nENDHDR\n").encode("ascii")
    body = pixels.astype(">u1" if maxval == 255 else ">u2") if pixels.dtype.kind != "i" else pixels.astype(">i2")
    return header + np.ascontiguousarray(body).tobytes()


def encode_matlab(image: Image) -> bytes:
    """``ImageAccessor::ToMatlabString``."""
    pixels = image.pixels
    if image.format is PixelFormat.RGB24:
        rows = (" ".join(str(int(v)) for v in row.reshape(-1)) + " " for row in pixels)
        text = f"double(permute(reshape([ {''.join(rows)}], [ 3 {image.height} {image.width} ]), [ 3 2 1 ]))"
        return text.encode("ascii")
    if image.format.is_color:
        raise _not_implemented("No Matlab export of RGB48")
    rows = (" ".join(_matlab_number(v) for v in row) + " " for row in pixels.tolist())
    return ("double([ " + "; ".join(rows) + "])").encode("ascii")


def _matlab_number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(np.float32(value)))


def numpy_frames(images: list[Image], rescales: list[tuple[float, float]], depth: int | None,
                 apply_rescale: bool, compress: bool) -> bytes:
    """The ``.npy`` Orthanc writes (``(depth,) height, width, channels``), zipped as ``.npz`` on demand."""
    first = images[0]
    for image in images[1:]:
        if (image.width, image.height) != (first.width, first.height):
            raise OrthancError(INCOMPATIBLE_IMAGE_SIZE, "The size of the frames varies across the instance(s)")
        if image.format is not first.format:
            raise OrthancError(INCOMPATIBLE_IMAGE_FORMAT,
                               "The pixel format of the frames varies across the instance(s)")
    arrays = []
    for image, (intercept, slope) in zip(images, rescales, strict=True):
        if apply_rescale and image.format is not PixelFormat.RGB24:
            arrays.append(np.float32(slope) * image.pixels.astype(np.float32) + np.float32(intercept))
        elif image.format in (PixelFormat.GRAYSCALE8, PixelFormat.GRAYSCALE16, PixelFormat.SIGNED_GRAYSCALE16,
                              PixelFormat.RGB24):
            arrays.append(image.pixels)
        else:
            raise _not_implemented(f"No numpy export of {image.format.value}")
    channels = 3 if arrays[0].ndim == 3 else 1
    descr = {np.dtype(np.uint8): "<u1", np.dtype(np.uint16): "<u2", np.dtype(np.int16): "<i2",
             np.dtype(np.float32): "<f4"}[arrays[0].dtype]
    shape = f"{depth}, " if depth is not None else ""
    dims = f"{shape}{first.height},{first.width},{channels}"
    info = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}"
    minimum = 8 + 2 + len(info) + 1
    length = 64
    while length < minimum:
        length += 64
    header_length = len(info) + (length - minimum) + 1
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", header_length) + info.encode("ascii") \
        + b" " * (length - minimum) + b"\n"
    data = header + b"".join(np.ascontiguousarray(a, np.dtype(descr)).tobytes() for a in arrays)
    if not compress:
        return data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=len(data) >= 1 << 30) as archive:
        archive.writestr("arr_0", data)
    return buffer.getvalue()
