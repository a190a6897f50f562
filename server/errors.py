"""Orthanc's error codes, their descriptions and the HTTP status each maps to.

The table is Orthanc 1.10.1's (``Orthanc --errors``), so that clients that read
``OrthancStatus`` from an error body see the codes they already know.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

DESCRIPTIONS: dict[int, str] = {
    -1: 'Internal error',
    0: 'Success',
    1: 'Error encountered within the plugin engine',
    2: 'Not implemented yet',
    3: 'Parameter out of range',
    4: 'The server hosting Orthanc is running out of memory',
    5: 'Bad type for a parameter',
    6: 'Bad sequence of calls',
    7: 'Accessing an inexistent item',
    8: 'Bad request',
    9: 'Error in the network protocol',
    10: 'Error while calling a system command',
    11: 'Error with the database engine',
    12: 'Badly formatted URI',
    13: 'Inexistent file',
    14: 'Cannot write to file',
    15: 'Bad file format',
    16: 'Timeout',
    17: 'Unknown resource',
    18: 'Incompatible version of the database',
    19: 'The file storage is full',
    20: 'Corrupted file (e.g. inconsistent MD5 hash)',
    21: 'Inexistent tag',
    22: 'Cannot modify a read-only data structure',
    23: 'Incompatible format of the images',
    24: 'Incompatible size of the images',
    25: 'Error while using a shared library (plugin)',
    26: 'Plugin invoking an unknown service',
    27: 'Unknown DICOM tag',
    28: 'Cannot parse a JSON document',
    29: 'Bad credentials were provided to an HTTP request',
    30: 'Badly formatted font file',
    31: 'The plugin implementing a custom database back-end does not fulfill the proper interface',
    32: 'Error in the plugin implementing a custom storage area',
    33: 'The request is empty',
    34: 'Cannot send a response which is acceptable according to the Accept HTTP header',
    35: 'Cannot handle a NULL pointer',
    36: 'The database is currently not available (probably a transient situation)',
    37: 'This job was canceled',
    38: 'Geometry error encountered in Stone',
    39: 'Cannot initialize SSL encryption, check out your certificates',
    40: 'Calling a function that has been removed from the Orthanc Framework',
    41: 'Incorrect range request',
    42: 'Database could not serialize access due to concurrent update, the transaction should be retried',
    43: 'A bad revision number was provided, which might indicate conflict between multiple writers',
    1000: 'SQLite: The database is not opened',
    1001: 'SQLite: Connection is already open',
    1002: 'SQLite: Unable to open the database',
    1003: 'SQLite: This cached statement is already being referred to',
    1004: 'SQLite: Cannot execute a command',
    1005: 'SQLite: Rolling back a nonexistent transaction (have you called Begin()?)',
    1006: 'SQLite: Committing a nonexistent transaction',
    1007: 'SQLite: Unable to register a function',
    1008: 'SQLite: Unable to flush the database',
    1009: 'SQLite: Cannot run a cached statement',
    1010: 'SQLite: Cannot step over a cached statement',
    1011: 'SQLite: Bing a value while out of range (serious error)',
    1012: 'SQLite: Cannot prepare a cached statement',
    1013: 'SQLite: Beginning the same transaction twice',
    1014: 'SQLite: Failure when committing the transaction',
    1015: 'SQLite: Cannot start a transaction',
    2000: 'The directory to be created is already occupied by a regular file',
    2001: 'Unable to create a subdirectory or a file in the file storage',
    2002: 'The specified path does not point to a directory',
    2003: 'The TCP port of the HTTP server is privileged or already in use',
    2004: 'The TCP port of the DICOM server is privileged or already in use',
    2005: 'This HTTP status is not allowed in a REST API',
    2006: 'The specified path does not point to a regular file',
    2007: 'Unable to get the path to the executable',
    2008: 'Cannot create a directory',
    2009: 'An application entity title (AET) cannot be empty or be longer than 16 characters',
    2010: 'No request handler factory for DICOM C-FIND SCP',
    2011: 'No request handler factory for DICOM C-MOVE SCP',
    2012: 'No request handler factory for DICOM C-STORE SCP',
    2013: 'No application entity filter',
    2014: 'DicomUserConnection: Unable to find the SOP class and instance',
    2015: 'DicomUserConnection: No acceptable presentation context for modality',
    2016: 'DicomUserConnection: The C-FIND command is not supported by the remote SCP',
    2017: 'DicomUserConnection: The C-MOVE command is not supported by the remote SCP',
    2018: 'Cannot store an instance',
    2019: 'Only string values are supported when creating DICOM instances',
    2020: 'Trying to override a value inherited from a parent module',
    2021: 'Use "Content" to inject an image into a new DICOM instance',
    2022: 'No payload is present for one instance in the series',
    2023: 'The payload of the DICOM instance must be specified according to Data URI scheme',
    2024: 'Trying to attach a new DICOM instance to an inexistent resource',
    2025: 'Trying to attach a new DICOM instance to an instance (must be a series, study or patient)',
    2026: 'Unable to get the encoding of the parent resource',
    2027: 'Unknown modality',
    2028: 'Bad ordering of filters in a job',
    2029: 'Cannot convert the given JSON object to a Lua table',
    2030: 'Cannot create the Lua context',
    2031: 'Cannot execute a Lua command',
    2032: 'Arguments cannot be pushed after the Lua function is executed',
    2033: 'The Lua function does not give the expected number of outputs',
    2034: 'The Lua function is not a predicate (only true/false outputs allowed)',
    2035: 'The Lua function does not return a string',
    2036: 'Another plugin has already registered a custom storage area',
    2037: 'Another plugin has already registered a custom database back-end',
    2038: 'Plugin trying to call the database during its initialization',
    2039: 'Orthanc has been built without SSL support',
    2040: 'Unable to order the slices of the series',
    2041: 'No request handler factory for DICOM C-Find Modality SCP',
    2042: 'Cannot override the value of a tag that already exists',
    2043: 'No request handler factory for DICOM N-ACTION SCP (storage commitment)',
    2044: 'No request handler factory for DICOM C-GET SCP',
    2045: 'DicomUserConnection: The C-GET command is not supported by the remote SCP',
    3000: 'Unsupported media type',
}


class ErrorCode(IntEnum):
    """The codes the server raises by name; every other code stays a plain int."""

    INTERNAL = -1
    SUCCESS = 0
    PLUGIN = 1
    NOT_IMPLEMENTED = 2
    PARAMETER_OUT_OF_RANGE = 3
    BAD_PARAMETER_TYPE = 5
    BAD_SEQUENCE_OF_CALLS = 6
    INEXISTENT_ITEM = 7
    BAD_REQUEST = 8
    NETWORK_PROTOCOL = 9
    DATABASE = 11
    URI_SYNTAX = 12
    INEXISTENT_FILE = 13
    CANNOT_WRITE_FILE = 14
    BAD_FILE_FORMAT = 15
    TIMEOUT = 16
    UNKNOWN_RESOURCE = 17
    INCOMPATIBLE_DATABASE_VERSION = 18
    FULL_STORAGE = 19
    CORRUPTED_FILE = 20
    INEXISTENT_TAG = 21
    READ_ONLY = 22
    UNKNOWN_DICOM_TAG = 27
    BAD_JSON = 28
    UNAUTHORIZED = 29
    NOT_ACCEPTABLE = 34
    DATABASE_UNAVAILABLE = 36
    CANCELED_JOB = 37
    BAD_RANGE = 41
    DATABASE_CANNOT_SERIALIZE = 42
    REVISION = 43
    FORBIDDEN_ACCESS = 44
    DUPLICATE_RESOURCE = 45
    NO_PRESENTATION_CONTEXT = 2015
    CANNOT_STORE_INSTANCE = 2018
    CREATE_DICOM_NOT_STRING = 2019
    CREATE_DICOM_OVERRIDE_TAG = 2020
    CREATE_DICOM_USE_CONTENT = 2021
    CREATE_DICOM_NO_PAYLOAD = 2022
    CREATE_DICOM_USE_DATA_URI_SCHEME = 2023
    CREATE_DICOM_BAD_PARENT = 2024
    CREATE_DICOM_PARENT_IS_INSTANCE = 2025
    CREATE_DICOM_PARENT_ENCODING = 2026
    UNKNOWN_MODALITY = 2027
    BAD_JOB_ORDERING = 2028
    JSON_TO_LUA_TABLE = 2029
    CANNOT_CREATE_LUA = 2030
    CANNOT_EXECUTE_LUA = 2031
    LUA_ALREADY_EXECUTED = 2032
    LUA_BAD_OUTPUT = 2033
    NOT_LUA_PREDICATE = 2034
    LUA_RETURNS_NO_STRING = 2035
    STORAGE_AREA_PLUGIN = 2036
    DATABASE_PLUGIN = 2037
    SSL_INITIALIZATION = 2039
    DISCONTINUED_ABI = 2040
    DICOM_GET_UNAVAILABLE = 2045
    UNSUPPORTED_MEDIA_TYPE = 3000


HTTP_STATUS: dict[int, int] = {
    3: 400, 5: 400, 7: 404, 19: 507, 8: 400, 12: 400, 13: 404, 15: 400, 17: 404, 21: 404,
    28: 400, 29: 401, 34: 406, 36: 503, 41: 416, 42: 503, 43: 409, 44: 403,
    2019: 400, 2020: 400, 2021: 400, 2022: 400, 2023: 400, 2024: 400, 2025: 400,
    3000: 415,
}


def describe(code: int) -> str:
    """Orthanc's one-line description of ``code``."""
    return DESCRIPTIONS.get(int(code), "Internal error")


def status_for(code: int) -> int:
    """The HTTP status Orthanc answers for ``code`` (500 when it has none)."""
    return HTTP_STATUS.get(int(code), 500)


class OrthancError(Exception):
    """An error that the REST layer turns into Orthanc's JSON error body.

    ``details`` is the free text Orthanc puts in ``Details``; ``http_status``
    overrides the status derived from the code where Orthanc does so; ``payload``
    is Orthanc 1.12.10's ``ErrorPayload`` (``{Type, Content}``: the DIMSE status of a
    failed C-STORE/C-FIND/C-MOVE/C-GET, the ``Details`` of a failed retrieve job).
    """

    def __init__(self, code: int, details: str | None = None,
                 http_status: int | None = None, payload: dict[str, Any] | None = None) -> None:
        super().__init__(details or describe(code))
        self.code = int(code)
        self.details = details
        self.status = http_status if http_status is not None else status_for(code)
        self.payload = payload

    @property
    def description(self) -> str:
        return describe(self.code)


def dimse_payload(status: int) -> dict[str, Any]:
    """The ``ErrorPayload`` of a DIMSE failure status (Orthanc's ``MakeDimseErrorStatusPayload``)."""
    return {"Type": "Dimse", "Content": {"DimseErrorStatus": int(status)}}
