"""Labels (Orthanc 1.12): free names attached to patients, studies, series and instances.

They live in the index's ``Labels`` table (deleted with their resource by the foreign
key's cascade), so that ``/tools/find`` can filter on them in SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from server.errors import ErrorCode, OrthancError
from server.storage.database import Connection
from server.storage.index import Index, select_in

_VALID = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: ``LabelsConstraint`` values of ``/tools/find``.
CONSTRAINTS = ("All", "Any", "None")


def check_label(label: str) -> str:
    """Orthanc's ``CheckValidLabel``: 1 to 64 ASCII letters, digits, ``_`` or ``-`` (the
    64 is the MySQL index's key limit, kept so that databases can move between backends)."""
    if not _VALID.fullmatch(label):
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE,
                           "A label must be a non-empty, alphanumeric string, possibly with "
                           "'_' or '-' characters, with maximum 64 characters, but got: "
                           + label)
    return label


class Labels:
    """The label operations of the index (kept out of :class:`Index`, which they only use)."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def of(self, internal_id: int) -> list[str]:
        """The labels of a resource, sorted as Orthanc's ``std::set`` lists them."""
        with self.index.reading() as db:
            return self.of_in(db, internal_id)

    def of_many(self, internal_ids: list[int]) -> dict[int, list[str]]:
        """:meth:`of` for many resources in few queries."""
        result: dict[int, list[str]] = {i: [] for i in internal_ids}
        with self.index.reading() as db:
            for rid, label in select_in(db, "SELECT id, label FROM Labels WHERE id IN ({}) ORDER BY label",
                                        internal_ids):
                result[rid].append(label)
        return result

    @staticmethod
    def of_in(db: Connection, internal_id: int) -> list[str]:
        return [r[0] for r in db.execute(
            "SELECT label FROM Labels WHERE id=? ORDER BY label", (internal_id,))]

    def add(self, internal_id: int, label: str) -> None:
        """Adding a label a resource already has is no error."""
        check_label(label)
        with self.index.transaction() as db:
            self._require(db, internal_id)
            db.execute("INSERT OR IGNORE INTO Labels(id, label) VALUES(?, ?)",
                       (internal_id, label))

    def add_many(self, internal_id: int, labels: Iterable[str]) -> None:
        for label in labels:
            self.add(internal_id, label)

    def remove(self, internal_id: int, label: str) -> None:
        """Removing a label the resource does not have is no error either."""
        check_label(label)
        with self.index.transaction() as db:
            self._require(db, internal_id)
            db.execute("DELETE FROM Labels WHERE id=? AND label=?", (internal_id, label))

    def all(self) -> list[str]:
        """``/tools/labels``: every label some resource has."""
        with self.index.reading() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT label FROM Labels ORDER BY label")]

    @staticmethod
    def _require(db: Connection, internal_id: int) -> None:
        """The resource may have been deleted since the handler looked it up."""
        if db.execute("SELECT 1 FROM Resources WHERE internalId=?",
                      (internal_id,)).fetchone() is None:
            raise OrthancError(ErrorCode.UNKNOWN_RESOURCE)


def sql_filter(labels: list[str], constraint: str) -> tuple[str, list[object]]:
    """A condition on ``Resources.internalId`` for ``/tools/find``'s ``Labels`` and
    ``LabelsConstraint``: All (every label), Any (at least one), None (none of them;
    with an empty list, no label at all, as Orthanc 1.12.11).  An empty list with All or
    Any constrains nothing: the empty string then."""
    unique = sorted(set(labels))
    if not unique:
        if constraint == "None":
            return "NOT EXISTS (SELECT 1 FROM Labels l WHERE l.id=Resources.internalId)", []
        return "", []
    marks = ",".join("?" * len(unique))
    if constraint == "All":
        return (f"(SELECT COUNT(*) FROM Labels l WHERE l.id=Resources.internalId "
                f"AND l.label IN ({marks}))={len(unique)}", list(unique))
    exists = (f"EXISTS (SELECT 1 FROM Labels l WHERE l.id=Resources.internalId "
              f"AND l.label IN ({marks}))")
    if constraint == "Any":
        return exists, list(unique)
    return "NOT " + exists, list(unique)
