"""Orthanc's main DICOM tags: the tags indexed for each level of the hierarchy.

The lists are those of Orthanc 1.10 (database schema 6), so that the
``MainDicomTags`` of every resource equal what Orthanc shows.
"""

from __future__ import annotations

from enum import IntEnum

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


def main_tags_signature(level: Level) -> str:
    """Orthanc 1.11's ``GetMainDicomTagsSignature``: the level's main tags, sorted, joined by
    semicolons; stored with each resource, it tells which resources a ``/reconstruct`` would
    update after the main tags changed."""
    return ";".join(sorted(format_tag(tag) for tag in BY_LEVEL[level]))
