"""Synthetic, deterministic CT-like dataset for the benchmark.

The files imitate what a scanner sends in practice (one slice per instance, ~34 KB,
16-bit uncompressed pixels, the usual CT tags) so that ingest cost is dominated by
the same work as in production: parsing, indexing and writing modest files. Every
value derives from a seed, so two runs (and both servers) see byte-identical input.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROWS = COLUMNS = 128
PATIENTS = 5
STUDIES_PER_PATIENT = 2
SERIES_PER_STUDY = 2
SERIES_COUNT = PATIENTS * STUDIES_PER_PATIENT * SERIES_PER_STUDY
FAMILY_NAMES = ("SMITH", "DOE", "SCHMIDT", "MARTIN", "ROSSI")
GIVEN_NAMES = ("ANNA", "JOHN", "KLAUS", "CLAIRE", "MARCO")
FIRST_STUDY_DATE = datetime.date(2020, 1, 6)


@dataclass(frozen=True)
class Series:
    """Identity of one series and of the study and patient it belongs to."""

    patient_index: int
    study_index: int
    series_index: int
    seed: int

    @property
    def patient_id(self) -> str:
        return f"BENCH{self.patient_index:03d}"

    @property
    def patient_name(self) -> str:
        index = self.patient_index
        return f"{FAMILY_NAMES[index % len(FAMILY_NAMES)]}^{GIVEN_NAMES[index % len(GIVEN_NAMES)]}"

    @property
    def study_date(self) -> datetime.date:
        """Studies are 30 days apart per patient and 7 days apart per study, so date ranges select subsets."""
        return FIRST_STUDY_DATE + datetime.timedelta(days=30 * self.patient_index + 7 * self.study_index)

    def uid(self, *parts: object) -> str:
        return generate_uid(entropy_srcs=[str(self.seed), *map(str, parts)])

    @property
    def study_uid(self) -> str:
        return self.uid("study", self.patient_index, self.study_index)

    @property
    def series_uid(self) -> str:
        return self.uid("series", self.patient_index, self.study_index, self.series_index)


@dataclass
class Corpus:
    """What the generator wrote, and the facts the queries need to know their expected answers."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    sop_instance_uids: list[str] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)  # only those that received instances


def all_series(seed: int) -> list[Series]:
    return [
        Series(patient, study, series, seed)
        for patient in range(PATIENTS)
        for study in range(STUDIES_PER_PATIENT)
        for series in range(SERIES_PER_STUDY)
    ]


def phantom(rng: random.Random) -> int:
    """A water cylinder in air, as one big integer of little-endian 16-bit pixels.

    Pixel values are multiples of 16 so that per-slice noise can be OR-ed into the low
    bits of the whole image at once (see ``noisy_pixels``) instead of pixel by pixel.
    """
    radius = rng.randint(40, 56)
    centre_x, centre_y = COLUMNS // 2 + rng.randint(-6, 6), ROWS // 2 + rng.randint(-6, 6)
    water, air = 1024, 0  # stored values; with RescaleIntercept -1024 these are 0 HU and -1024 HU
    pixels = bytearray()
    for y in range(ROWS):
        for x in range(COLUMNS):
            inside = (x - centre_x) ** 2 + (y - centre_y) ** 2 <= radius**2
            pixels += (water if inside else air).to_bytes(2, "little")
    return int.from_bytes(pixels, "little")


NOISE_MASK = int.from_bytes(b"\x0f\x00" * (ROWS * COLUMNS), "little")


def noisy_pixels(base: int, rng: random.Random) -> bytes:
    """Add 0-15 of noise to every pixel so that no two slices are identical (defeats any deduplication)."""
    noise = int.from_bytes(rng.randbytes(2 * ROWS * COLUMNS), "little") & NOISE_MASK
    return (base | noise).to_bytes(2 * ROWS * COLUMNS, "little")


def ct_slice(series: Series, number: int, sop_uid: str, pixels: bytes) -> Dataset:
    """One axial CT slice with the tags a real scanner would fill."""
    ds = Dataset()
    date = series.study_date.strftime("%Y%m%d")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = f"{8 + series.study_index:02d}3000"
    series_time = f"{8 + series.study_index:02d}{31 + series.series_index:02d}00"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = series_time
    ds.AccessionNumber = f"ACC{series.patient_index:03d}{series.study_index:02d}"
    ds.Modality = "CT"
    ds.Manufacturer = "Isengard Bench"
    ds.InstitutionName = "Bench Hospital"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StudyDescription = f"CT CHEST {series.study_index + 1}"
    ds.SeriesDescription = ("AXIAL 5mm", "AXIAL 1mm")[series.series_index % 2]
    ds.ManufacturerModelName = "Synthetic CT"
    ds.PatientName = series.patient_name
    ds.PatientID = series.patient_id
    ds.PatientBirthDate = f"{1950 + 7 * series.patient_index}0315"
    ds.PatientSex = "MF"[series.patient_index % 2]
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "5.0"
    ds.KVP = "120"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = series.study_uid
    ds.SeriesInstanceUID = series.series_uid
    ds.StudyID = str(series.study_index + 1)
    ds.SeriesNumber = series.series_index + 1
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = number
    ds.ImagePositionPatient = ["-162.5", "-162.5", f"{-5.0 * number:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = series.uid("frame", series.patient_index, series.study_index)
    ds.SliceLocation = f"{-5.0 * number:.1f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.PixelSpacing = ["2.5390625", "2.5390625"]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.PixelData = pixels
    ds["PixelData"].VR = "OW"
    return ds


def file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "ISENGARD_BENCH"
    return meta


def series_of(index: int, count: int, series: list[Series]) -> Series:
    """Contiguous runs of instances per series, as a scanner would send them."""
    return series[index * len(series) // count]


def generate(folder: Path, count: int, seed: int = 1) -> Corpus:
    """Write ``count`` files to ``folder`` (flat, so storescu can scan it) and describe them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    series = all_series(seed)
    bases = {s: phantom(rng) for s in series}
    result = Corpus(folder=folder)
    numbers: dict[Series, int] = {}
    for index in range(count):
        owner = series_of(index, count, series)
        numbers[owner] = numbers.get(owner, 0) + 1
        sop_uid = owner.uid("instance", index)
        ds = ct_slice(owner, numbers[owner], sop_uid, noisy_pixels(bases[owner], rng))
        ds.file_meta = file_meta(sop_uid)
        path = folder / f"{index:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        result.files.append(path)
        result.sop_instance_uids.append(sop_uid)
    result.series = [s for s in series if s in numbers]
    return result
