"""The enumerations of the ``orthanc`` module, with orthanc-python's names and values.

orthanc-python exposes each SDK enumeration as a plain class whose attributes are
``int`` (``orthanc.ChangeType.NEW_INSTANCE == 3``) and passes plain ``int`` values to
callbacks; scripts compare them with ``==``, so the same shape is kept here.  The
values were read from the real plugin (orthanc-python 4.0 on Orthanc 1.10.1).
"""

from __future__ import annotations

ENUMERATIONS: dict[str, tuple[str, dict[str, int]]] = {
    "ChangeType": ("The types of changes signalled to the change callback.", {
        "COMPLETED_SERIES": 0, "DELETED": 1, "NEW_CHILD_INSTANCE": 2, "NEW_INSTANCE": 3, "NEW_PATIENT": 4,
        "NEW_SERIES": 5, "NEW_STUDY": 6, "STABLE_PATIENT": 7, "STABLE_SERIES": 8, "STABLE_STUDY": 9,
        "ORTHANC_STARTED": 10, "ORTHANC_STOPPED": 11, "UPDATED_ATTACHMENT": 12, "UPDATED_METADATA": 13,
        "UPDATED_PEERS": 14, "UPDATED_MODALITIES": 15, "JOB_SUBMITTED": 16, "JOB_SUCCESS": 17,
        "JOB_FAILURE": 18,
    }),
    "ResourceType": ("The levels of the DICOM hierarchy (NONE: not about a resource).", {
        "PATIENT": 0, "STUDY": 1, "SERIES": 2, "INSTANCE": 3, "NONE": 4,
    }),
    "StorageCommitmentFailureReason": ("What a storage commitment lookup answers for one instance.", {
        "SUCCESS": 0, "PROCESSING_FAILURE": 1, "NO_SUCH_OBJECT_INSTANCE": 2, "RESOURCE_LIMITATION": 3,
        "REFERENCED_SOPCLASS_NOT_SUPPORTED": 4, "REFERENCED_SOP_CLASS_NOT_SUPPORTED": 4,
        "CLASS_INSTANCE_CONFLICT": 5, "DUPLICATE_TRANSACTION_UID": 6,
    }),
    "ReceivedInstanceAction": ("What a received-instance callback decides.", {
        "KEEP_AS_IS": 1, "MODIFY": 2, "DISCARD": 3,
    }),
    "InstanceOrigin": ("Where an instance came from.", {
        "UNKNOWN": 1, "DICOM_PROTOCOL": 2, "REST_API": 3, "PLUGIN": 4, "LUA": 5, "WEB_DAV": 6,
    }),
    "HttpMethod": ("HTTP methods, as given to the incoming HTTP request filter.", {
        "GET": 1, "POST": 2, "PUT": 3, "DELETE": 4,
    }),
    "MetricsType": ("How a metrics value set by a script is reported.", {
        "DEFAULT": 0, "TIMER": 1,
    }),
    "CompressionType": ("Algorithms of BufferCompression.", {
        "ZLIB": 0, "ZLIB_WITH_SIZE": 1, "GZIP": 2, "GZIP_WITH_SIZE": 3,
    }),
    "ConstraintType": ("Kinds of constraints of a database lookup.", {
        "EQUAL": 1, "SMALLER_OR_EQUAL": 2, "GREATER_OR_EQUAL": 3, "WILDCARD": 4, "LIST": 5,
    }),
    "ContentType": ("Kinds of attachments.", {
        "UNKNOWN": 0, "DICOM": 1, "DICOM_AS_JSON": 2, "DICOM_UNTIL_PIXEL_DATA": 3,
    }),
    "CreateDicomFlags": ("Flags of CreateDicom.", {
        "NONE": 0, "DECODE_DATA_URI_SCHEME": 1, "GENERATE_IDENTIFIERS": 2,
    }),
    "DicomToJsonFlags": ("Flags of DicomBufferToJson and DicomInstanceToJson.", {
        "NONE": 0, "INCLUDE_BINARY": 1, "INCLUDE_PRIVATE_TAGS": 2, "INCLUDE_UNKNOWN_TAGS": 4,
        "INCLUDE_PIXEL_DATA": 8, "CONVERT_BINARY_TO_ASCII": 16, "CONVERT_BINARY_TO_NULL": 32,
        "STOP_AFTER_PIXEL_DATA": 64, "SKIP_GROUP_LENGTHS": 128,
    }),
    "DicomToJsonFormat": ("Formats of DicomBufferToJson and DicomInstanceToJson.", {
        "FULL": 1, "SHORT": 2, "HUMAN": 3,
    }),
    "DicomWebBinaryMode": ("How DICOMweb JSON shows binary values.", {
        "IGNORE": 0, "INLINE_BINARY": 1, "BULK_DATA_URI": 2,
    }),
    "IdentifierConstraint": ("Constraints on identifiers.", {
        "EQUAL": 1, "SMALLER_OR_EQUAL": 2, "GREATER_OR_EQUAL": 3, "WILDCARD": 4,
    }),
    "ImageFormat": ("Formats of compressed images.", {
        "PNG": 0, "JPEG": 1, "DICOM": 2,
    }),
    "JobStepStatus": ("What a step of a job answers.", {
        "SUCCESS": 1, "FAILURE": 2, "CONTINUE": 3,
    }),
    "JobStopReason": ("Why a job stops.", {
        "SUCCESS": 1, "PAUSED": 2, "FAILURE": 3, "CANCELED": 4,
    }),
    "PixelFormat": ("Memory layouts of image pixels.", {
        "GRAYSCALE8": 1, "GRAYSCALE16": 2, "SIGNED_GRAYSCALE16": 3, "RGB24": 4, "RGBA32": 5, "UNKNOWN": 6,
        "RGB48": 7, "GRAYSCALE32": 8, "FLOAT32": 9, "BGRA32": 10, "GRAYSCALE64": 11,
    }),
    "ValueRepresentation": ("DICOM value representations (RegisterDictionaryTag).", {
        "AE": 1, "AS": 2, "AT": 3, "CS": 4, "DA": 5, "DS": 6, "DT": 7, "FD": 8, "FL": 9, "IS": 10, "LO": 11,
        "LT": 12, "OB": 13, "OF": 14, "OW": 15, "PN": 16, "SH": 17, "SL": 18, "SQ": 19, "SS": 20, "ST": 21,
        "TM": 22, "UI": 23, "UL": 24, "UN": 25, "US": 26, "UT": 27,
    }),
    "QueueOrigin": ("Where DequeueValue and ReserveQueueValue take a value from.", {
        "FRONT": 0, "BACK": 1,
    }),
    "StableStatus": ("The status SetStableStatus gives a resource.", {
        "STABLE": 0, "UNSTABLE": 1,
    }),
    "ErrorCode": ("Orthanc's error codes (the first item of OrthancException.args).", {
        "INTERNAL_ERROR": -1, "SUCCESS": 0, "PLUGIN": 1, "NOT_IMPLEMENTED": 2, "PARAMETER_OUT_OF_RANGE": 3,
        "NOT_ENOUGH_MEMORY": 4, "BAD_PARAMETER_TYPE": 5, "BAD_SEQUENCE_OF_CALLS": 6, "INEXISTENT_ITEM": 7,
        "BAD_REQUEST": 8, "NETWORK_PROTOCOL": 9, "SYSTEM_COMMAND": 10, "DATABASE": 11, "URI_SYNTAX": 12,
        "INEXISTENT_FILE": 13, "CANNOT_WRITE_FILE": 14, "BAD_FILE_FORMAT": 15, "TIMEOUT": 16,
        "UNKNOWN_RESOURCE": 17, "INCOMPATIBLE_DATABASE_VERSION": 18, "FULL_STORAGE": 19, "CORRUPTED_FILE": 20,
        "INEXISTENT_TAG": 21, "READ_ONLY": 22, "INCOMPATIBLE_IMAGE_FORMAT": 23, "INCOMPATIBLE_IMAGE_SIZE": 24,
        "SHARED_LIBRARY": 25, "UNKNOWN_PLUGIN_SERVICE": 26, "UNKNOWN_DICOM_TAG": 27, "BAD_JSON": 28,
        "UNAUTHORIZED": 29, "BAD_FONT": 30, "DATABASE_PLUGIN": 31, "STORAGE_AREA_PLUGIN": 32,
        "EMPTY_REQUEST": 33, "NOT_ACCEPTABLE": 34, "NULL_POINTER": 35, "DATABASE_UNAVAILABLE": 36,
        "CANCELED_JOB": 37, "BAD_GEOMETRY": 38, "SSL_INITIALIZATION": 39, "DISCONTINUED_ABI": 40,
        "BAD_RANGE": 41, "DATABASE_CANNOT_SERIALIZE": 42, "REVISION": 43, "SQLITE_NOT_OPENED": 1000,
        "SQLITE_ALREADY_OPENED": 1001, "SQLITE_CANNOT_OPEN": 1002, "SQLITE_STATEMENT_ALREADY_USED": 1003,
        "SQLITE_EXECUTE": 1004, "SQLITE_ROLLBACK_WITHOUT_TRANSACTION": 1005,
        "SQLITE_COMMIT_WITHOUT_TRANSACTION": 1006, "SQLITE_REGISTER_FUNCTION": 1007, "SQLITE_FLUSH": 1008,
        "SQLITE_CANNOT_RUN": 1009, "SQLITE_CANNOT_STEP": 1010, "SQLITE_BIND_OUT_OF_RANGE": 1011,
        "SQLITE_PREPARE_STATEMENT": 1012, "SQLITE_TRANSACTION_ALREADY_STARTED": 1013,
        "SQLITE_TRANSACTION_COMMIT": 1014, "SQLITE_TRANSACTION_BEGIN": 1015, "DIRECTORY_OVER_FILE": 2000,
        "FILE_STORAGE_CANNOT_WRITE": 2001, "DIRECTORY_EXPECTED": 2002, "HTTP_PORT_IN_USE": 2003,
        "DICOM_PORT_IN_USE": 2004, "BAD_HTTP_STATUS_IN_REST": 2005, "REGULAR_FILE_EXPECTED": 2006,
        "PATH_TO_EXECUTABLE": 2007, "MAKE_DIRECTORY": 2008, "BAD_APPLICATION_ENTITY_TITLE": 2009,
        "NO_CFIND_HANDLER": 2010, "NO_CMOVE_HANDLER": 2011, "NO_CSTORE_HANDLER": 2012,
        "NO_APPLICATION_ENTITY_FILTER": 2013, "NO_SOP_CLASS_OR_INSTANCE": 2014, "NO_PRESENTATION_CONTEXT": 2015,
        "DICOM_FIND_UNAVAILABLE": 2016, "DICOM_MOVE_UNAVAILABLE": 2017, "CANNOT_STORE_INSTANCE": 2018,
        "CREATE_DICOM_NOT_STRING": 2019, "CREATE_DICOM_OVERRIDE_TAG": 2020, "CREATE_DICOM_USE_CONTENT": 2021,
        "CREATE_DICOM_NO_PAYLOAD": 2022, "CREATE_DICOM_USE_DATA_URI_SCHEME": 2023,
        "CREATE_DICOM_BAD_PARENT": 2024, "CREATE_DICOM_PARENT_IS_INSTANCE": 2025,
        "CREATE_DICOM_PARENT_ENCODING": 2026, "UNKNOWN_MODALITY": 2027, "BAD_JOB_ORDERING": 2028,
        "JSON_TO_LUA_TABLE": 2029, "CANNOT_CREATE_LUA": 2030, "CANNOT_EXECUTE_LUA": 2031,
        "LUA_ALREADY_EXECUTED": 2032, "LUA_BAD_OUTPUT": 2033, "NOT_LUA_PREDICATE": 2034,
        "LUA_RETURNS_NO_STRING": 2035, "STORAGE_AREA_ALREADY_REGISTERED": 2036,
        "DATABASE_BACKEND_ALREADY_REGISTERED": 2037, "DATABASE_NOT_INITIALIZED": 2038, "SSL_DISABLED": 2039,
        "CANNOT_ORDER_SLICES": 2040, "NO_WORKLIST_HANDLER": 2041, "ALREADY_EXISTING_TAG": 2042,
        "NO_STORAGE_COMMITMENT_HANDLER": 2043, "NO_CGET_HANDLER": 2044, "UNSUPPORTED_MEDIA_TYPE": 3000,
    }),
}


def enumeration_class(name: str) -> type:
    """A fresh ``orthanc.<name>`` class: one class attribute per value."""
    doc, values = ENUMERATIONS[name]
    return type(name, (), {"__module__": "orthanc", "__doc__": doc, **values})


#: ``orthanc.ChangeType`` values by name, for the server side.
CHANGE = ENUMERATIONS["ChangeType"][1]
#: ``orthanc.ResourceType.NONE``: changes that are not about a resource.
NO_RESOURCE = ENUMERATIONS["ResourceType"][1]["NONE"]
#: ``orthanc.InstanceOrigin`` value of each :class:`server.store.Origin` kind.
ORIGINS = {"DicomProtocol": 2, "RestApi": 3, "Plugins": 4, "Lua": 5, "WebDav": 6}
#: ``orthanc.ReceivedInstanceAction`` values by name.
RECEIVED = ENUMERATIONS["ReceivedInstanceAction"][1]
#: ``orthanc.ValueRepresentation`` value -> the VR's two letters.
VR_NAMES = {value: name for name, value in ENUMERATIONS["ValueRepresentation"][1].items()}
#: ``orthanc.ErrorCode`` values by name (the server's ``ErrorCode`` names only those it raises).
CODES = ENUMERATIONS["ErrorCode"][1]
