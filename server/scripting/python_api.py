"""The ``orthanc`` module that Python scripts import, with orthanc-python's names and behaviour.

Functions and classes keep the plugin's spelling, argument order and return
types (``RestApiGet`` answers ``bytes``, ``GetConfiguration`` a JSON ``str``,
failures raise ``orthanc.OrthancException(code, description)``) so that scripts
written for the orthanc-python plugin run unchanged.  Everything that needs the
server goes through :class:`Host`, implemented by :mod:`server.scripting.python`.
"""

from __future__ import annotations

import json
import logging
import mmap
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID

from server.dicom import json_format
from server.dicom.parse import read_stored_dataset
from server.dicom.transcode import transcode_file
from server.errors import DESCRIPTIONS, OrthancError
from server.scripting import python_dicom, python_images
from server.scripting.python_database import DatabaseFunctions, DatabaseHost, KeysValuesIterator
from server.scripting.python_dicom import FindAnswers, FindMatcher, FindQuery, WorklistAnswers, WorklistQuery
from server.scripting.python_enums import ENUMERATIONS, ORIGINS, enumeration_class
from server.scripting.python_images import Image
from server.scripting.python_jobs import Job, JobFunctions, JobsHost
from server.scripting.python_toolbox import (
    FIRST_PLUGIN_ERROR,
    PLUGIN_ERROR_DESCRIPTION,
    Peers,
    ToolboxFunctions,
    ToolboxHost,
)
from server.store import Origin

if TYPE_CHECKING:
    from server.net.worklists import HierarchicalMatcher

log = logging.getLogger("isengard.plugins.python")

#: The HTTP statuses Orthanc knows; ``SendHttpStatusCode`` refuses the others.
KNOWN_STATUSES = frozenset([100, 101, 102, *range(200, 208), 226, *range(300, 306), 307, *range(400, 418),
                            422, 423, 424, 426, *range(500, 508), 509, 510])
#: Statuses that have their own ``RestOutput`` method.
DEDICATED_STATUSES = {301: "Redirect", 405: "SendMethodNotAllowed"}


class OrthancException(Exception):
    """What the ``orthanc`` functions raise: ``args == (error_code, description)``."""


OrthancException.__module__ = "orthanc"


def orthanc_exception(code: int, description: str | None = None) -> OrthancException:
    return OrthancException(int(code), description or DESCRIPTIONS.get(int(code), "Internal error"))


def from_orthanc_error(error: OrthancError) -> OrthancException:
    return orthanc_exception(int(error.code))


class Host(ToolboxHost, DatabaseHost, JobsHost, Protocol):
    """What the module needs from the server (:class:`server.scripting.python.PythonScripting`)."""

    @property
    def default_encoding(self) -> str: ...

    def rest_api(self, method: str, uri: str, body: bytes, after_plugins: bool) -> bytes: ...

    def configuration_text(self) -> str: ...

    def register(self, slot: str, description: str, *callbacks: Callable[..., Any]) -> None: ...

    def add_rest_route(self, regex: str, callback: Callable[..., Any]) -> None: ...

    def instance_file(self, instance_id: str) -> bytes: ...

    def matcher(self, query: Dataset) -> HierarchicalMatcher: ...

    def lookup_resource(self, level: str, identifier: str) -> str: ...

    def set_metric(self, name: str, value: float, timer: bool) -> None: ...

    def new_token(self) -> str: ...


def script_bytes(data: bytes | mmap.mmap) -> bytes:
    """A DICOM file as a script gets it: ``bytes``, as from orthanc-python.  A large upload is
    stored from a memory map (see :func:`server.dicom.parse.read_upload`), copied here only
    when a script asks for the file (a map compares unequal to the same bytes, has no
    ``decode``, is no ``bytes`` for ``isinstance``...)."""
    return data if isinstance(data, bytes) else bytes(data)


class DicomInstance:
    """A DICOM instance handed to a callback (received, stored) or created by the script."""

    def __init__(self, data: bytes | mmap.mmap, origin: Origin | None, default_encoding: str,
                 metadata: Callable[[], dict[str, str]] | None = None) -> None:
        self._data = data
        self._origin = origin
        self._encoding = default_encoding
        self._metadata_source = metadata
        self._metadata: dict[str, str] | None = None
        self._dataset: Dataset | None = None

    def _parsed(self) -> Dataset:
        if self._dataset is None:
            try:
                self._dataset = read_stored_dataset(self._data)
            except OrthancError as e:
                raise from_orthanc_error(e) from None
        return self._dataset

    def _all_metadata(self) -> dict[str, str]:
        if self._metadata is None:
            self._metadata = self._metadata_source() if self._metadata_source else {}
        return self._metadata

    def GetInstanceData(self) -> bytes:
        """The DICOM file."""
        return script_bytes(self._data)

    def SerializeDicomInstance(self) -> bytes:
        """The DICOM file."""
        return script_bytes(self._data)

    def GetInstanceSize(self) -> int:
        return len(self._data)

    def GetInstanceRemoteAet(self) -> str:
        """The AET of the modality that sent the instance ("" when not received over DICOM)."""
        return (self._origin.remote_aet if self._origin else None) or ""

    def GetInstanceOrigin(self) -> int:
        """An ``orthanc.InstanceOrigin`` value."""
        return ORIGINS.get(self._origin.kind, 1) if self._origin else ORIGINS["Plugins"]

    def GetInstanceTransferSyntaxUid(self) -> str:
        meta = getattr(self._parsed(), "file_meta", None)
        return str(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else ""

    def GetInstanceJson(self) -> str:
        """The tags as ``/instances/{id}/tags`` shows them, as JSON text."""
        return _json_text(json_format.tags_full(self._parsed(), self._encoding))

    def GetInstanceSimplifiedJson(self) -> str:
        """The tags as ``/instances/{id}/simplified-tags`` shows them, as JSON text."""
        return _json_text(json_format.tags_simplified(self._parsed(), self._encoding))

    def HasInstanceMetadata(self, metadata: str) -> int:
        return 1 if metadata in self._all_metadata() else 0

    def GetInstanceMetadata(self, metadata: str) -> str | None:
        return self._all_metadata().get(metadata)

    def HasInstancePixelData(self) -> int:
        return 1 if "PixelData" in self._parsed() else 0

    def GetInstanceAdvancedJson(self, format: int, flags: int, max_string_length: int) -> str:
        """The tags in the FULL, SHORT or HUMAN format, as JSON text."""
        return python_dicom.dicom_json(script_bytes(self._data), format, flags, self._encoding, max_string_length)

    def GetInstanceRawFrame(self, frame_index: int) -> bytes:
        """The bytes of one frame as stored (uncompressed slice or encapsulated fragment)."""
        ds = self._parsed()
        if "PixelData" not in ds or not 0 <= int(frame_index) < self.GetInstanceFramesCount():
            raise orthanc_exception(3)
        syntax = self.GetInstanceTransferSyntaxUid()
        if syntax and UID(syntax).is_encapsulated:
            frames = list(generate_frames(ds.PixelData, number_of_frames=self.GetInstanceFramesCount()))
            return frames[int(frame_index)]
        size = _frame_size(ds) or len(ds.PixelData) // self.GetInstanceFramesCount()
        return bytes(ds.PixelData[int(frame_index) * size:(int(frame_index) + 1) * size])

    def GetInstanceDecodedFrame(self, frame_index: int) -> Image:
        return python_images.decode_frame(self._data, frame_index)

    def GetInstanceFramesCount(self) -> int:
        ds = self._parsed()
        if "PixelData" not in ds:
            return 0
        try:
            return max(1, int(ds.get("NumberOfFrames", 1) or 1))
        except (TypeError, ValueError):
            return 1


DicomInstance.__module__ = "orthanc"


def _frame_size(ds: Dataset) -> int:
    """Bytes of one uncompressed frame, from the image tags as Orthanc counts them (padding excluded)."""
    try:
        pixels = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        return 0
    return (pixels + 7) // 8 if bits == 1 else pixels * (bits // 8)


class DicomConnection:
    """The DICOM association of a storage commitment request (``RegisterStorageCommitmentScpCallback2``)."""

    def __init__(self, remote_aet: str, remote_ip: str, called_aet: str) -> None:
        self._remote_aet = remote_aet
        self._remote_ip = remote_ip
        self._called_aet = called_aet

    def GetConnectionRemoteAet(self) -> str:
        return self._remote_aet

    def GetConnectionRemoteIp(self) -> str:
        return self._remote_ip

    def GetConnectionCalledAet(self) -> str:
        return self._called_aet


DicomConnection.__module__ = "orthanc"


class RestOutput:
    """The answer of a REST callback, collected here and sent once the callback returns."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.content_type: str | None = None
        self.chunks: list[bytes] = []
        self.error_details: str | None = None
        self._boundary: str | None = None
        self._item_type = ""

    @property
    def answered(self) -> bool:
        return self.status is not None

    def body(self) -> bytes:
        closing = [f"--{self._boundary}--\r\n".encode()] if self._boundary else []
        return b"".join(self.chunks + closing)

    def _answer(self, status: int, body: bytes = b"", content_type: str | None = None) -> bool:
        if self.answered:
            log.error("The REST callback answers twice (Bad sequence of calls): only the first answer is sent")
            return False
        self.status = status
        self.content_type = content_type
        self.chunks = [body] if body else []
        return True

    def AnswerBuffer(self, answer: bytes | str, mime_type: str) -> None:
        """Answer 200 with ``answer`` (``str`` is sent as UTF-8) and this Content-Type."""
        self._answer(200, _bytes(answer), mime_type)

    def SendHttpStatusCode(self, status: int) -> None:
        """Answer ``status`` with an empty body."""
        self._answer(_checked_status(status))

    def SendHttpStatus(self, status: int, body: bytes | str, size: int | None = None) -> None:
        """Answer ``status`` with ``body`` (sent only when ``HttpDescribeErrors`` is true).

        ``size`` is accepted for orthanc-python 4.0's three-argument form.
        """
        data = _bytes(body)
        self._answer(_checked_status(status), data if size is None else data[:size])

    def SendUnauthorized(self, realm: str) -> None:
        if self._answer(401):
            self.headers.append(("WWW-Authenticate", f'Basic realm="{realm}"'))

    def SendMethodNotAllowed(self, allowed_methods: str) -> None:
        if self._answer(405):
            self.headers.append(("Allow", allowed_methods))

    def Redirect(self, redirection: str) -> None:
        """Answer 301 with ``Location: redirection``."""
        if self._answer(301):
            self.headers.append(("Location", redirection))

    def SetCookie(self, cookie: str, value: str) -> None:
        self.headers.append(("Set-Cookie", f"{cookie}={value}"))

    def SetHttpHeader(self, key: str, value: str) -> None:
        self.headers.append((key, value))

    def SetHttpErrorDetails(self, details: str, log: int) -> None:
        """The ``Details`` of the error document sent if the callback raises."""
        self.error_details = details

    def StartMultipartAnswer(self, sub_type: str, content_type: str) -> None:
        """Start a ``multipart/<sub_type>`` answer whose items are of ``content_type``."""
        boundary = f"{uuid.uuid4()}-{uuid.uuid4()}"[:70]
        if self._answer(200, content_type=f'multipart/{sub_type}; type="{content_type}"; boundary={boundary}'):
            self._boundary = boundary
            self._item_type = content_type

    def CompressAndAnswerPngImage(self, format: int, width: int, height: int, pitch: int, buffer: bytes) -> None:
        self._answer(200, python_images.compress("PNG", format, width, height, pitch, buffer), "image/png")

    def CompressAndAnswerJpegImage(self, format: int, width: int, height: int, pitch: int, buffer: bytes,
                                   quality: int) -> None:
        self._answer(200, python_images.compress("JPEG", format, width, height, pitch, buffer, quality),
                     "image/jpeg")

    def SendMultipartItem(self, answer: bytes | str) -> None:
        if self._boundary is None:
            log.error("SendMultipartItem() without StartMultipartAnswer() (Bad sequence of calls)")
            return
        data = _bytes(answer)
        self.chunks.append(f"--{self._boundary}\r\nContent-Type: {self._item_type}\r\n"
                           f"Content-Length: {len(data)}\r\nMIME-Version: 1.0\r\n\r\n".encode() + data + b"\r\n")


RestOutput.__module__ = "orthanc"


def _bytes(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("expected bytes or str")


def _checked_status(status: int) -> int:
    if isinstance(status, bool) or not isinstance(status, int) or status not in KNOWN_STATUSES:
        raise orthanc_exception(3)
    if status in DEDICATED_STATUSES:
        raise orthanc_exception(3, f"Please use RestOutput.{DEDICATED_STATUSES[status]}() for HTTP status {status}")
    return status


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=3, sort_keys=True, ensure_ascii=False)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string")
    return value


def _body(value: Any) -> bytes:
    try:
        return _bytes(value)
    except TypeError:
        raise TypeError("the body must be bytes or str") from None


def _callable(value: Any, message: str) -> Callable[..., Any]:
    if not callable(value):
        raise ValueError(message)
    function: Callable[..., Any] = value
    return function


class _Opaque:
    """A class of the plugin whose objects only Orthanc makes (scripts cannot construct them)."""

    def __init__(self, *args: Any) -> None:
        raise ValueError("Expected a pair (pointer, borrowed) in the constructor")


class StorageArea(_Opaque):
    """Handed to C callbacks of the plugin SDK only; never to Python code."""

    def StorageAreaCreate(self, uuid: str, content: bytes, size: int, type: int) -> None:
        raise orthanc_exception(2)

    def StorageAreaRead(self, uuid: str, type: int) -> bytes:
        raise orthanc_exception(2)

    def StorageAreaRemove(self, uuid: str, type: int) -> None:
        raise orthanc_exception(2)

    def ReconstructMainDicomTags(self, level: int) -> None:
        raise orthanc_exception(2)


class DicomWebNode(_Opaque):
    """Used by the DICOMweb plugin's C callbacks only."""


class ServerChunkedRequestReader(_Opaque):
    """Used by chunked REST callbacks of C plugins only."""


for _class in (StorageArea, DicomWebNode, ServerChunkedRequestReader):
    _class.__module__ = "orthanc"


class _Functions(ToolboxFunctions, DatabaseFunctions, JobFunctions):
    """The module-level functions, bound to one :class:`Host`."""

    _host: Host

    def __init__(self, host: Host) -> None:
        self._host = host
        self._registered_names = set()

    def LogInfo(self, message: str) -> None:
        log.info("%s", _text(message, "message"), stacklevel=2)

    def LogWarning(self, message: str) -> None:
        log.warning("%s", _text(message, "message"), stacklevel=2)

    def LogError(self, message: str) -> None:
        log.error("%s", _text(message, "message"), stacklevel=2)

    def GetConfiguration(self) -> str:
        """The configuration as the user wrote it, as JSON text."""
        return self._host.configuration_text()

    def GenerateRestApiAuthorizationToken(self) -> str:
        """An ``Authorization`` header value granting full access to the REST API (until restart)."""
        return self._host.new_token()

    def GenerateUuid(self) -> str:
        return str(uuid.uuid4())

    def GetErrorDescription(self, error: int) -> str:
        if int(error) >= FIRST_PLUGIN_ERROR:
            return PLUGIN_ERROR_DESCRIPTION
        return DESCRIPTIONS.get(int(error), "Unknown error code")

    def RestApiGet(self, uri: str) -> bytes:
        """GET on the built-in REST API (script routes excluded)."""
        return self._host.rest_api("GET", _text(uri, "uri"), b"", False)

    def RestApiGetAfterPlugins(self, uri: str) -> bytes:
        """GET on the REST API including the routes of ``RegisterRestCallback``."""
        return self._host.rest_api("GET", _text(uri, "uri"), b"", True)

    def RestApiPost(self, uri: str, body: bytes | str) -> bytes:
        return self._host.rest_api("POST", _text(uri, "uri"), _body(body), False)

    def RestApiPostAfterPlugins(self, uri: str, body: bytes | str) -> bytes:
        return self._host.rest_api("POST", _text(uri, "uri"), _body(body), True)

    def RestApiPut(self, uri: str, body: bytes | str) -> bytes:
        return self._host.rest_api("PUT", _text(uri, "uri"), _body(body), False)

    def RestApiPutAfterPlugins(self, uri: str, body: bytes | str) -> bytes:
        return self._host.rest_api("PUT", _text(uri, "uri"), _body(body), True)

    def RestApiDelete(self, uri: str) -> None:
        self._host.rest_api("DELETE", _text(uri, "uri"), b"", False)

    def RestApiDeleteAfterPlugins(self, uri: str) -> None:
        self._host.rest_api("DELETE", _text(uri, "uri"), b"", True)

    def GetDicomForInstance(self, instance_id: str) -> bytes:
        return self._host.instance_file(_text(instance_id, "instance_id"))

    def LookupPatient(self, patient_id: str) -> str:
        """The Orthanc ID of the patient with this PatientID."""
        return self._host.lookup_resource("Patient", _text(patient_id, "patient_id"))

    def LookupStudy(self, study_uid: str) -> str:
        return self._host.lookup_resource("Study", _text(study_uid, "study_uid"))

    def LookupSeries(self, series_uid: str) -> str:
        return self._host.lookup_resource("Series", _text(series_uid, "series_uid"))

    def LookupInstance(self, sop_instance_uid: str) -> str:
        return self._host.lookup_resource("Instance", _text(sop_instance_uid, "sop_instance_uid"))

    def CreateDicomInstance(self, buffer: bytes) -> DicomInstance:
        """Parse a DICOM file into a :class:`DicomInstance`."""
        return DicomInstance(_body(buffer), None, self._host.default_encoding)

    def SetMetricsValue(self, name: str, value: float, type: int = 0) -> None:
        """Publish a metrics value (``MetricsType.TIMER``: the max over the last 10 seconds)."""
        self._host.set_metric(_text(name, "name"), float(value), type == 1)

    def RegisterRestCallback(self, path_regular_expression: str, callback: Callable[..., Any]) -> None:
        """Serve the URIs matching the regular expression with ``callback(output, uri, **request)``."""
        if not isinstance(path_regular_expression, str) or not callable(callback):
            raise ValueError("Expected a string (URI) and a callback function")
        self._host.add_rest_route(path_regular_expression, callback)

    def RegisterOnChangeCallback(self, callback: Callable[[int, int, str], None]) -> None:
        self._single("change", "Python on-changes callback", callback)

    def RegisterOnStoredInstanceCallback(self, callback: Callable[[DicomInstance, str], None]) -> None:
        self._single("stored", "Python on-stored-instance callback", callback)

    def RegisterReceivedInstanceCallback(self, callback: Callable[[bytes, int], tuple[int, bytes | None]]) -> None:
        self._single("received", "Python received instance callback", callback)

    def RegisterIncomingCStoreInstanceFilter(self, callback: Callable[[DicomInstance], int]) -> None:
        self._single("cstore", "Python incoming CStore instance filter", callback)

    def RegisterIncomingHttpRequestFilter(self, callback: Callable[..., bool]) -> None:
        self._single("http", "Python incoming-http-request filter", callback)

    def RegisterStorageCommitmentScpCallback(self, callback: Callable[..., Any],
                                             lookup: Callable[[str, str, Any], int]) -> None:
        """``callback(job_id, transaction_uid, sop_class_uids, sop_instance_uids, remote_aet, called_aet)``."""
        self._pair("commitment", callback, lookup)

    def RegisterStorageCommitmentScpCallback2(self, callback: Callable[..., Any],
                                              lookup: Callable[[str, str, Any], int]) -> None:
        """``callback(job_id, transaction_uid, sop_class_uids, sop_instance_uids, connection)``."""
        self._pair("commitment2", callback, lookup)

    def RegisterWorklistCallback(self, callback: Callable[..., None]) -> None:
        """``callback(answers, query, issuer_aet, called_aet)`` answers C-FIND on the worklist model."""
        self._single("worklist", "Python C-FIND SCP for worklist callback", callback)

    def RegisterFindCallback(self, callback: Callable[..., None]) -> None:
        """``callback(answers, query, issuer_aet, called_aet)`` replaces the built-in C-FIND SCP."""
        self._single("find", "Python C-FIND SCP callback", callback)

    def RegisterMoveCallback(self, callback: Callable[..., None]) -> None:
        """``callback(**request)`` replaces the built-in C-MOVE SCP (it does the sending itself)."""
        self._single("move", "Python C-MOVE SCP callback", callback)

    def RegisterStorageArea(self, create: Callable[..., Any], read: Callable[..., Any],
                            remove: Callable[..., Any]) -> None:
        """``create(uuid, content_type, data)``, ``read(uuid, content_type)``, ``remove(uuid, content_type)``."""
        description = "Python storage area"
        message = f"Expected three callback functions to register a {description}"
        self._host.register("storage", description, _callable(create, message), _callable(read, message),
                            _callable(remove, message))

    # -- DICOM -----------------------------------------------------------------------

    def CreateDicom(self, json: str, pixel_data: Image | None, flags: int) -> bytes:
        """A DICOM file from ``{"TagName": value}`` JSON text, with the image's pixels if one is given."""
        raster = python_images.raster(pixel_data) if pixel_data is not None else None
        return python_dicom.create_dicom(json, int(flags), self._host.default_encoding, "", raster)

    def DicomBufferToJson(self, buffer: bytes, format: int, flags: int, max_string_length: int) -> str:
        return python_dicom.dicom_json(buffer, format, flags, self._host.default_encoding, max_string_length)

    def DicomInstanceToJson(self, instance_id: str, format: int, flags: int, max_string_length: int) -> str:
        """An unknown instance raises ``InternalError``, as orthanc-python does."""
        try:
            data = self._host.instance_file(_text(instance_id, "instance_id"))
        except OrthancException:
            raise orthanc_exception(-1) from None
        return python_dicom.dicom_json(data, format, flags, self._host.default_encoding, max_string_length)

    def CreateFindMatcher(self, query: bytes) -> FindMatcher:
        return FindMatcher(self._host.matcher(python_dicom._parsed(query)))

    def TranscodeDicomInstance(self, buffer: bytes, transfer_syntax: str) -> DicomInstance:
        """Through the server's one transcoder (every syntax it writes)."""
        try:
            data = transcode_file(_body(buffer), _text(transfer_syntax, "transfer_syntax"))
        except OrthancError as e:
            raise from_orthanc_error(e) from None
        return DicomInstance(data, None, self._host.default_encoding)

    # -- images ----------------------------------------------------------------------

    def CreateImage(self, format: int, width: int, height: int) -> Image:
        return python_images.create_image(format, width, height)

    def CreateImageFromBuffer(self, format: int, width: int, height: int, pitch: int, buffer: bytes) -> Image:
        return Image(format, width, height, pitch, _body(buffer))

    def CompressPngImage(self, format: int, width: int, height: int, pitch: int, buffer: bytes) -> bytes:
        return python_images.compress("PNG", format, width, height, pitch, buffer)

    def CompressJpegImage(self, format: int, width: int, height: int, pitch: int, buffer: bytes,
                          quality: int) -> bytes:
        return python_images.compress("JPEG", format, width, height, pitch, buffer, quality)

    def UncompressImage(self, data: bytes, format: int) -> Image:
        return python_images.uncompress(_body(data), format)

    def DecodeDicomImage(self, buffer: bytes, frame_index: int) -> Image:
        return python_images.decode_frame(_body(buffer), frame_index)

    def _single(self, slot: str, description: str, callback: Any) -> None:
        self._host.register(slot, description, _callable(
            callback, f"Expected a callback function to register one {description}"))

    def _pair(self, slot: str, callback: Any, lookup: Any) -> None:
        description = "Python storage commitment SCP & Lookup callback"
        message = f"Expected two callback functions to register {description}"
        self._host.register(slot, description, _callable(callback, message), _callable(lookup, message))


#: The functions every module exposes, in the order of ``dir(orthanc)``.
FUNCTIONS = sorted(name for name in dir(_Functions) if not name.startswith("_"))
#: The classes of the module (besides the enumerations).
CLASSES: dict[str, type] = {cls.__name__: cls for cls in (
    OrthancException, DicomInstance, DicomConnection, RestOutput, Peers, Image, FindMatcher, FindQuery,
    FindAnswers, WorklistQuery, WorklistAnswers, Job, StorageArea, DicomWebNode, ServerChunkedRequestReader,
    KeysValuesIterator)}


def build_module(host: Host) -> ModuleType:
    """A new ``orthanc`` module whose functions act on ``host``."""
    module = ModuleType("orthanc", "Isengard's implementation of the orthanc-python plugin's module.")
    functions = _Functions(host)
    for name in FUNCTIONS:
        setattr(module, name, getattr(functions, name))
    for name, cls in CLASSES.items():
        setattr(module, name, cls)
    for name in ENUMERATIONS:
        setattr(module, name, enumeration_class(name))
    return module
