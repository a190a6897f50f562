"""The one transcoder: a dataset or a DICOM file in another transfer syntax.

Used by modify/anonymize, archives and media, C-STORE SCU, peer store and Lua. It does
what Orthanc's DCMTK transcoder does: uncompressed syntaxes are rewritten (words swapped
for big endian), compressed sources are decoded (:mod:`server.dicom.pixels`' codecs, YBR
colour coming out as RGB), and the pixels are encoded for the target:

* JPEG lossless (``.57``/``.70``, predictor 1) and JPEG baseline/extended (``.50``/``.51``,
  a quality, YBR_FULL_422 colour) by libjpeg-turbo (imagecodecs);
* JPEG-LS (``.80``/``.81``) by CharLS (pyjpegls), RLE by pylibjpeg-rle, JPEG 2000
  (``.90``/``.91``, only with the GDCM configuration, as Orthanc needs its GDCM plugin) by
  OpenJPEG, all through pydicom's encoders.

A lossy target gives the instance a new SOPInstanceUID and the lossy-compression tags,
as DCMTK does. What cannot be done raises :class:`CannotTranscode`.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import imagecodecs
import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.utils import pack_bits, pixel_array
from pydicom.sequence import Sequence
from pydicom.uid import UID, AllTransferSyntaxes

from server.dicom import pixels, uids
from server.dicom.main_tags import Level
from server.errors import ErrorCode, OrthancError

log = logging.getLogger("isengard.transcode")

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG2000 = "1.2.840.10008.1.2.4.91"
RLE = "1.2.840.10008.1.2.5"

#: (implicit VR, little endian) of the uncompressed syntaxes.
NATIVE = {IMPLICIT_LE: (True, True), EXPLICIT_LE: (False, True), DEFLATED_LE: (False, True),
          EXPLICIT_BE: (False, False)}
LOSSY = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR, JPEG2000})
#: The targets the transcoder can write (the uncompressed ones besides).
ENCODABLE = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS,
                       JPEG_LS_NEAR, JPEG2000_LOSSLESS, JPEG2000, RLE})
_LOSSY_METHODS = {JPEG_BASELINE: "ISO_10918_1", JPEG_EXTENDED: "ISO_10918_1", JPEG_LS_NEAR: "ISO_14495_1",
                  JPEG2000: "ISO_15444_1"}
#: What decoding and encoding may change, restored when transcoding fails half-way.
_PIXEL_DESCRIPTION = (0x00280004, 0x00280006, 0x7FE00010, 0x00080018, 0x00080008, 0x00082111, 0x00282110,
                      0x00282112, 0x00282114, 0x00082112)
_WORD_VRS = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


class CannotTranscode(OrthancError):
    """The source cannot be decoded, or the target cannot encode these pixels."""

    def __init__(self, source: str, target: str, why: str = "") -> None:
        super().__init__(ErrorCode.NOT_IMPLEMENTED,
                         f"Cannot transcode from {source or 'unknown'} to {target}" + (f": {why}" if why else ""))
        self.target = target


@dataclass(frozen=True)
class Settings:
    """The configuration the transcoder follows: ``DicomLossyTranscodingQuality``, and whether
    JPEG 2000 is available. Orthanc has JPEG 2000 only with its GDCM plugin loaded; Isengard
    has it built in and turns it on when the configuration loads that plugin (a ``Plugins``
    entry naming it, or a folder holding it) and its ``Gdcm.Enable`` is not false."""

    quality: int = 90
    jpeg2000: bool = False

    @classmethod
    def from_config(cls, config: Any, lossy_quality: int | None = None) -> Settings:
        """The configuration's settings; ``lossy_quality`` (a request's ``LossyQuality``,
        Orthanc 1.12.7) overrides ``DicomLossyTranscodingQuality``."""
        quality = config.get("DicomLossyTranscodingQuality", 90) if lossy_quality is None else lossy_quality
        section = config.get("Gdcm")
        enabled = not (isinstance(section, dict) and section.get("Enable") is False)
        return cls(quality=int(quality) if isinstance(quality, int) and 1 <= quality <= 100 else 90,
                   jpeg2000=enabled and _loads_gdcm_plugin(config.get("Plugins")))


def _loads_gdcm_plugin(entries: Any) -> bool:
    for entry in entries if isinstance(entries, list) else []:
        path = Path(str(entry))
        if "gdcm" in path.name.lower():
            return True
        if path.is_dir() and any("gdcm" in child.name.lower() for child in path.iterdir()):
            return True
    return False


DEFAULT_SETTINGS = Settings()


def parse_transcode(value: Any, job: bool = False) -> str:
    """The one validator of a ``Transcode`` field or ``transcode`` argument, with Orthanc's
    errors: a REST argument is "out of range", a job's field (modification, peer store) a
    "bad file format", as Orthanc's jobs parse it themselves."""
    if not isinstance(value, str):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "String value expected in field: Transcode")
    if value not in AllTransferSyntaxes:
        if job:
            raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"Unknown transfer syntax UID: {value}")
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Unknown transfer syntax: {value}")
    return value


def source_syntax(ds: Dataset) -> str:
    return pixels.transfer_syntax(ds)


def transcode_dataset(ds: Dataset, target: str, settings: Settings = DEFAULT_SETTINGS) -> None:
    """Re-encode ``ds``'s pixel data in place for ``target`` and set its meta header's syntax;
    on :class:`CannotTranscode` the dataset is left as it was."""
    source = source_syntax(ds)
    if source == target:
        return
    if target not in NATIVE and target not in ENCODABLE:
        raise CannotTranscode(source, target, "no encoder")
    if target in (JPEG2000_LOSSLESS, JPEG2000) and not settings.jpeg2000:
        raise CannotTranscode(source, target, "JPEG 2000 needs the GDCM configuration")
    if target in (JPEG_BASELINE, JPEG_EXTENDED) and _int_tag(ds, "BitsStored") > (8 if target == JPEG_BASELINE else 12):
        raise CannotTranscode(source, target, "too many bits per sample for lossy JPEG")
    if source in NATIVE and target in NATIVE:
        if NATIVE[source][1] != NATIVE[target][1]:
            swap_words(ds, NATIVE[target][1])
    elif "PixelData" in ds:
        saved = {tag: ds[tag] for tag in _PIXEL_DESCRIPTION if tag in ds}
        try:
            frames = _decode_all(ds, source, target, settings.jpeg2000)
            if target in NATIVE:
                _store_native(ds, frames, NATIVE[target][1])
            else:
                _encode(ds, frames, source, target, settings.quality)
        except CannotTranscode:
            for tag, element in saved.items():
                ds[tag] = element
            raise
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = target


def _int_tag(ds: Dataset, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


@overload
def transcode_file(data: bytes, target: str, settings: Settings = DEFAULT_SETTINGS) -> bytes: ...


@overload
def transcode_file(data: bytes | mmap.mmap, target: str,
                   settings: Settings = DEFAULT_SETTINGS) -> bytes | mmap.mmap: ...


def transcode_file(data: bytes | mmap.mmap, target: str,
                   settings: Settings = DEFAULT_SETTINGS) -> bytes | mmap.mmap:
    """The DICOM file ``data`` in ``target`` (the same bytes, or memory map of a large upload,
    if it already is), with the meta header Orthanc writes."""
    from server.dicom.modify import write_file  # modify writes through this module: import late

    ds = pixels.read_image_dataset(data)
    if source_syntax(ds) == target:
        return data
    try:
        return write_file(ds, target, settings)
    except (OrthancError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - pydicom's writer on a file it could only half read
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, f"Cannot write the transcoded file: {e}") from None


def transcode_or_keep(data: bytes, target: str, settings: Settings = DEFAULT_SETTINGS) -> bytes:
    """The file in ``target``, or the file as it is when it cannot be transcoded: what Orthanc's
    archives, media, peer and modality stores send in that case."""
    try:
        return transcode_file(data, target, settings)
    except CannotTranscode as e:
        log.info("%s, sending the instance as it is", e.details)
        return data


#: What Orthanc never ingest-transcodes: videos and the special encapsulations.
_NOT_TRANSCODABLE = frozenset({
    "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101", "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103",
    "1.2.840.10008.1.2.4.104", "1.2.840.10008.1.2.4.105", "1.2.840.10008.1.2.4.106", "1.2.840.10008.1.2.4.107",
    "1.2.840.10008.1.2.4.108", "1.2.840.10008.1.2.6.1", "1.2.840.10008.1.2.6.2"})
#: Orthanc's "uncompressed" for ingest transcoding (deflate counts as compressed).
_UNCOMPRESSED = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE})


@dataclass(frozen=True)
class IngestTranscoding:
    """``IngestTranscoding`` (Orthanc 1.8) with ``IngestTranscodingOfUncompressed`` and
    ``IngestTranscodingOfCompressed`` (1.8.2): every received file is stored in ``target``,
    except what ServerContext::TranscodeAndStore leaves as it is (see :meth:`applies`)."""

    target: str
    uncompressed: bool = True
    compressed: bool = True
    settings: Settings = DEFAULT_SETTINGS

    @classmethod
    def from_config(cls, config: Any) -> IngestTranscoding | None:
        """None when the option is absent; an unknown syntax stops start-up, as in Orthanc."""
        from server.config import ConfigError  # the configuration package imports the DICOM modules

        target = config.get("IngestTranscoding")
        if target is None:
            return None
        if target not in AllTransferSyntaxes:
            raise ConfigError(f"Unknown transfer syntax for ingest transcoding: {target}")
        return cls(str(target), config.get("IngestTranscodingOfUncompressed", True) is not False,
                   config.get("IngestTranscodingOfCompressed", True) is not False, Settings.from_config(config))

    def applies(self, source: str | None, has_pixels: Callable[[], bool]) -> bool:
        """Orthanc's rules: a file already in the target, of unknown syntax or a video is kept;
        uncompressed and compressed sources follow their option; a file without pixels
        (SR, PDF, ...) is only rewritten for an uncompressed target."""
        if source is None or source == self.target or source in _NOT_TRANSCODABLE:
            return False
        if source not in _UNCOMPRESSED:
            return self.compressed
        return self.uncompressed and (self.target in _UNCOMPRESSED or has_pixels())

    def transcode(self, data: bytes | mmap.mmap) -> bytes | mmap.mmap:
        """The file in the target, or as it is when it cannot be transcoded (Orthanc stores
        the original then)."""
        try:
            return transcode_file(data, self.target, self.settings)
        except OrthancError as e:
            log.info("Ingest transcoding to %s failed, storing the instance as received: %s",
                     self.target, e)
            return data


def swap_words(ds: Dataset, little_endian: bool) -> None:
    """Byte-swap the OW/OF/OL/OD/OV values of ``ds`` (and its items) for the other endianness."""
    from pydicom.filewriter import correct_ambiguous_vr
    correct_ambiguous_vr(ds, little_endian)
    for tag in list(ds.keys()):
        elem = ds[tag]
        if elem.VR in _WORD_VRS and isinstance(elem.value, bytes):
            size = _WORD_VRS[elem.VR]
            usable = len(elem.value) - len(elem.value) % size
            words = np.frombuffer(elem.value[:usable], np.dtype(f"u{size}")).byteswap()
            elem.value = words.tobytes() + elem.value[usable:]
        elif elem.VR == "SQ" and isinstance(elem.value, Sequence):
            for item in elem.value:
                swap_words(item, little_endian)


# -- decoding -----------------------------------------------------------------------------

def _decode_all(ds: Dataset, source: str, target: str, allow_jpeg2000: bool) -> np.ndarray:
    """Every frame as stored values (frames, rows, columns[, 3]); YBR colour becomes RGB."""
    try:
        g = pixels.geometry(ds)
    except OrthancError as e:
        raise CannotTranscode(source, target, e.details or "") from None
    if source in pixels.JPEG2000_SYNTAXES and not allow_jpeg2000:
        raise CannotTranscode(source, target, "JPEG 2000 needs the GDCM configuration")
    if source in NATIVE:
        raw = _native_frames(ds, g)
    else:
        try:
            raw = np.stack([pixels.stored_frame(ds, i, g) for i in range(pixels.frames_count(ds))])
        except OrthancError as e:
            raise CannotTranscode(source, target, e.details or "") from None
        if g.samples == 3 and g.photometric.startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"
    if g.samples == 3:
        ds.PlanarConfiguration = 0
    return raw


def _native_frames(ds: Dataset, g: pixels.Geometry) -> np.ndarray:
    pixels.complete_for_pydicom(ds, g)
    try:
        values = pixel_array(ds, raw=True)
    except Exception as e:  # noqa: BLE001 - malformed native data
        raise CannotTranscode(source_syntax(ds), "", str(e)) from None
    return values.reshape(g.frames, g.rows, g.columns, *((3,) if g.samples == 3 else ()))


def _store_native(ds: Dataset, frames: np.ndarray, little_endian: bool) -> None:
    bits = int(ds.BitsAllocated)
    if bits == 1:
        data = pack_bits(frames)
    else:
        dtype = np.dtype(f"{'<' if little_endian else '>'}{'i' if frames.dtype.kind == 'i' else 'u'}{bits // 8}")
        data = frames.astype(dtype).tobytes()
    if len(data) % 2:
        data += b"\0"
    ds["PixelData"] = DataElement(0x7FE00010, "OW" if bits > 8 else "OB", data)
    ds["PixelData"].is_undefined_length = False


# -- encoding -----------------------------------------------------------------------------

def _encode(ds: Dataset, frames: np.ndarray, source: str, target: str, quality: int) -> None:
    g = pixels.geometry(ds)
    if g.bits_allocated == 1:
        raise CannotTranscode(source, target, "1-bit images are only stored uncompressed")
    if target in (JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        fragments = [_jpeg(frame, g, source, target, quality) for frame in frames]
        ds.PixelData = encapsulate(fragments)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        if target in (JPEG_BASELINE, JPEG_EXTENDED) and g.samples == 3:
            ds.PhotometricInterpretation = "YBR_FULL_422"
    else:
        _pydicom_encode(ds, frames, source, target, g)
    if target in LOSSY:
        _mark_lossy(ds, target, frames.nbytes, len(ds.PixelData))


def _jpeg(frame: np.ndarray, g: pixels.Geometry, source: str, target: str, quality: int) -> bytes:
    values = frame
    if values.dtype.kind == "i":
        values = values.astype(np.int64) & ((1 << g.bits_stored) - 1)
    lossless = target in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1)
    precision = g.bits_stored if lossless else (8 if target == JPEG_BASELINE else (8 if g.bits_stored <= 8 else 12))
    if not lossless and g.bits_stored > precision:
        raise CannotTranscode(source, target, f"{g.bits_stored}-bit pixels do not fit lossy JPEG")
    values = np.ascontiguousarray(values, np.uint8 if precision <= 8 else np.uint16)
    try:
        if lossless:
            return bytes(imagecodecs.jpeg8_encode(values, lossless=True, predictor=1, bitspersample=precision))
        options: dict[str, Any] = {"level": quality, "bitspersample": precision}
        if g.samples == 3:
            options["subsampling"] = "422"
        return bytes(imagecodecs.jpeg8_encode(values, **options))
    except Exception as e:  # noqa: BLE001 - the encoder refuses some geometries
        raise CannotTranscode(source, target, str(e)) from None


def _pydicom_encode(ds: Dataset, frames: np.ndarray, source: str, target: str, g: pixels.Geometry) -> None:
    """RLE, JPEG-LS and JPEG 2000 through pydicom's encoders (which need the native dataset)."""
    options: dict[str, Any] = {"generate_instance_uid": False}
    if target == JPEG_LS_NEAR:
        options["jls_error"] = 2
    elif target == JPEG2000:
        options["j2k_cr"] = [10]
    array = frames if g.frames > 1 else frames[0]
    try:
        ds.compress(target, array, **options)
    except Exception as e:  # noqa: BLE001 - the encoders refuse some geometries
        if target not in (JPEG_LS_LOSSLESS, JPEG_LS_NEAR):
            raise CannotTranscode(source, target, str(e)) from None
        _charls_directly(ds, frames, source, target, g)


def _charls_directly(ds: Dataset, frames: np.ndarray, source: str, target: str, g: pixels.Geometry) -> None:
    """JPEG-LS through imagecodecs' CharLS: pydicom's plugin gives up on tiny images (its
    output buffer is too small for the headers)."""
    near = 2 if target == JPEG_LS_NEAR else 0
    try:
        fragments = [bytes(imagecodecs.jpegls_encode(frame.astype(np.uint16 if g.bits_allocated > 8 else np.uint8)
                                                     if frame.dtype.kind == "u" else frame, level=near))
                     for frame in frames]
    except Exception as e:  # noqa: BLE001 - the encoder refuses some geometries
        raise CannotTranscode(source, target, str(e)) from None
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = UID(target)


def _mark_lossy(ds: Dataset, target: str, raw_size: int, compressed_size: int) -> None:
    """What DCMTK records after a lossy compression: a new instance derived from the old one."""
    old_uid, old_class = ds.get("SOPInstanceUID"), ds.get("SOPClassUID")
    ds.LossyImageCompression = "01"
    ratio = raw_size / max(1, compressed_size)
    ds.LossyImageCompressionRatio = f"{ratio:.4g}"[:16]
    ds.LossyImageCompressionMethod = _LOSSY_METHODS[target]
    image_type = list(ds.get("ImageType", []) or [])
    if image_type:
        image_type[0] = "DERIVED"
        ds.ImageType = image_type
    if old_uid is not None:
        if old_class is not None:
            item = Dataset()
            item.ReferencedSOPClassUID = old_class
            item.ReferencedSOPInstanceUID = old_uid
            ds.SourceImageSequence = Sequence([*ds.get("SourceImageSequence", []), item])
        ds.SOPInstanceUID = uids.generate(Level.INSTANCE)
