"""``POST /tools/create-dicom``: new instances from tags, a PNG/JPEG image (or, with
``Encapsulate``, a JPEG kept compressed), a PDF file or a 3D model (STL, OBJ, MTL).

The rules are Orthanc 1.10.1's (``CreateDicomV2``, ``ParsedDicomFile::EmbedImage``
and ``EmbedPdf``): generated identifiers, UTC dates, the modules of a ``Parent``
copied from one of its instances, user tags that may not override inherited
ones without ``Force``, images stored uncompressed, an array of contents
making a series.  Decoded 16-bit RGBA PNGs are accepted as newer Orthanc
accepts them (1.10.1 answers "not implemented").  Every instance goes through
the one ingest path, :meth:`server.store.Store.ingest`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from PIL import Image
from pydicom.encaps import encapsulate

from server.dicom import json_format, uids
from server.dicom.charset import encoding_for_term, specific_character_set
from server.dicom.encode import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    Element,
    Items,
    ValueContext,
    copy_items,
    decode_data_uri,
    element_from_json,
    element_from_text,
    format_tag,
    parse_tag,
    write_file,
)
from server.dicom.main_tags import Level
from server.dicom.parse import read_dataset
from server.dicom.transcode import JPEG_BASELINE
from server.errors import ErrorCode, OrthancError
from server.storage.index import Index, Resource
from server.store import Origin, Store, StoreResult

SPECIFIC_CHARACTER_SET = 0x00080005
INSTANCE_CREATION_DATE, INSTANCE_CREATION_TIME = 0x00080012, 0x00080013
SOP_CLASS_UID, SOP_INSTANCE_UID = 0x00080016, 0x00080018
STUDY_DATE, SERIES_DATE, ACQUISITION_DATE, CONTENT_DATE = 0x00080020, 0x00080021, 0x00080022, 0x00080023
STUDY_TIME, SERIES_TIME, ACQUISITION_TIME, CONTENT_TIME = 0x00080030, 0x00080031, 0x00080032, 0x00080033
MODALITY, CONVERSION_TYPE = 0x00080060, 0x00080064
PATIENT_ID = 0x00100020
STUDY_INSTANCE_UID, SERIES_INSTANCE_UID = 0x0020000D, 0x0020000E
INSTANCE_NUMBER, NUMBER_OF_TEMPORAL_POSITIONS, IMAGES_IN_ACQUISITION = 0x00200013, 0x00200105, 0x00201002
SAMPLES_PER_PIXEL, PHOTOMETRIC_INTERPRETATION, PLANAR_CONFIGURATION = 0x00280002, 0x00280004, 0x00280006
ROWS, COLUMNS = 0x00280010, 0x00280011
BITS_ALLOCATED, BITS_STORED, HIGH_BIT, PIXEL_REPRESENTATION = 0x00280100, 0x00280101, 0x00280102, 0x00280103
ENCAPSULATED_DOCUMENT, MIME_TYPE_OF_ENCAPSULATED_DOCUMENT = 0x00420011, 0x00420012
IMAGE_INDEX = 0x00541330
PIXEL_DATA = 0x7FE00010

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
#: The SOP class of each encapsulated 3D model's MIME type (Orthanc 1.12.1).
ENCAPSULATED_3D_MODELS = {"model/stl": "1.2.840.10008.5.1.4.1.1.104.3",
                          "model/obj": "1.2.840.10008.5.1.4.1.1.104.4",
                          "model/mtl": "1.2.840.10008.5.1.4.1.1.104.5"}

#: Tags a request may set even when they already have a value (``InjectTags``).
_OVERRIDABLE = frozenset((PATIENT_ID, ACQUISITION_DATE, ACQUISITION_TIME, CONTENT_DATE, CONTENT_TIME,
                          INSTANCE_CREATION_DATE, INSTANCE_CREATION_TIME, SERIES_DATE, SERIES_TIME,
                          STUDY_DATE, STUDY_TIME))

#: The modules Orthanc copies from a parent (``DicomTag::AddTagsForModule``).
_PATIENT_MODULE = (0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00081120, 0x00100032, 0x00101000,
                   0x00101002, 0x00101001, 0x00102160, 0x00104000, 0x00102201, 0x00102202, 0x00102292,
                   0x00102293, 0x00102294, 0x00102297, 0x00102298, 0x00102299, 0x00120062, 0x00120063,
                   0x00120064, 0x00100021, 0x00100024)
_STUDY_MODULE = (0x0020000D, 0x00080020, 0x00080030, 0x00080090, 0x00080096, 0x00200010, 0x00080050,
                 0x00080051, 0x00081030, 0x00081048, 0x00081049, 0x00081060, 0x00081062, 0x00321034,
                 0x00081110, 0x00081032, 0x00401012)
_SERIES_MODULE = (0x00080060, 0x0020000E, 0x00200011, 0x00200060, 0x00080021, 0x00080031, 0x00081050,
                  0x00081052, 0x00181030, 0x0008103E, 0x0008103F, 0x00081070, 0x00081072, 0x00081111,
                  0x00081250, 0x00180015, 0x00185100, 0x00280108, 0x00290109, 0x00400275, 0x00102210,
                  0x00400253, 0x00400244, 0x00400245, 0x00400254, 0x00400260, 0x00400280)
_MODULES = {Level.PATIENT: _PATIENT_MODULE, Level.STUDY: _STUDY_MODULE + _PATIENT_MODULE,
            Level.SERIES: _SERIES_MODULE + _STUDY_MODULE + _PATIENT_MODULE}

#: MIME types Orthanc knows but cannot embed (answered "not implemented"); others are refused.
_OTHER_KNOWN_MIME_TYPES = frozenset((
    "application/dicom", "image/jp2", "application/json", "application/xml", "text/xml", "text/plain",
    "text/html", "application/javascript", "text/css", "image/gif", "application/wasm",
    "application/x-font-woff", "font/woff2", "application/zip", "application/dicom+json",
    "application/dicom+xml", "image/x-icon", "application/gzip", "application/x-nacl",
    "application/x-pnacl", "image/svg+xml", "image/x-portable-arbitrarymap"))

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class NewInstance:
    """A dataset being built, with the character set its strings are written in."""

    def __init__(self, items: Items, encoding: str) -> None:
        self.items = items
        self.encoding = encoding
        #: Explicit little endian, or the syntax of the encapsulated pixel data (``Encapsulate``).
        self.transfer_syntax = EXPLICIT_VR_LITTLE_ENDIAN

    @classmethod
    def generate(cls, encoding: str) -> NewInstance:
        """Orthanc's ``ParsedDicomFile(true)``: new patient ID and study, series, instance UIDs."""
        instance = cls({}, encoding)
        instance.set_plain(PATIENT_ID, uids.generate(Level.PATIENT))
        instance.set_plain(STUDY_INSTANCE_UID, uids.generate(Level.STUDY))
        instance.set_plain(SERIES_INSTANCE_UID, uids.generate(Level.SERIES))
        instance.set_plain(SOP_INSTANCE_UID, uids.generate(Level.INSTANCE))
        return instance

    def clone(self) -> NewInstance:
        """A copy with a new SOPInstanceUID, for the next instance of a series."""
        copy = NewInstance(copy_items(self.items), self.encoding)
        copy.set_plain(SOP_INSTANCE_UID, uids.generate(Level.INSTANCE))
        return copy

    def context(self, private_creator: str = "", decode_binary: bool = False) -> ValueContext:
        return ValueContext(self.encoding, private_creator, decode_binary)

    def set_plain(self, tag: int, text: str) -> None:
        """``ReplacePlainString``: a public tag set from UTF-8 text, no data URI decoding."""
        self.items[tag] = element_from_text(tag, text, self.context(), decode=False)

    def set_if_absent(self, tag: int, text: str) -> None:
        if tag not in self.items:
            self.set_plain(tag, text)

    def set_encoding(self, encoding: str) -> None:
        self.encoding = encoding
        term = specific_character_set(encoding)
        if term is not None:
            self.set_plain(SPECIFIC_CHARACTER_SET, term)

    def replace(self, tag: int, value: Any, context: ValueContext) -> None:
        """``ParsedDicomFile::Replace``: an EncapsulatedDocument data URI is embedded as content."""
        if (context.decode_binary and tag == ENCAPSULATED_DOCUMENT and isinstance(value, str)
                and embed_content(self, value)):
            return
        self.items[tag] = element_from_json(tag, value, context)


@dataclass(frozen=True)
class Raster:
    """Decoded pixels, rows top to bottom, samples interleaved, 16-bit samples little-endian."""

    width: int
    height: int
    samples: int                    # 1 (grayscale) or 3 (RGB)
    bits: int                       # 8 or 16
    data: bytes


def embed_content(instance: NewInstance, uri: str) -> bool:
    """``EmbedContentInternal``: False when ``uri`` is not a data URI."""
    decoded = decode_data_uri(uri)
    if decoded is None:
        return False
    mime, content = decoded
    if mime == "image/png":
        embed_image(instance, decode_png(content))
    elif mime == "image/jpeg":
        embed_image(instance, decode_jpeg(content))
    elif mime == "application/pdf":
        embed_pdf(instance, content)
    elif mime in ENCAPSULATED_3D_MODELS:
        embed_3d_model(instance, mime, content)
    elif mime == "application/octet-stream":
        instance.items[PIXEL_DATA] = Element("OW", content)
    elif mime in _OTHER_KNOWN_MIME_TYPES:
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED,
                           f"Unsupported MIME type for the content of a new DICOM file: {mime}")
    else:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
    return True


def embed_content_or_fail(instance: NewInstance, uri: str) -> None:
    if not embed_content(instance, uri):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)


def encapsulate_content(instance: NewInstance, uri: str) -> None:
    """``Encapsulate`` (Orthanc 1.12.7's ``EncapsulatePixelData``): a JPEG kept as it is, one
    fragment after a basic offset table, in JPEG Baseline whatever its coding; the image
    pixel module is read from the decoded JPEG, and a color one is YBR_FULL_422."""
    decoded = decode_data_uri(uri)
    if decoded is None:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    mime, content = decoded
    if mime != "image/jpeg":
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED, f"Cannot encapsulate pixel data from MIME type: {mime}")
    raster = decode_jpeg(content)
    _set_image_module(instance, raster)
    if raster.samples == 3:
        instance.set_plain(PHOTOMETRIC_INTERPRETATION, "YBR_FULL_422")
    instance.items[PIXEL_DATA] = Element("OB", encapsulate([content], has_bot=True), encapsulated=True)
    instance.transfer_syntax = JPEG_BASELINE


def embed_image(instance: NewInstance, raster: Raster) -> None:
    """Uncompressed pixel data and the image pixel module, as ``ParsedDicomFile::EmbedImage``."""
    _set_image_module(instance, raster)
    instance.items[PIXEL_DATA] = Element("OW", raster.data)


def _set_image_module(instance: NewInstance, raster: Raster) -> None:
    """``ConfigureTagsForUncompressedImage``: size, samples, bits; no pixel data left."""
    instance.items.pop(PIXEL_DATA, None)
    instance.set_plain(COLUMNS, str(raster.width))
    instance.set_plain(ROWS, str(raster.height))
    instance.set_plain(SAMPLES_PER_PIXEL, "1")
    instance.set_plain(PIXEL_REPRESENTATION, "0")
    if raster.samples == 1:
        instance.set_if_absent(PHOTOMETRIC_INTERPRETATION, "MONOCHROME2")
    else:
        instance.set_plain(PHOTOMETRIC_INTERPRETATION, "RGB")
        instance.set_plain(SAMPLES_PER_PIXEL, "3")
    instance.set_plain(BITS_ALLOCATED, str(raster.bits))
    instance.set_plain(BITS_STORED, str(raster.bits))
    instance.set_plain(HIGH_BIT, str(raster.bits - 1))
    if raster.samples == 3:
        instance.set_plain(PLANAR_CONFIGURATION, "0")


def embed_pdf(instance: NewInstance, pdf: bytes) -> None:
    """An Encapsulated PDF instance, as ``ParsedDicomFile::EmbedPdf`` (Modality kept if given)."""
    if len(pdf) < 5 or not pdf.startswith(b"%PDF-"):
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT, "Not a PDF file")
    instance.set_plain(SOP_CLASS_UID, ENCAPSULATED_PDF_STORAGE)
    instance.set_if_absent(MODALITY, "OT")
    instance.set_if_absent(CONVERSION_TYPE, "WSD")
    instance.set_if_absent(MIME_TYPE_OF_ENCAPSULATED_DOCUMENT, "application/pdf")
    instance.items[ENCAPSULATED_DOCUMENT] = Element("OB", pdf)


def embed_3d_model(instance: NewInstance, mime: str, model: bytes) -> None:
    """An Encapsulated STL, OBJ or MTL instance (Orthanc 1.12.1): the file as it is, its MIME
    type, and the SOP class and Modality unless the tags gave them."""
    instance.set_plain(MIME_TYPE_OF_ENCAPSULATED_DOCUMENT, mime)
    instance.items[ENCAPSULATED_DOCUMENT] = Element("OB", model)
    instance.set_if_absent(SOP_CLASS_UID, ENCAPSULATED_3D_MODELS[mime])
    instance.set_if_absent(MODALITY, "M3D")


def decode_png(content: bytes) -> Raster:
    """Orthanc's ``PngReader``: 8/16-bit grayscale, 8-bit RGB, 8/16-bit RGBA (alpha dropped)."""
    if len(content) < 26 or not content.startswith(_PNG_SIGNATURE) or content[12:16] != b"IHDR":
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT)
    depth, color_type = content[24], content[25]
    if (depth, color_type) == (16, 6):
        return _rgba64(content)
    if (depth, color_type) not in ((8, 0), (16, 0), (8, 2), (8, 6)):
        raise OrthancError(ErrorCode.NOT_IMPLEMENTED)
    image = _open(content)
    if color_type == 0:
        return Raster(image.width, image.height, 1, depth, image.tobytes())
    return Raster(image.width, image.height, 3, 8, image.convert("RGB").tobytes())


def decode_jpeg(content: bytes) -> Raster:
    """Orthanc's ``JpegReader``: grayscale or RGB, 8 bits."""
    image = _open(content)
    if image.mode == "L":
        return Raster(image.width, image.height, 1, 8, image.tobytes())
    if image.mode == "RGB":
        return Raster(image.width, image.height, 3, 8, image.tobytes())
    raise OrthancError(ErrorCode.NOT_IMPLEMENTED)


def _open(content: bytes, rawmode: str | None = None) -> Image.Image:
    try:
        image = Image.open(BytesIO(content))
        if rawmode is not None:
            image.tile = [tile._replace(args=rawmode) for tile in image.tile]
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise OrthancError(ErrorCode.BAD_FILE_FORMAT) from e
    return image


def _rgba64(content: bytes) -> Raster:
    """16-bit RGBA to 16-bit RGB.  Pillow keeps 8 bits per sample, so the image is
    decoded twice: once for the high bytes and once, reading the big-endian
    samples as little-endian, for the low bytes."""
    high = _open(content).convert("RGB").tobytes()
    low = _open(content, "RGBA;16L").convert("RGB").tobytes()
    samples = bytearray(2 * len(high))
    samples[0::2] = low
    samples[1::2] = high
    width, height = Image.open(BytesIO(content)).size
    return Raster(width, height, 3, 16, bytes(samples))


def extract_pdf(data: bytes) -> bytes | None:
    """``ParsedDicomFile::ExtractPdf``: the PDF of an Encapsulated PDF instance, without its pad byte."""
    ds, _ = read_dataset(data)
    sop_class = ds.get((0x0008, 0x0016))
    mime = ds.get((0x0042, 0x0012))
    document = ds.get((0x0042, 0x0011))
    if sop_class is None or mime is None or document is None:
        return None
    if str(sop_class.value).strip() != ENCAPSULATED_PDF_STORAGE or str(mime.value).strip() != "application/pdf":
        return None
    pdf = bytes(document.value or b"")
    if pdf and pdf[-1] not in (10, 13):
        pdf = pdf[:-1]
    return pdf


@dataclass(frozen=True)
class CreateDicomRequest:
    """A ``/tools/create-dicom`` body (parsed by :mod:`server.rest.requests`).

    ``legacy`` holds the (tag, text) pairs of Orthanc <= 0.9.3's format, where the body is
    the tags; otherwise ``tags`` maps names to DICOM-as-JSON values and ``content`` is a
    data URI, or a list of them (or of ``{Content, Tags}``) making a series."""

    legacy: tuple[tuple[int, str], ...] | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    #: The encoding (Orthanc's name) of the requested SpecificCharacterSet (None: ``DefaultEncoding``).
    encoding: str | None = None
    parent: str | None = None
    interpret_binary_tags: bool = True
    private_creator: str | None = None
    force: bool = False
    content: str | list[Any] | None = None
    #: ``Encapsulate`` (Orthanc 1.12.7): the JPEG of ``content`` stored as it is.
    encapsulate: bool = False


class DicomCreator:
    """The service behind ``/tools/create-dicom``; one per request."""

    def __init__(self, index: Index, store: Store, default_encoding: str,
                 default_private_creator: str) -> None:
        self.index = index
        self.store = store
        self.default_encoding = default_encoding
        self.default_private_creator = default_private_creator

    def create(self, request: CreateDicomRequest, origin: Origin) -> dict[str, str]:
        """The answer of ``POST /tools/create-dicom``."""
        if request.legacy is not None:
            return self._store(self._legacy(request.legacy), origin).as_json()
        tags = request.tags
        instance = NewInstance.generate(self.default_encoding)
        instance.set_encoding(request.encoding or self.default_encoding)
        parent = self._inherit(instance, request.parent) if request.parent is not None else None
        decode = request.interpret_binary_tags
        creator = self.default_private_creator if request.private_creator is None else request.private_creator
        _set_dates(instance, parent)
        _inject_tags(instance, tags, instance.context(creator, decode), request.force)
        content = request.content
        if isinstance(content, list) and content:
            if request.encapsulate:
                raise OrthancError(ErrorCode.NOT_IMPLEMENTED)
            return self._create_series(instance, content, creator, decode, request.force, origin)
        if isinstance(content, str) and request.encapsulate:
            encapsulate_content(instance, content)
        elif isinstance(content, str):
            embed_content_or_fail(instance, content)
        return self._store(instance, origin).as_json()

    def _legacy(self, tags: tuple[tuple[int, str], ...]) -> NewInstance:
        """The format of Orthanc <= 0.9.3: the body is the tags, values are plain strings."""
        instance = NewInstance.generate(self.default_encoding)
        for tag, value in tags:
            if tag == PIXEL_DATA:
                embed_content_or_fail(instance, value)
            else:
                instance.set_plain(tag, value)
        return instance

    def parent(self, parent_id: str) -> Resource:
        """The ``Parent`` of a request: a patient, study or series (Orthanc checks it as it reads
        the request, see :func:`server.rest.requests.create_dicom_request`)."""
        parent = self.index.lookup(parent_id)
        if parent is None:
            raise OrthancError(ErrorCode.CREATE_DICOM_BAD_PARENT)
        if parent.level is Level.INSTANCE:
            raise OrthancError(ErrorCode.CREATE_DICOM_PARENT_IS_INSTANCE)
        return parent

    def _inherit(self, instance: NewInstance, parent_id: str) -> Level:
        """Copy the modules of the parent and its ancestors from one of its instances."""
        parent = self.parent(parent_id)
        siblings = self.index.descendants(parent.internal_id, Level.INSTANCE)
        if not siblings:
            raise OrthancError(ErrorCode.INTERNAL)
        ds, _ = read_dataset(self.store.read_dicom(siblings[0]), stop_before_pixels=True)
        sibling = json_format.tags_full(ds, self.default_encoding)
        charset = sibling.get("0008,0005", {}).get("Value")
        if isinstance(charset, str):
            instance.set_encoding(encoding_for_term(charset) or self.default_encoding)
        for tag in sorted(_MODULES[parent.level]):
            node = sibling.get(format_tag(tag))
            if node is None:
                continue
            if node["Type"] == "Null":
                instance.set_plain(tag, "")
            elif node["Type"] == "String":
                instance.set_plain(tag, node["Value"])
        return parent.level

    def _create_series(self, base: NewInstance, content: list[Any], creator: str, decode: bool,
                       force: bool, origin: Origin) -> dict[str, str]:
        """One instance per entry of ``Content``; on failure, the series created so far is deleted."""
        base.set_plain(IMAGES_IN_ACQUISITION, str(len(content)))
        base.set_plain(NUMBER_OF_TEMPORAL_POSITIONS, "1")
        stored: StoreResult | None = None
        try:
            for index, entry in enumerate(content, start=1):
                instance = base.clone()
                payload = entry
                if isinstance(entry, dict):
                    if "Content" not in entry:
                        raise OrthancError(ErrorCode.CREATE_DICOM_NO_PAYLOAD)
                    payload = entry["Content"]
                    if "Tags" in entry:
                        _inject_tags(instance, entry["Tags"], instance.context(creator, decode), force)
                if not isinstance(payload, str):
                    raise OrthancError(ErrorCode.CREATE_DICOM_USE_DATA_URI_SCHEME)
                embed_content_or_fail(instance, payload)
                instance.set_plain(INSTANCE_NUMBER, str(index))
                instance.set_plain(IMAGE_INDEX, str(index))
                stored = self._store(instance, origin)
        except OrthancError:
            if stored is not None:
                self._delete_series(stored.ids[Level.SERIES])
            raise
        assert stored is not None
        series_id = stored.ids[Level.SERIES]
        return {"ID": series_id, "Path": f"/series/{series_id}", "Status": "Success"}

    def _delete_series(self, series_id: str) -> None:
        series = self.index.lookup(series_id, Level.SERIES)
        if series is not None:
            self.store.delete(series)

    def _store(self, instance: NewInstance, origin: Origin) -> StoreResult:
        return self.store.ingest(write_file(instance.items, instance.transfer_syntax), origin)


def _set_dates(instance: NewInstance, parent: Level | None) -> None:
    """UTC now for the instance; for the series and study too unless they are inherited."""
    now = datetime.now(UTC)
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S") + ".000000"
    pairs = [(ACQUISITION_DATE, ACQUISITION_TIME), (CONTENT_DATE, CONTENT_TIME),
             (INSTANCE_CREATION_DATE, INSTANCE_CREATION_TIME)]
    if parent in (None, Level.PATIENT, Level.STUDY):
        pairs.append((SERIES_DATE, SERIES_TIME))
    if parent in (None, Level.PATIENT):
        pairs.append((STUDY_DATE, STUDY_TIME))
    for date_tag, time_tag in pairs:
        instance.set_plain(date_tag, date)
        instance.set_plain(time_tag, time)


def _inject_tags(instance: NewInstance, tags: Any, context: ValueContext, force: bool) -> None:
    """``InjectTags``: the user's tags, in name order, without silently overriding a value."""
    if not isinstance(tags, dict):
        raise OrthancError(ErrorCode.BAD_REQUEST, "Tags field is not an array")
    for name in _sorted_names(tags):
        tag = parse_tag(name)
        if tag == SPECIFIC_CHARACTER_SET:
            continue
        if not force and tag not in _OVERRIDABLE and tag in instance.items:
            raise OrthancError(ErrorCode.CREATE_DICOM_OVERRIDE_TAG, name)
        if tag == PIXEL_DATA:
            raise OrthancError(ErrorCode.CREATE_DICOM_USE_CONTENT)
        instance.replace(tag, tags[name], context)


def _sorted_names(tags: dict[str, Any]) -> Iterable[str]:
    """JsonCpp's member order: byte order of the UTF-8 names."""
    return sorted(tags, key=lambda name: name.encode("utf-8"))
