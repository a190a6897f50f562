"""The services behind Orthanc's image routes (``/instances/{id}/frames/...``, ``/preview``,
``/rendered``, ``/numpy``...): read the stored file, decode one frame, turn it into what the
route answers. Everything here blocks (disk, codecs): the REST layer runs it in a thread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import imagecodecs
from pydicom.dataset import Dataset

from server.dicom import pixels, render
from server.dicom.main_tags import Level
from server.dicom.transcode import Settings
from server.errors import ErrorCode, OrthancError
from server.slices import ordered_slices

if TYPE_CHECKING:
    from server.instance_files import InstanceFiles



def jpeg2000_enabled(files: InstanceFiles) -> bool:
    """JPEG 2000 is decoded only when the configuration loads Orthanc's GDCM plugin, as in Orthanc."""
    return Settings.from_config(files.config).jpeg2000


@dataclass
class _Stored:
    """A stored instance parsed for its pixels, and the UUID of its file (the cache key)."""

    ds: Dataset
    uuid: str


def _dataset(files: InstanceFiles, public_id: str) -> _Stored:
    instance = files.index.lookup(public_id, Level.INSTANCE)
    if instance is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    attachment = files.store.dicom_attachment(instance)
    key = ("dataset", attachment.uuid)
    ds = files.decoded.get(key)
    if not isinstance(ds, Dataset):
        data = files.store.area.read(attachment.uuid, attachment.compression)
        ds = pixels.read_image_dataset(data)
        files.decoded.put(key, ds, len(data), files.cache_budget)
    return _Stored(ds, attachment.uuid)


def frames(files: InstanceFiles, public_id: str) -> list[int]:
    """``GET /instances/{id}/frames``."""
    return list(range(pixels.frames_count(_dataset(files, public_id).ds)))


@dataclass
class Encoded:
    body: bytes
    mime: str


@dataclass
class Output:
    """How to encode an image: the MIME type chosen from ``Accept`` and the JPEG quality."""

    mime: str
    quality: int = 90


def _encode(image: pixels.Image, output: Output) -> Encoded:
    if output.mime == "image/jpeg":
        return Encoded(render.encode_jpeg(image, output.quality), output.mime)
    if output.mime == "image/x-portable-arbitrarymap":
        return Encoded(render.encode_pam(image), output.mime)
    return Encoded(render.encode_png(image), "image/png")


def _decode(files: InstanceFiles, stored: _Stored, frame: int) -> pixels.Image:
    """The decoded frame, from the cache when it was decoded lately (read-only pixels)."""
    key = ("frame", stored.uuid, frame)
    image = files.decoded.get(key)
    if not isinstance(image, pixels.Image):
        image = pixels.decode_frame(stored.ds, frame, jpeg2000_enabled(files))
        image.pixels.flags.writeable = False
        files.decoded.put(key, image, image.pixels.nbytes, files.cache_budget)
    return image


def extracted(files: InstanceFiles, public_id: str, frame: int, mode: render.Mode,
              output: Callable[[], Output]) -> Encoded:
    """``/preview``, ``/image-uint8``, ``/image-uint16``, ``/image-int16``; ``output`` (the
    format from ``Accept``) is asked once the frame is decoded, in Orthanc's order of errors."""
    stored = _dataset(files, public_id)
    image = _decode(files, stored, frame)
    chosen = output()
    if chosen.mime == "image/jpeg" and mode not in (render.Mode.PREVIEW, render.Mode.UINT8):
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, "JPEG encodes 8-bit images only")
    invert = mode is render.Mode.PREVIEW and \
        str(stored.ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    return _encode(render.extract(image, mode, invert), chosen)


def rendered(files: InstanceFiles, public_id: str, frame: int, args: Callable[[], render.RenderArguments],
             output: Callable[[], Output]) -> Encoded:
    """``/rendered``: rescale, windowing (file or query), MONOCHROME1, resizing; the query is
    read once the frame is decoded, as Orthanc does."""
    stored = _dataset(files, public_id)
    decoded = _decode(files, stored, frame)
    image, invert = render.render(decoded, stored.ds, frame, args())
    chosen = output()
    return _encode(render.extract(image, render.Mode.UINT8 if not image.format.is_color else render.Mode.PREVIEW,
                                  invert), chosen)


def matlab(files: InstanceFiles, public_id: str, frame: int) -> bytes:
    """``/matlab``: the decoded frame as an Octave/Matlab expression."""
    return render.encode_matlab(_decode(files, _dataset(files, public_id), frame))


def raw(files: InstanceFiles, public_id: str, frame: int, compress: bool) -> Encoded:
    """``/frames/{n}/raw`` (and ``raw.gz``): the stored bytes of the frame, undecoded (gzipped at
    Orthanc's level 6 by libdeflate: Python's ``gzip`` defaults to level 9, ~13x slower)."""
    body, mime = pixels.raw_frame(_dataset(files, public_id).ds, frame)
    if compress:
        return Encoded(bytes(imagecodecs.gzip_encode(body, level=6)), "application/gzip")
    return Encoded(body, mime)


def numpy_instance(files: InstanceFiles, public_id: str, frame: int | None, rescale: bool, compress: bool) -> bytes:
    """``/instances/{id}/numpy`` (every frame) or ``/frames/{n}/numpy`` (one, without depth)."""
    stored = _dataset(files, public_id)
    ds = stored.ds
    if frame is not None:
        return render.numpy_frames([_decode(files, stored, frame)], [render.rescale(ds, frame)], None, rescale,
                                   compress)
    count = pixels.frames_count(ds)
    if count == 0:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Empty DICOM instance")
    indexes = range(count)
    return render.numpy_frames([_decode(files, stored, i) for i in indexes], [render.rescale(ds, i) for i in indexes],
                               count, rescale, compress)


def numpy_series(files: InstanceFiles, public_id: str, rescale: bool, compress: bool) -> bytes:
    """``/series/{id}/numpy``: the frames of the instances in Orthanc's slice order (as
    ``/series/{id}/ordered-slices``: along the normal, else by instance number)."""
    series = files.index.lookup(public_id, Level.SERIES)
    if series is None:
        raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
    images, rescales = [], []
    for instance_id, _, frames in ordered_slices(files.index, series)["SlicesShort"]:
        instance = files.index.lookup(instance_id, Level.INSTANCE)
        if instance is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)
        ds = pixels.read_image_dataset(files.store.read_dicom(instance))
        for index in range(min(frames, pixels.frames_count(ds))):
            images.append(pixels.decode_frame(ds, index, jpeg2000_enabled(files)))
            rescales.append(render.rescale(ds, index))
    if not images:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Empty series")
    return render.numpy_frames(images, rescales, len(images), rescale, compress)


