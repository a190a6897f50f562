# Type stub of the ``orthanc`` module that Isengard gives to ``PythonScript``.
#
# It covers the whole module of orthanc-python 4.0 (and a few newer names), with
# the names, signatures and values of the plugin.  For completion in an editor, put this folder in the
# stub path (pyright/Pylance: "stubPath", mypy: MYPY_PATH) or copy this file next
# to your script.  Enumerations are plain classes of ``int`` constants, as in
# orthanc-python: callbacks receive ``int`` values.

from collections.abc import Callable
from typing import Any, Protocol

class OrthancException(Exception):
    """Raised by the functions of this module: ``args == (error_code, description)``."""

class ChangeType:
    COMPLETED_SERIES: int = 0
    DELETED: int = 1
    NEW_CHILD_INSTANCE: int = 2
    NEW_INSTANCE: int = 3
    NEW_PATIENT: int = 4
    NEW_SERIES: int = 5
    NEW_STUDY: int = 6
    STABLE_PATIENT: int = 7
    STABLE_SERIES: int = 8
    STABLE_STUDY: int = 9
    ORTHANC_STARTED: int = 10
    ORTHANC_STOPPED: int = 11
    UPDATED_ATTACHMENT: int = 12
    UPDATED_METADATA: int = 13
    UPDATED_PEERS: int = 14
    UPDATED_MODALITIES: int = 15
    JOB_SUBMITTED: int = 16
    JOB_SUCCESS: int = 17
    JOB_FAILURE: int = 18

class ResourceType:
    PATIENT: int = 0
    STUDY: int = 1
    SERIES: int = 2
    INSTANCE: int = 3
    NONE: int = 4

class StorageCommitmentFailureReason:
    SUCCESS: int = 0
    PROCESSING_FAILURE: int = 1
    NO_SUCH_OBJECT_INSTANCE: int = 2
    RESOURCE_LIMITATION: int = 3
    REFERENCED_SOPCLASS_NOT_SUPPORTED: int = 4
    REFERENCED_SOP_CLASS_NOT_SUPPORTED: int = 4
    CLASS_INSTANCE_CONFLICT: int = 5
    DUPLICATE_TRANSACTION_UID: int = 6

class ReceivedInstanceAction:
    KEEP_AS_IS: int = 1
    MODIFY: int = 2
    DISCARD: int = 3

class InstanceOrigin:
    UNKNOWN: int = 1
    DICOM_PROTOCOL: int = 2
    REST_API: int = 3
    PLUGIN: int = 4
    LUA: int = 5
    WEB_DAV: int = 6

class HttpMethod:
    GET: int = 1
    POST: int = 2
    PUT: int = 3
    DELETE: int = 4

class MetricsType:
    DEFAULT: int = 0
    TIMER: int = 1

class CompressionType:
    ZLIB: int = 0
    ZLIB_WITH_SIZE: int = 1
    GZIP: int = 2
    GZIP_WITH_SIZE: int = 3

class ConstraintType:
    EQUAL: int = 1
    SMALLER_OR_EQUAL: int = 2
    GREATER_OR_EQUAL: int = 3
    WILDCARD: int = 4
    LIST: int = 5

class ContentType:
    UNKNOWN: int = 0
    DICOM: int = 1
    DICOM_AS_JSON: int = 2
    DICOM_UNTIL_PIXEL_DATA: int = 3

class CreateDicomFlags:
    NONE: int = 0
    DECODE_DATA_URI_SCHEME: int = 1
    GENERATE_IDENTIFIERS: int = 2

class DicomToJsonFlags:
    NONE: int = 0
    INCLUDE_BINARY: int = 1
    INCLUDE_PRIVATE_TAGS: int = 2
    INCLUDE_UNKNOWN_TAGS: int = 4
    INCLUDE_PIXEL_DATA: int = 8
    CONVERT_BINARY_TO_ASCII: int = 16
    CONVERT_BINARY_TO_NULL: int = 32
    STOP_AFTER_PIXEL_DATA: int = 64
    SKIP_GROUP_LENGTHS: int = 128

class DicomToJsonFormat:
    FULL: int = 1
    SHORT: int = 2
    HUMAN: int = 3

class DicomWebBinaryMode:
    IGNORE: int = 0
    INLINE_BINARY: int = 1
    BULK_DATA_URI: int = 2

class IdentifierConstraint:
    EQUAL: int = 1
    SMALLER_OR_EQUAL: int = 2
    GREATER_OR_EQUAL: int = 3
    WILDCARD: int = 4

class ImageFormat:
    PNG: int = 0
    JPEG: int = 1
    DICOM: int = 2

class JobStepStatus:
    SUCCESS: int = 1
    FAILURE: int = 2
    CONTINUE: int = 3

class JobStopReason:
    SUCCESS: int = 1
    PAUSED: int = 2
    FAILURE: int = 3
    CANCELED: int = 4

class PixelFormat:
    GRAYSCALE8: int = 1
    GRAYSCALE16: int = 2
    SIGNED_GRAYSCALE16: int = 3
    RGB24: int = 4
    RGBA32: int = 5
    UNKNOWN: int = 6
    RGB48: int = 7
    GRAYSCALE32: int = 8
    FLOAT32: int = 9
    BGRA32: int = 10
    GRAYSCALE64: int = 11

class ValueRepresentation:
    AE: int = 1
    AS: int = 2
    AT: int = 3
    CS: int = 4
    DA: int = 5
    DS: int = 6
    DT: int = 7
    FD: int = 8
    FL: int = 9
    IS: int = 10
    LO: int = 11
    LT: int = 12
    OB: int = 13
    OF: int = 14
    OW: int = 15
    PN: int = 16
    SH: int = 17
    SL: int = 18
    SQ: int = 19
    SS: int = 20
    ST: int = 21
    TM: int = 22
    UI: int = 23
    UL: int = 24
    UN: int = 25
    US: int = 26
    UT: int = 27

class QueueOrigin:
    FRONT: int = 0
    BACK: int = 1

class StableStatus:
    STABLE: int = 0
    UNSTABLE: int = 1

class ErrorCode:
    """Orthanc's error codes."""
    INTERNAL_ERROR: int = -1
    SUCCESS: int = 0
    PLUGIN: int = 1
    NOT_IMPLEMENTED: int = 2
    PARAMETER_OUT_OF_RANGE: int = 3
    NOT_ENOUGH_MEMORY: int = 4
    BAD_PARAMETER_TYPE: int = 5
    BAD_SEQUENCE_OF_CALLS: int = 6
    INEXISTENT_ITEM: int = 7
    BAD_REQUEST: int = 8
    NETWORK_PROTOCOL: int = 9
    SYSTEM_COMMAND: int = 10
    DATABASE: int = 11
    URI_SYNTAX: int = 12
    INEXISTENT_FILE: int = 13
    CANNOT_WRITE_FILE: int = 14
    BAD_FILE_FORMAT: int = 15
    TIMEOUT: int = 16
    UNKNOWN_RESOURCE: int = 17
    INCOMPATIBLE_DATABASE_VERSION: int = 18
    FULL_STORAGE: int = 19
    CORRUPTED_FILE: int = 20
    INEXISTENT_TAG: int = 21
    READ_ONLY: int = 22
    INCOMPATIBLE_IMAGE_FORMAT: int = 23
    INCOMPATIBLE_IMAGE_SIZE: int = 24
    SHARED_LIBRARY: int = 25
    UNKNOWN_PLUGIN_SERVICE: int = 26
    UNKNOWN_DICOM_TAG: int = 27
    BAD_JSON: int = 28
    UNAUTHORIZED: int = 29
    BAD_FONT: int = 30
    DATABASE_PLUGIN: int = 31
    STORAGE_AREA_PLUGIN: int = 32
    EMPTY_REQUEST: int = 33
    NOT_ACCEPTABLE: int = 34
    NULL_POINTER: int = 35
    DATABASE_UNAVAILABLE: int = 36
    CANCELED_JOB: int = 37
    BAD_GEOMETRY: int = 38
    SSL_INITIALIZATION: int = 39
    DISCONTINUED_ABI: int = 40
    BAD_RANGE: int = 41
    DATABASE_CANNOT_SERIALIZE: int = 42
    REVISION: int = 43
    SQLITE_NOT_OPENED: int = 1000
    SQLITE_ALREADY_OPENED: int = 1001
    SQLITE_CANNOT_OPEN: int = 1002
    SQLITE_STATEMENT_ALREADY_USED: int = 1003
    SQLITE_EXECUTE: int = 1004
    SQLITE_ROLLBACK_WITHOUT_TRANSACTION: int = 1005
    SQLITE_COMMIT_WITHOUT_TRANSACTION: int = 1006
    SQLITE_REGISTER_FUNCTION: int = 1007
    SQLITE_FLUSH: int = 1008
    SQLITE_CANNOT_RUN: int = 1009
    SQLITE_CANNOT_STEP: int = 1010
    SQLITE_BIND_OUT_OF_RANGE: int = 1011
    SQLITE_PREPARE_STATEMENT: int = 1012
    SQLITE_TRANSACTION_ALREADY_STARTED: int = 1013
    SQLITE_TRANSACTION_COMMIT: int = 1014
    SQLITE_TRANSACTION_BEGIN: int = 1015
    DIRECTORY_OVER_FILE: int = 2000
    FILE_STORAGE_CANNOT_WRITE: int = 2001
    DIRECTORY_EXPECTED: int = 2002
    HTTP_PORT_IN_USE: int = 2003
    DICOM_PORT_IN_USE: int = 2004
    BAD_HTTP_STATUS_IN_REST: int = 2005
    REGULAR_FILE_EXPECTED: int = 2006
    PATH_TO_EXECUTABLE: int = 2007
    MAKE_DIRECTORY: int = 2008
    BAD_APPLICATION_ENTITY_TITLE: int = 2009
    NO_CFIND_HANDLER: int = 2010
    NO_CMOVE_HANDLER: int = 2011
    NO_CSTORE_HANDLER: int = 2012
    NO_APPLICATION_ENTITY_FILTER: int = 2013
    NO_SOP_CLASS_OR_INSTANCE: int = 2014
    NO_PRESENTATION_CONTEXT: int = 2015
    DICOM_FIND_UNAVAILABLE: int = 2016
    DICOM_MOVE_UNAVAILABLE: int = 2017
    CANNOT_STORE_INSTANCE: int = 2018
    CREATE_DICOM_NOT_STRING: int = 2019
    CREATE_DICOM_OVERRIDE_TAG: int = 2020
    CREATE_DICOM_USE_CONTENT: int = 2021
    CREATE_DICOM_NO_PAYLOAD: int = 2022
    CREATE_DICOM_USE_DATA_URI_SCHEME: int = 2023
    CREATE_DICOM_BAD_PARENT: int = 2024
    CREATE_DICOM_PARENT_IS_INSTANCE: int = 2025
    CREATE_DICOM_PARENT_ENCODING: int = 2026
    UNKNOWN_MODALITY: int = 2027
    BAD_JOB_ORDERING: int = 2028
    JSON_TO_LUA_TABLE: int = 2029
    CANNOT_CREATE_LUA: int = 2030
    CANNOT_EXECUTE_LUA: int = 2031
    LUA_ALREADY_EXECUTED: int = 2032
    LUA_BAD_OUTPUT: int = 2033
    NOT_LUA_PREDICATE: int = 2034
    LUA_RETURNS_NO_STRING: int = 2035
    STORAGE_AREA_ALREADY_REGISTERED: int = 2036
    DATABASE_BACKEND_ALREADY_REGISTERED: int = 2037
    DATABASE_NOT_INITIALIZED: int = 2038
    SSL_DISABLED: int = 2039
    CANNOT_ORDER_SLICES: int = 2040
    NO_WORKLIST_HANDLER: int = 2041
    ALREADY_EXISTING_TAG: int = 2042
    NO_STORAGE_COMMITMENT_HANDLER: int = 2043
    NO_CGET_HANDLER: int = 2044
    UNSUPPORTED_MEDIA_TYPE: int = 3000

class DicomInstance:
    """A DICOM instance given to a callback, or made by ``CreateDicomInstance``."""
    def GetInstanceData(self) -> bytes: ...
    def SerializeDicomInstance(self) -> bytes: ...
    def GetInstanceSize(self) -> int: ...
    def GetInstanceRemoteAet(self) -> str: ...
    def GetInstanceOrigin(self) -> int: ...
    def GetInstanceTransferSyntaxUid(self) -> str: ...
    def GetInstanceJson(self) -> str: ...
    def GetInstanceSimplifiedJson(self) -> str: ...
    def HasInstanceMetadata(self, metadata: str) -> int: ...
    def GetInstanceMetadata(self, metadata: str) -> str | None: ...
    def HasInstancePixelData(self) -> int: ...
    def GetInstanceFramesCount(self) -> int: ...
    def GetInstanceAdvancedJson(self, format: int, flags: int, max_string_length: int) -> str: ...
    def GetInstanceRawFrame(self, frame_index: int) -> bytes: ...
    def GetInstanceDecodedFrame(self, frame_index: int) -> Image: ...

class DicomConnection:
    """The association of a storage commitment request (``RegisterStorageCommitmentScpCallback2``)."""
    def GetConnectionRemoteAet(self) -> str: ...
    def GetConnectionRemoteIp(self) -> str: ...
    def GetConnectionCalledAet(self) -> str: ...

class RestOutput:
    """What a REST callback answers with (one answer per call)."""
    def AnswerBuffer(self, answer: bytes | str, mime_type: str) -> None: ...
    def SendHttpStatusCode(self, status: int) -> None: ...
    def SendHttpStatus(self, status: int, body: bytes | str, size: int | None = None) -> None: ...
    def SendUnauthorized(self, realm: str) -> None: ...
    def SendMethodNotAllowed(self, allowed_methods: str) -> None: ...
    def Redirect(self, redirection: str) -> None: ...
    def SetCookie(self, cookie: str, value: str) -> None: ...
    def SetHttpHeader(self, key: str, value: str) -> None: ...
    def SetHttpErrorDetails(self, details: str, log: int) -> None: ...
    def StartMultipartAnswer(self, sub_type: str, content_type: str) -> None: ...
    def SendMultipartItem(self, answer: bytes | str) -> None: ...
    def CompressAndAnswerPngImage(self, format: int, width: int, height: int, pitch: int, buffer: bytes) -> None: ...
    def CompressAndAnswerJpegImage(self, format: int, width: int, height: int, pitch: int, buffer: bytes,
                                   quality: int) -> None: ...

class Image:
    """An image in memory (``CreateImage``, ``UncompressImage``, ``DecodeDicomImage``...)."""
    def GetImagePixelFormat(self) -> int: ...
    def GetImageWidth(self) -> int: ...
    def GetImageHeight(self) -> int: ...
    def GetImagePitch(self) -> int: ...
    def GetImageBuffer(self) -> bytes: ...
    def ConvertPixelFormat(self, target_format: int) -> Image: ...
    def DrawText(self, font_index: int, utf8_text: str, x: int, y: int, r: int, g: int, b: int) -> None: ...

class Peers:
    """The ``OrthancPeers`` of the configuration (``GetPeers``); None for an index out of range."""
    def GetPeersCount(self) -> int: ...
    def GetPeerName(self, peer_index: int) -> str | None: ...
    def GetPeerUrl(self, peer_index: int) -> str | None: ...
    def GetPeerUserProperty(self, peer_index: int, user_property: str) -> str | None: ...

class FindMatcher:
    """C-FIND matching of DICOM files (``CreateFindMatcher``)."""
    def FindMatcherIsMatch(self, dicom: bytes) -> int: ...

class WorklistQuery:
    """The query given to a worklist callback."""
    def WorklistGetDicomQuery(self) -> bytes: ...
    def WorklistIsMatch(self, dicom: bytes) -> int: ...

class WorklistAnswers:
    """The answers of a worklist callback."""
    def WorklistAddAnswer(self, query: WorklistQuery, dicom: bytes) -> None: ...
    def WorklistMarkIncomplete(self) -> None: ...

class FindQuery:
    """The query given to a C-FIND callback: its top-level keys, in tag order."""
    def GetFindQuerySize(self) -> int: ...
    def GetFindQueryTagGroup(self, index: int) -> int: ...
    def GetFindQueryTagElement(self, index: int) -> int: ...
    def GetFindQueryTagName(self, index: int) -> str: ...
    def GetFindQueryValue(self, index: int) -> str: ...

class FindAnswers:
    """The answers of a C-FIND callback (DICOM files)."""
    def FindAddAnswer(self, dicom: bytes) -> None: ...
    def FindMarkIncomplete(self) -> None: ...

class Job:
    """Made by CreateJob (Isengard's addition); ``orthanc.Job()`` is refused as in orthanc-python."""
    def SubmitJob(self, priority: int) -> str: ...

class StorageArea:
    """Only handed to C plugins; scripts cannot construct it."""
    def StorageAreaCreate(self, uuid: str, content: bytes, size: int, type: int) -> None: ...
    def StorageAreaRead(self, uuid: str, type: int) -> bytes: ...
    def StorageAreaRemove(self, uuid: str, type: int) -> None: ...
    def ReconstructMainDicomTags(self, level: int) -> None: ...

class DicomWebNode:
    """Only handed to C plugins."""

class ServerChunkedRequestReader:
    """Only handed to C plugins."""

class KeysValuesIterator:
    """From CreateKeysValuesIterator: Next() is True while a pair is available."""
    def Next(self) -> bool: ...
    def GetKey(self) -> str: ...
    def GetValue(self) -> bytes: ...

class RestCallback(Protocol):
    # keyword arguments: method (str), groups (tuple of str), headers (dict, lower-case names),
    # get (dict, GET only), body (bytes, POST and PUT only)
    def __call__(self, output: RestOutput, uri: str, **request: Any) -> None: ...

class IncomingHttpRequestFilter(Protocol):
    # keyword arguments: method (HttpMethod value), ip (str), headers (dict), get (dict, GET only)
    def __call__(self, uri: str, **request: Any) -> bool: ...

def LogInfo(message: str) -> None: ...
def LogWarning(message: str) -> None: ...
def LogError(message: str) -> None: ...
def GetConfiguration() -> str: ...
def GenerateUuid() -> str: ...
def GenerateRestApiAuthorizationToken() -> str: ...
def GetErrorDescription(error: int) -> str: ...
def RestApiGet(uri: str) -> bytes: ...
def RestApiGetAfterPlugins(uri: str) -> bytes: ...
def RestApiPost(uri: str, body: bytes | str) -> bytes: ...
def RestApiPostAfterPlugins(uri: str, body: bytes | str) -> bytes: ...
def RestApiPut(uri: str, body: bytes | str) -> bytes: ...
def RestApiPutAfterPlugins(uri: str, body: bytes | str) -> bytes: ...
def RestApiDelete(uri: str) -> None: ...
def RestApiDeleteAfterPlugins(uri: str) -> None: ...
def GetDicomForInstance(instance_id: str) -> bytes: ...
def LookupPatient(patient_id: str) -> str: ...
def LookupStudy(study_uid: str) -> str: ...
def LookupSeries(series_uid: str) -> str: ...
def LookupInstance(sop_instance_uid: str) -> str: ...
def CreateDicomInstance(buffer: bytes) -> DicomInstance: ...
def SetMetricsValue(name: str, value: float, type: int = ...) -> None: ...
def RegisterRestCallback(path_regular_expression: str, callback: RestCallback) -> None: ...
def RegisterOnChangeCallback(callback: Callable[[int, int, str], None]) -> None: ...
def RegisterOnStoredInstanceCallback(callback: Callable[[DicomInstance, str], None]) -> None: ...
def RegisterReceivedInstanceCallback(callback: Callable[[bytes, int], tuple[int, bytes | None]]) -> None: ...
def RegisterIncomingCStoreInstanceFilter(callback: Callable[[DicomInstance], int]) -> None: ...
def RegisterIncomingHttpRequestFilter(callback: IncomingHttpRequestFilter) -> None: ...
def RegisterStorageCommitmentScpCallback(
    callback: Callable[[str, str, list[str], list[str], str, str], Any],
    lookup: Callable[[str, str, Any], int]) -> None: ...
def RegisterStorageCommitmentScpCallback2(
    callback: Callable[[str, str, list[str], list[str], DicomConnection], Any],
    lookup: Callable[[str, str, Any], int]) -> None: ...
def RegisterWorklistCallback(callback: Callable[[WorklistAnswers, WorklistQuery, str, str], None]) -> None: ...
def RegisterFindCallback(callback: Callable[[FindAnswers, FindQuery, str, str], None]) -> None: ...
def RegisterMoveCallback(callback: Callable[..., None]) -> None: ...
def RegisterStorageArea(create: Callable[[str, int, bytes], None], read: Callable[[str, int], bytes],
                        remove: Callable[[str, int], None]) -> None: ...
# Custom jobs: Isengard's form of the C SDK's OrthancPluginCreateJob2 and
# OrthancPluginRegisterJobsUnserializer, which no orthanc-python release wraps.
def CreateJob(type: str, get_progress: Callable[[], float], get_content: Callable[[], str | dict[str, Any]],
              get_serialized: Callable[[], str | dict[str, Any] | None], step: Callable[[], int],
              stop: Callable[[int], None], reset: Callable[[], None]) -> Job: ...
def RegisterJobsUnserializer(callback: Callable[[str, str], Job | None]) -> None: ...
def RegisterErrorCode(code: int, http_status: int, message: str) -> None: ...
def RegisterDictionaryTag(group: int, element: int, vr: int, name: str, min_multiplicity: int,
                          max_multiplicity: int) -> None: ...
def RegisterPrivateDictionaryTag(group: int, element: int, vr: int, name: str, min_multiplicity: int,
                                 max_multiplicity: int, private_creator: str) -> None: ...
def LookupDictionary(name: str) -> dict[str, int]: ...
def GetTagName(group: int, element: int, private_creator: str) -> str: ...
def LookupStudyWithAccessionNumber(accession_number: str) -> str: ...
def GetGlobalProperty(property: int, default_value: str) -> str: ...
def SetGlobalProperty(property: int, value: str) -> None: ...
def GetPeers() -> Peers: ...
def HttpGet(url: str, username: str, password: str) -> bytes: ...
def HttpPost(url: str, body: bytes, username: str, password: str) -> bytes: ...
def HttpPut(url: str, body: bytes, username: str, password: str) -> bytes: ...
def HttpDelete(url: str, username: str, password: str) -> None: ...
def ReadFile(path: str) -> bytes: ...
def WriteFile(path: str, data: bytes) -> None: ...
def ComputeMd5(buffer: bytes | str) -> str: ...
def ComputeSha1(buffer: bytes | str) -> str: ...
def AutodetectMimeType(path: str) -> str: ...
def BufferCompression(source: bytes, compression: int, uncompress: int) -> bytes: ...
def CreateDicom(json: str, pixel_data: Image | None, flags: int) -> bytes: ...
def DicomBufferToJson(buffer: bytes, format: int, flags: int, max_string_length: int) -> str: ...
def DicomInstanceToJson(instance_id: str, format: int, flags: int, max_string_length: int) -> str: ...
def CreateFindMatcher(query: bytes) -> FindMatcher: ...
def TranscodeDicomInstance(buffer: bytes, transfer_syntax: str) -> DicomInstance: ...
def CreateImage(format: int, width: int, height: int) -> Image: ...
def CreateImageFromBuffer(format: int, width: int, height: int, pitch: int, buffer: bytes) -> Image: ...
def CompressPngImage(format: int, width: int, height: int, pitch: int, buffer: bytes) -> bytes: ...
def CompressJpegImage(format: int, width: int, height: int, pitch: int, buffer: bytes, quality: int) -> bytes: ...
def UncompressImage(data: bytes, format: int) -> Image: ...
def DecodeDicomImage(buffer: bytes, frame_index: int) -> Image: ...
def ExtendOrthancExplorer(javascript: str) -> None: ...
def SetDescription(description: str) -> None: ...
def SetRootUri(uri: str) -> None: ...
def CheckVersion() -> int: ...
def CheckVersionAdvanced(major: int, minor: int, revision: int) -> int: ...
def GetExpectedDatabaseVersion() -> int: ...
def GetConfigurationPath() -> str: ...
def GetOrthancPath() -> str: ...
def GetOrthancDirectory() -> str: ...
def GetCommandLineArgumentsCount() -> int: ...
def GetCommandLineArgument(argument: int) -> str: ...
def GetFontsCount() -> int: ...
def GetFontName(font_index: int) -> str | None: ...
def GetFontSize(font_index: int) -> int: ...
def CreateMemoryBuffer(size: int) -> bytes: ...
def StoreKeyValue(store_id: str, key: str, value: bytes) -> None: ...
def GetKeyValue(store_id: str, key: str) -> bytes | None: ...
def DeleteKeyValue(store_id: str, key: str) -> None: ...
def CreateKeysValuesIterator(store_id: str) -> KeysValuesIterator: ...
def EnqueueValue(queue_id: str, value: bytes) -> None: ...
def DequeueValue(queue_id: str, origin: int) -> bytes | None: ...
def ReserveQueueValue(queue_id: str, origin: int, release_timeout: int) -> tuple[bytes, int] | tuple[None, None]: ...
def AcknowledgeQueueValue(queue_id: str, value_id: int) -> None: ...
def GetQueueSize(queue_id: str) -> int: ...
def SetStableStatus(resource_id: str, stable_status: int) -> tuple[int, int]: ...
