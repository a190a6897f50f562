"""Orthanc's main DICOM tags: the tags indexed for each level of the hierarchy.

The default lists are Orthanc 1.11's (database schema 6), plus the tags Orthanc 1.12.5
added when the reported API level has them; :func:`configure` adds the
``ExtraMainDicomTags`` of the configuration.  Like Orthanc's ``DicomMap`` singleton,
the lists are process-wide: the composition root configures them once at start-up,
before anything is indexed, and every reader sees the same lists.
"""

from __future__ import annotations

from enum import IntEnum

import server
from server.errors import ErrorCode, OrthancError


class Level(IntEnum):
    """Resource levels, with Orthanc's ResourceType numbering."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3

    @property
    def title(self) -> str:
        return self.name.capitalize()

    @property
    def plural(self) -> str:
        return {Level.PATIENT: "patients", Level.STUDY: "studies", Level.SERIES: "series",
                Level.INSTANCE: "instances"}[self]

    @classmethod
    def parse(cls, text: str) -> Level:
        """Orthanc's ``StringToResourceType`` (any case, singular or plural, ``Image`` for an
        instance); ValueError otherwise.  Requests go through :func:`parse_level`."""
        level = _LEVEL_NAMES.get(text.upper())
        if level is None:
            raise ValueError(text)
        return level


#: The spellings Orthanc gives a level, upper-cased.
_LEVEL_NAMES = {"PATIENT": Level.PATIENT, "PATIENTS": Level.PATIENT, "STUDY": Level.STUDY,
                "STUDIES": Level.STUDY, "SERIES": Level.SERIES, "INSTANCE": Level.INSTANCE,
                "IMAGE": Level.INSTANCE, "INSTANCES": Level.INSTANCE, "IMAGES": Level.INSTANCE}


def parse_level(text: str) -> Level:
    """The one level parser of requests (REST fields and arguments, C-FIND/C-MOVE levels):
    Orthanc's "Invalid resource type" (parameter out of range) for anything else."""
    try:
        return Level.parse(text)
    except ValueError:
        raise OrthancError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Invalid resource type '{text}'") from None


Tag = tuple[int, int]

#: The tags Orthanc computes from the index rather than reads from a file (C-FIND answers,
#: ``RequestedTags``).
SOP_CLASSES_IN_STUDY: Tag = (0x0008, 0x0062)
PATIENT_STUDIES: Tag = (0x0020, 0x1200)
PATIENT_SERIES: Tag = (0x0020, 0x1202)
PATIENT_INSTANCES: Tag = (0x0020, 0x1204)
STUDY_SERIES: Tag = (0x0020, 0x1206)
STUDY_INSTANCES: Tag = (0x0020, 0x1208)
SERIES_INSTANCES: Tag = (0x0020, 0x1209)

PATIENT_TAGS: dict[Tag, str] = {
    (0x0010, 0x0010): "PatientName",
    (0x0010, 0x0030): "PatientBirthDate",
    (0x0010, 0x0040): "PatientSex",
    (0x0010, 0x1000): "OtherPatientIDs",
    (0x0010, 0x0020): "PatientID",
}

STUDY_TAGS: dict[Tag, str] = {
    (0x0008, 0x0020): "StudyDate",
    (0x0008, 0x0030): "StudyTime",
    (0x0020, 0x0010): "StudyID",
    (0x0008, 0x1030): "StudyDescription",
    (0x0008, 0x0050): "AccessionNumber",
    (0x0020, 0x000D): "StudyInstanceUID",
    (0x0032, 0x1060): "RequestedProcedureDescription",
    (0x0008, 0x0080): "InstitutionName",
    (0x0032, 0x1032): "RequestingPhysician",
    (0x0008, 0x0090): "ReferringPhysicianName",
}

SERIES_TAGS: dict[Tag, str] = {
    (0x0008, 0x0021): "SeriesDate",
    (0x0008, 0x0031): "SeriesTime",
    (0x0008, 0x0060): "Modality",
    (0x0008, 0x0070): "Manufacturer",
    (0x0008, 0x1010): "StationName",
    (0x0008, 0x103E): "SeriesDescription",
    (0x0018, 0x0015): "BodyPartExamined",
    (0x0018, 0x0024): "SequenceName",
    (0x0018, 0x1030): "ProtocolName",
    (0x0020, 0x0011): "SeriesNumber",
    (0x0018, 0x1090): "CardiacNumberOfImages",
    (0x0020, 0x1002): "ImagesInAcquisition",
    (0x0020, 0x0105): "NumberOfTemporalPositions",
    (0x0054, 0x0081): "NumberOfSlices",
    (0x0054, 0x0101): "NumberOfTimeSlices",
    (0x0020, 0x000E): "SeriesInstanceUID",
    (0x0020, 0x0037): "ImageOrientationPatient",
    (0x0054, 0x1000): "SeriesType",
    (0x0008, 0x1070): "OperatorsName",
    (0x0040, 0x0254): "PerformedProcedureStepDescription",
    (0x0018, 0x1400): "AcquisitionDeviceProcessingDescription",
    (0x0018, 0x0010): "ContrastBolusAgent",
}

INSTANCE_TAGS: dict[Tag, str] = {
    (0x0008, 0x0012): "InstanceCreationDate",
    (0x0008, 0x0013): "InstanceCreationTime",
    (0x0020, 0x0012): "AcquisitionNumber",
    (0x0054, 0x1330): "ImageIndex",
    (0x0020, 0x0013): "InstanceNumber",
    (0x0028, 0x0008): "NumberOfFrames",
    (0x0020, 0x0100): "TemporalPositionIdentifier",
    (0x0008, 0x0018): "SOPInstanceUID",
    (0x0020, 0x0032): "ImagePositionPatient",
    (0x0020, 0x4000): "ImageComments",
    (0x0020, 0x0037): "ImageOrientationPatient",
}

#: Orthanc 1.11's lists, whose signatures an unsigned resource is assumed to have.
_DEFAULTS_1_11: dict[Level, dict[Tag, str]] = {
    Level.PATIENT: dict(PATIENT_TAGS), Level.STUDY: dict(STUDY_TAGS),
    Level.SERIES: dict(SERIES_TAGS), Level.INSTANCE: dict(INSTANCE_TAGS),
}

#: The default main tags Orthanc 1.12.5 (API 26) added, for its default QIDO-RS queries.
_ADDED_1_12_5: dict[Level, dict[Tag, str]] = {
    Level.STUDY: {(0x0008, 0x0201): "TimezoneOffsetFromUTC"},
    Level.SERIES: {(0x0008, 0x0201): "TimezoneOffsetFromUTC",
                   (0x0040, 0x0244): "PerformedProcedureStepStartDate",
                   (0x0040, 0x0245): "PerformedProcedureStepStartTime",
                   (0x0040, 0x0275): "RequestAttributesSequence"},
}

BY_LEVEL: dict[Level, dict[Tag, str]] = {
    Level.PATIENT: PATIENT_TAGS,
    Level.STUDY: STUDY_TAGS,
    Level.SERIES: SERIES_TAGS,
    Level.INSTANCE: INSTANCE_TAGS,
}

#: Every indexed tag, with its keyword.
ALL_TAGS: dict[Tag, str] = {t: n for tags in BY_LEVEL.values() for t, n in tags.items()}

#: Keyword -> tag, over every level.
BY_NAME: dict[str, Tag] = {n: t for t, n in ALL_TAGS.items()}

#: The main tags that are sequences: kept in the ``MainDicomSequences`` metadata of their
#: resource (Orthanc 1.11.1), not in the ``MainDicomTags`` table.
SEQUENCES: set[Tag] = set()

#: The tag that identifies a resource of each level (its DICOM UID, or PatientID).
IDENTIFIER: dict[Level, Tag] = {
    Level.PATIENT: (0x0010, 0x0020),
    Level.STUDY: (0x0020, 0x000D),
    Level.SERIES: (0x0020, 0x000E),
    Level.INSTANCE: (0x0008, 0x0018),
}

#: The tags Orthanc 1.10.1 also indexes normalized (its ``DicomIdentifiers``): a find that
#: ignores case matches them the way it matches files, accents included.
FOLDED_IDENTIFIERS = frozenset({(0x0010, 0x0020), (0x0010, 0x0010), (0x0010, 0x0030), (0x0020, 0x000D),
                                (0x0008, 0x0050), (0x0008, 0x1030), (0x0008, 0x0020), (0x0020, 0x000E),
                                (0x0008, 0x0018)})


def upper_case(text: str) -> str:
    """Orthanc's ``ToUpperCaseWithAccents``: each character to its upper case, accents kept
    (one character for one, so ``ß`` stays ``ß``)."""
    if text.isascii():
        return text.upper()
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def format_tag(tag: Tag) -> str:
    return f"{tag[0]:04x},{tag[1]:04x}"


def _signature(tags: dict[Tag, str]) -> str:
    return ";".join(sorted(format_tag(tag) for tag in tags))


def main_tags_signature(level: Level) -> str:
    """Orthanc 1.11's ``GetMainDicomTagsSignature``: the level's main tags, sorted, joined by
    semicolons; stored with each resource, it tells which resources a ``/reconstruct`` would
    update after the main tags changed.  Made once per :func:`configure` (each ``/system``
    shows the four, each ingest stores them)."""
    cached = _signatures.get(level)
    if cached is None or cached[0] != generation:
        cached = _signatures[level] = (generation, _signature(BY_LEVEL[level]))
    return cached[1]


def default_signature(level: Level) -> str:
    """The signature of Orthanc 1.11's default lists: what a resource indexed without a
    ``MainDicomTagsSignature`` (by Orthanc 1.10 or earlier) was indexed with."""
    return _signature(_DEFAULTS_1_11[level])

#: Counts the calls of :func:`configure`: what is derived from the lists may be cached on it.
generation = 0
#: :func:`main_tags_signature` by level, with the generation it was made for.
_signatures: dict[Level, tuple[int, str]] = {}


def configure(extra: dict[Level, list[tuple[Tag, str, bool]]], api_version: int) -> list[str]:
    """Orthanc's ``LoadMainDicomTags``: the default lists of ``api_version`` plus the extra
    tags, each ``(tag, keyword, is_sequence)``.  Returns the warnings Orthanc logs (a tag that
    is already a main tag of its level, or of the patient for a study, is ignored)."""
    global generation
    generation += 1
    warnings: list[str] = []
    for level, tags in BY_LEVEL.items():
        tags.clear()
        tags.update(_DEFAULTS_1_11[level])
        if api_version >= 26:  # Orthanc 1.12.5
            tags.update(_ADDED_1_12_5.get(level, {}))
    SEQUENCES.clear()
    if api_version >= 26:
        SEQUENCES.add((0x0040, 0x0275))
    for level, entries in extra.items():
        for tag, name, is_sequence in entries:
            taken = BY_LEVEL[level]
            if tag in taken or (level is Level.STUDY and tag in BY_LEVEL[Level.PATIENT]):
                warnings.append(f"{name} is already defined as a standard MainDicomTags, it is "
                                "useless to include it in the ExtraMainDicomTags")
                continue
            taken[tag] = name
            if is_sequence:
                SEQUENCES.add(tag)
    ALL_TAGS.clear()
    ALL_TAGS.update({t: n for tags in BY_LEVEL.values() for t, n in tags.items()})
    BY_NAME.clear()
    BY_NAME.update({n: t for t, n in ALL_TAGS.items()})
    return warnings


configure({}, server.ORTHANC_API_VERSION)
