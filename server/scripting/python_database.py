"""The ``orthanc`` module's database functions of orthanc-python 6.0/7.0: key-value stores,
queues (with reservations) and ``SetStableStatus``.

They are mixed into :class:`server.scripting.python_api._Functions` and keep the
plugin's names, argument order and answers: values are ``bytes`` (``str`` is taken as
UTF-8), a missing value is ``None``, ``SetStableStatus`` answers ``(0, changed)``.
The plugin's hand-written wrappers (``GetKeyValue``, ``DequeueValue``,
``ReserveQueueValue``, ``GetQueueSize``, ``SetStableStatus``) report a failure as a
``TypeError`` with Orthanc's description; the generated ones raise
``orthanc.OrthancException``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from server.errors import DESCRIPTIONS, ErrorCode, OrthancError
from server.key_values import KeyValueStores
from server.scripting.python_enums import ENUMERATIONS

T = TypeVar("T")

_ORIGINS = ENUMERATIONS["QueueOrigin"][1]
_STABLE = ENUMERATIONS["StableStatus"][1]


class DatabaseHost(Protocol):
    """What the database functions need from the server."""

    @property
    def key_values(self) -> KeyValueStores: ...

    def set_stable_status(self, resource_id: str, stable: bool) -> bool | None: ...


def _exception(code: int) -> Exception:
    """An ``orthanc.OrthancException`` (imported late: python_api imports this module)."""
    from server.scripting.python_api import orthanc_exception
    return orthanc_exception(code)


def _raising(work: Callable[[], T]) -> T:
    """A generated wrapper's failure: ``orthanc.OrthancException(code, description)``."""
    try:
        return work()
    except OrthancError as error:
        raise _exception(int(error.code)) from None


def _type_error(work: Callable[[], T]) -> T:
    """A hand-written wrapper's failure: ``TypeError(description)``."""
    try:
        return work()
    except OrthancError as error:
        raise TypeError(DESCRIPTIONS.get(int(error.code), "Internal error")) from None


def _value(value: Any) -> bytes:
    """A value to store: non-empty ``bytes`` (or ``str``), as Orthanc requires."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes or str")
    if not value:
        raise _exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
    return bytes(value)


def _from_back(origin: Any) -> bool:
    if origin not in _ORIGINS.values() or isinstance(origin, bool):
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE)
    return bool(origin == _ORIGINS["BACK"])


class KeysValuesIterator:
    """``orthanc.CreateKeysValuesIterator(store_id)``: the pairs of a store in the keys' order.

    ``Next()`` answers True while a pair is available (then ``GetKey()``/``GetValue()``
    read it), False at the end; calling it again after that is an error, as in Orthanc.
    """

    def __init__(self, pairs: Iterator[tuple[str, bytes]]) -> None:
        self._pairs = pairs
        self._current: tuple[str, bytes] | None = None
        self._done = False

    def Next(self) -> bool:
        if self._done:
            raise TypeError(DESCRIPTIONS[int(ErrorCode.BAD_SEQUENCE_OF_CALLS)])
        self._current = _type_error(lambda: next(self._pairs, None))
        self._done = self._current is None
        return not self._done

    def _pair(self) -> tuple[str, bytes]:
        if self._current is None:
            raise _exception(ErrorCode.BAD_SEQUENCE_OF_CALLS)
        return self._current

    def GetKey(self) -> str:
        return self._pair()[0]

    def GetValue(self) -> bytes:
        return self._pair()[1]


KeysValuesIterator.__module__ = "orthanc"


class DatabaseFunctions:
    """Mixin of the module-level database functions."""

    _host: DatabaseHost

    @property
    def _stores(self) -> KeyValueStores:
        stores: KeyValueStores = self._host.key_values
        return stores

    # -- key-value stores ------------------------------------------------------------

    def StoreKeyValue(self, store_id: str, key: str, value: bytes) -> None:
        data = _value(value)
        _raising(lambda: self._stores.store(store_id, key, data))

    def GetKeyValue(self, store_id: str, key: str) -> bytes | None:
        return _type_error(lambda: self._stores.get(store_id, key))

    def DeleteKeyValue(self, store_id: str, key: str) -> None:
        _raising(lambda: self._stores.delete(store_id, key))

    def CreateKeysValuesIterator(self, store_id: str) -> KeysValuesIterator:
        if not store_id:
            raise _exception(ErrorCode.PARAMETER_OUT_OF_RANGE)
        return KeysValuesIterator(self._stores.pairs(store_id))

    # -- queues ----------------------------------------------------------------------

    def EnqueueValue(self, queue_id: str, value: bytes) -> None:
        data = _value(value)
        _raising(lambda: self._stores.enqueue(queue_id, data))

    def DequeueValue(self, queue_id: str, origin: int) -> bytes | None:
        """Deprecated by Orthanc for ``ReserveQueueValue``: a consumer that fails loses the value."""
        return _type_error(lambda: self._stores.dequeue(queue_id, _from_back(origin)))

    def ReserveQueueValue(self, queue_id: str, origin: int,
                          release_timeout: int) -> tuple[bytes, int] | tuple[None, None]:
        """``(value, value_id)``, hidden from the other consumers for ``release_timeout`` seconds
        unless acknowledged; ``(None, None)`` when the queue has nothing available."""
        found = _type_error(lambda: self._stores.reserve(queue_id, _from_back(origin), int(release_timeout)))
        return (None, None) if found is None else (found[1], found[0])

    def AcknowledgeQueueValue(self, queue_id: str, value_id: int) -> None:
        _raising(lambda: self._stores.acknowledge(queue_id, int(value_id)))

    def GetQueueSize(self, queue_id: str) -> int:
        return _type_error(lambda: self._stores.size(queue_id))

    # -- stability -------------------------------------------------------------------

    def SetStableStatus(self, resource_id: str, stable_status: int) -> tuple[int, int]:
        """``(0, 1)`` when the status changed, ``(0, 0)`` otherwise (an unknown resource too);
        any status but ``StableStatus.STABLE`` means unstable, as in Orthanc."""
        if not isinstance(resource_id, str) or not isinstance(stable_status, int):
            raise TypeError("Please provide a string containing the resourceId and a integer with 0 for "
                            "stable and 1 for unstable")
        changed = self._host.set_stable_status(resource_id, stable_status == _STABLE["STABLE"])
        return 0, int(bool(changed))
