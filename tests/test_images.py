"""Image routes: decoded pixels against an independent decoder (dcmtk, GDCM), rendered images
against the real Orthanc 1.10.1, and what bad pixel data gets."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PIL import Image

from conftest import Isengard, dcmtk, sample

#: A configuration that loads Orthanc's GDCM plugin: Isengard then decodes JPEG 2000 as Orthanc does.
GDCM = {"Plugins": ["/usr/share/orthanc/plugins/libOrthancGdcm.so"]}

#: The compressed files of the test data, with the tool that decompresses them independently.
COMPRESSED = [
    ("TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm", "dcmdjpeg"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.51.dcm", "dcmdjpeg"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.57.dcm", "dcmdjpeg"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.70.dcm", "dcmdjpeg"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.80.dcm", "dcmdjpls"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.81.dcm", "dcmdjpls"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm", "gdcmconv"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.91.dcm", "gdcmconv"),
    ("TransferSyntaxes/1.2.840.10008.1.2.5.dcm", "dcmdrle"),
    ("Formats/Jpeg.dcm", "dcmdjpeg"),
    ("Formats/JpegLossless.dcm", "dcmdjpls"),
    ("Formats/Rle.dcm", "dcmdrle"),
    ("2022-11-14-RLEPlanarConfiguration.dcm", "dcmdrle"),
    ("LenaTwiceWithFragments.dcm", "dcmdjpeg"),
]


def decompressed(path: Path, tool: str, workdir: Path) -> pydicom.Dataset:
    """The file decompressed to explicit little endian by dcmtk or GDCM, read by pydicom."""
    target = workdir / f"{path.stem}.{tool}.dcm"
    if tool == "gdcmconv":
        if shutil.which("gdcmconv") is None:
            pytest.skip("GDCM's gdcmconv is not installed")
        command = ["gdcmconv", "--raw", str(path), str(target)]
    else:
        command = [dcmtk(tool), str(path), str(target)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return pydicom.dcmread(target)


def numpy_frame(server: Isengard, instance: str, frame: int = 0) -> np.ndarray:
    answer = server.get(f"/instances/{instance}/frames/{frame}/numpy?rescale=0")
    assert answer.status_code == 200, answer.text
    return np.load(io.BytesIO(answer.content))


@pytest.fixture(scope="module")
def gdcm_isengard(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = Isengard(tmp_path_factory.mktemp("images"), **GDCM).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("name", "tool"), COMPRESSED)
def test_decoded_pixels_equal_an_independent_decoder(gdcm_isengard: Isengard, tmp_path: Path,
                                                     name: str, tool: str) -> None:
    instance = gdcm_isengard.upload(sample(name))["ID"]
    reference = decompressed(sample(name), tool, tmp_path).pixel_array
    frames = int(gdcm_isengard.json(f"/instances/{instance}/frames")[-1]) + 1
    reference = reference.reshape(frames, *reference.shape[-3 if reference.ndim > 2 + (frames > 1) else -2:])
    for index in range(frames):
        got = numpy_frame(gdcm_isengard, instance, index)
        expected = reference[index].reshape(got.shape)
        difference = np.abs(got.astype(np.int64) - expected.astype(np.int64))
        assert difference.max() == 0, (name, index, int(difference.max()))


def test_frames_and_raw_frames(isengard: Isengard) -> None:
    instance = isengard.upload(sample("LenaTwiceWithFragments.dcm"))["ID"]
    assert isengard.json(f"/instances/{instance}/frames") == [0, 1]
    assert "rendered" in isengard.json(f"/instances/{instance}/frames/0")
    first = isengard.get(f"/instances/{instance}/frames/0/raw")
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/jpeg"
    assert first.content == isengard.get(f"/instances/{instance}/frames/1/raw").content
    assert Image.open(io.BytesIO(first.content)).size == (512, 512)
    gz = isengard.get(f"/instances/{instance}/frames/1/raw.gz")
    assert gz.headers["Content-Type"] == "application/gzip"
    import gzip
    assert gzip.decompress(gz.content) == first.content
    assert isengard.get(f"/instances/{instance}/frames/2/raw").status_code == 400
    assert isengard.get(f"/instances/{instance}/frames/2/preview").status_code == 404


def test_formats_by_accept(isengard: Isengard) -> None:
    instance = isengard.upload(sample("KarstenHilbertRF.dcm"))["ID"]
    url = f"/instances/{instance}/preview"
    assert Image.open(io.BytesIO(isengard.get(url).content)).format == "PNG"
    jpeg = isengard.get(url, headers={"Accept": "image/jpeg"})
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    low = isengard.get(url + "?quality=10", headers={"Accept": "image/jpeg"})
    assert len(low.content) < len(jpeg.content)
    assert isengard.get(url + "?quality=0", headers={"Accept": "image/jpeg"}).status_code == 400
    pam = isengard.get(url, headers={"Accept": "image/x-portable-arbitrarymap"})
    assert pam.content.startswith(b"P7\nWIDTH 512\nHEIGHT 464\n")
    assert isengard.get(url, headers={"Accept": "application/pdf"}).status_code == 404
    assert isengard.get(f"/instances/{instance}/image-uint16", headers={"Accept": "image/jpeg"}).status_code == 404


def test_color_images_have_no_grayscale_extraction(isengard: Isengard) -> None:
    instance = isengard.upload(sample("ColorTestMalaterre.dcm"))["ID"]
    for mode in ("image-uint8", "image-uint16", "image-int16"):
        answer = isengard.get(f"/instances/{instance}/{mode}")
        assert answer.status_code == 415
    preview = Image.open(io.BytesIO(isengard.get(f"/instances/{instance}/preview").content))
    assert preview.mode == "RGB" and preview.size == (41, 41)


def test_numpy_of_instance_and_series(isengard: Isengard) -> None:
    instance = isengard.upload(sample("MultiframeWindowing.dcm"))["ID"]
    whole = np.load(io.BytesIO(isengard.get(f"/instances/{instance}/numpy").content))
    assert whole.shape == (4, 2, 2, 1) and whole.dtype == np.float32
    series = isengard.json(f"/instances/{instance}/series")["ID"]
    zipped = np.load(io.BytesIO(isengard.get(f"/series/{series}/numpy?compress=1&rescale=0").content))
    assert zipped["arr_0"].shape == (4, 2, 2, 1) and zipped["arr_0"].dtype == np.uint16


# -- against the real Orthanc -----------------------------------------------------------------

RENDERED = [
    ("SignedCT.dcm", "/preview"),
    ("SignedCT.dcm", "/rendered"),
    ("SignedCT.dcm", "/rendered?window-center=40&window-width=400"),
    ("KarstenHilbertRF.dcm", "/rendered?width=200&smooth=1"),
    ("MultiframeWindowing.dcm", "/frames/2/rendered"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.51.dcm", "/preview"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.50.dcm", "/preview"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.80.dcm", "/image-int16"),
    ("Implicit-vr-us-palette.dcm", "/rendered"),
]


@pytest.mark.parametrize(("name", "route"), RENDERED)
def test_images_equal_the_real_orthanc(isengard: Isengard, orthanc: Any, name: str, route: str) -> None:
    data = sample(name).read_bytes()
    ours = isengard.upload(data)["ID"]
    theirs = orthanc.upload(data)["ID"]
    a = isengard.get(f"/instances/{ours}{route}")
    b = orthanc.get(f"/instances/{theirs}{route}")
    assert a.status_code == b.status_code
    if b.status_code != 200:
        return
    image_a = np.asarray(Image.open(io.BytesIO(a.content))).astype(np.int64)
    image_b = np.asarray(Image.open(io.BytesIO(b.content))).astype(np.int64)
    assert image_a.shape == image_b.shape
    if "width=" in route:
        assert np.abs(image_a - image_b).mean() < 2  # Orthanc's own resampling: close, not identical
    else:
        assert np.abs(image_a - image_b).max() <= 1
        if "rendered" not in route:
            assert a.content == b.content  # same decoding, same libpng settings: the same bytes


# -- bad input ---------------------------------------------------------------------------------

def _with_pixels(name: str, **changes: Any) -> bytes:
    ds = pydicom.dcmread(sample(name))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_corrupt_compressed_stream_answers_an_error_body(isengard: Isengard) -> None:
    ds = pydicom.dcmread(sample("TransferSyntaxes/1.2.840.10008.1.2.4.70.dcm"))
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = pydicom.encaps.encapsulate([frame[:2] + b"\x00" * 64 + frame[66:]])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    instance = isengard.upload(buffer.getvalue())["ID"]
    for route in ("preview", "rendered", "image-uint16"):
        answer = isengard.get(f"/instances/{instance}/{route}")
        assert (answer.status_code, answer.content) == (415, b"")  # Orthanc's empty 415
    matlab = isengard.get(f"/instances/{instance}/matlab")
    assert matlab.status_code == 500 and "Cannot decode" in matlab.json()["Details"]
    assert isengard.get("/system").status_code == 200


def test_enormous_frame_is_refused_before_allocating(isengard: Isengard) -> None:
    data = _with_pixels("KarstenHilbertRF.dcm", Rows=65535, Columns=65535, NumberOfFrames="60000")
    instance = isengard.upload(data)["ID"]
    assert isengard.get(f"/instances/{instance}/preview").status_code == 415
    numpy = isengard.get(f"/instances/{instance}/numpy")
    assert numpy.status_code == 500 and numpy.json()["OrthancStatus"] == 4 and "too large" in numpy.json()["Details"]
    assert isengard.get("/system").status_code == 200


@pytest.mark.parametrize("name", ["Formats/Jpeg.dcm", "Formats/JpegLossless.dcm"])
def test_coded_size_larger_than_the_image_is_refused_before_decoding(isengard: Isengard, name: str) -> None:
    ds = pydicom.dcmread(sample(name))
    frame = bytearray(next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)))
    sof = next(i for i in range(len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] in (0xC0, 0xC1, 0xC3, 0xF7))
    frame[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2
    ds.PixelData = pydicom.encaps.encapsulate([bytes(frame)])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    instance = isengard.upload(buffer.getvalue())["ID"]
    assert isengard.get(f"/instances/{instance}/preview").status_code == 415
    assert isengard.get("/system").status_code == 200


def test_truncated_native_pixel_data(isengard: Isengard) -> None:
    ds = pydicom.dcmread(sample("SignedCT.dcm"))
    ds.PixelData = ds.PixelData[:1000]
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    instance = isengard.upload(buffer.getvalue())["ID"]
    assert isengard.get(f"/instances/{instance}/preview").status_code == 415
    assert isengard.get(f"/instances/{instance}/frames/0/raw").status_code == 400


def test_png_writer_is_libpng_compatible() -> None:
    """The PNG chunks are what libpng writes: IHDR, IDATs of 8 KiB, IEND."""
    from server.dicom.pixels import Image as Decoded
    from server.dicom.pixels import PixelFormat
    from server.dicom.render import encode_png
    data = encode_png(Decoded(PixelFormat.GRAYSCALE16, (np.arange(256 * 256) % 4093).astype(np.uint16)
                              .reshape(256, 256)))
    chunks, offset = [], 8
    while offset < len(data):
        length = struct.unpack(">I", data[offset:offset + 4])[0]
        chunks.append((data[offset + 4:offset + 8], length))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-2:] == [(b"IEND", 0), (b"IEND", 0)]
    assert all(length == 8192 for kind, length in chunks[1:-3])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), (np.arange(256 * 256) % 4093).reshape(256, 256))


STATUS_ROUTES = ["frames/0/preview", "frames/5/preview", "frames/x/preview", "frames/0/raw", "frames/9/raw",
                 "frames/0/matlab", "frames/9/matlab", "frames/9/numpy", "numpy", "rendered?width=-1",
                 "image-int16"]


@pytest.mark.parametrize("name", ["KarstenHilbertRF.dcm", "Issue22-NoPixelData.dcm", "Issue19.dcm",
                                  "TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm", "ColorTestMalaterre.dcm"])
def test_statuses_equal_the_real_orthanc(isengard: Isengard, orthanc: Any, name: str) -> None:
    """Which failure wins (no pixels, unsupported image, frame out of range, bad query, Accept)."""
    data = sample(name).read_bytes()
    ours, theirs = isengard.upload(data)["ID"], orthanc.upload(data)["ID"]
    for route in STATUS_ROUTES:
        for accept in ({}, {"Accept": "text/html"}) if "preview" in route else ({},):
            a = isengard.get(f"/instances/{ours}/{route}", headers=accept).status_code
            b = orthanc.get(f"/instances/{theirs}/{route}", headers=accept).status_code
            assert a == b, (route, accept, a, b)


# -- JPEG 2000 against the real Orthanc with its GDCM plugin --------------------------------------

ORTHANC_GDCM_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancGdcm.so")

RENDERED_J2K = [
    ("TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm", "/preview"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm", "/image-uint8"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.91.dcm", "/preview"),
    ("TransferSyntaxes/1.2.840.10008.1.2.4.91.dcm", "/rendered"),
]


@pytest.fixture(scope="module")
def orthanc_gdcm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from conftest import ORTHANC_BINARY, Orthanc

    if not ORTHANC_BINARY.exists() or not ORTHANC_GDCM_PLUGIN.exists():
        pytest.skip("the real Orthanc or its GDCM plugin is not installed (make test installs them)")
    server = Orthanc(tmp_path_factory.mktemp("orthanc-gdcm"), Plugins=[str(ORTHANC_GDCM_PLUGIN)]).start()
    yield server
    server.stop()


@pytest.mark.parametrize(("name", "route"), RENDERED_J2K)
def test_jpeg2000_images_equal_the_real_orthanc_with_gdcm(gdcm_isengard: Isengard, orthanc_gdcm: Any,
                                                          name: str, route: str) -> None:
    data = sample(name).read_bytes()
    ours = gdcm_isengard.upload(data)["ID"]
    theirs = orthanc_gdcm.upload(data)["ID"]
    a = gdcm_isengard.get(f"/instances/{ours}{route}")
    b = orthanc_gdcm.get(f"/instances/{theirs}{route}")
    assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
    image_a = np.asarray(Image.open(io.BytesIO(a.content))).astype(np.int64)
    image_b = np.asarray(Image.open(io.BytesIO(b.content))).astype(np.int64)
    assert image_a.shape == image_b.shape
    assert np.abs(image_a - image_b).max() <= 1


def test_series_numpy_follows_the_slice_order_as_the_real_orthanc(isengard: Isengard, orthanc: Any) -> None:
    """Slices ordered along the normal (not by InstanceNumber, here reversed), as Orthanc's SliceOrdering."""
    base = pydicom.dcmread(sample("SignedCT.dcm"))
    series_uid = pydicom.uid.generate_uid()
    uploads = []
    for position in range(3):
        ds = base.copy()
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, pydicom.uid.generate_uid()
        ds.InstanceNumber = 10 - position
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 5 * position]
        pixels = ds.pixel_array.copy()
        pixels[0, 0] = position * 100
        ds.PixelData = pixels.tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer)
        uploads.append(buffer.getvalue())
    for data in uploads[::-1]:
        ours, theirs = isengard.upload(data), orthanc.upload(data)
    a = isengard.get(f"/series/{ours['ParentSeries']}/numpy?rescale=0")
    b = orthanc.get(f"/series/{theirs['ParentSeries']}/numpy?rescale=0")
    assert a.status_code == b.status_code == 200
    assert np.array_equal(np.load(io.BytesIO(a.content)), np.load(io.BytesIO(b.content)))


@pytest.mark.parametrize("name", ["TransferSyntaxes/1.2.840.10008.1.2.4.90.dcm",
                                  "TransferSyntaxes/1.2.840.10008.1.2.4.91.dcm"])
def test_threaded_jpeg2000_decoding_equals_pydicoms(name: str) -> None:
    """The multi-threaded OpenJPEG path gives exactly the values of pydicom's own path."""
    from server.dicom import pixels

    ds = pixels.read_image_dataset(sample(name).read_bytes())
    g = pixels.geometry(ds)
    fast = pixels._openjpeg_threaded_frame(ds, 0, g)
    assert fast is not None
    assert np.array_equal(fast, pixels.pixel_array(ds, index=0))


def test_rle_ybr_full_planar_preview_is_orthancs(isengard: Isengard) -> None:
    """Orthanc 1.12.1 converts RLE YBR_FULL samples with its own formula (truncating, where
    pydicom rounds): the preview is the one whose MD5 Orthanc's suite expects."""
    path = sample("2023-04-21-RLEPlanarConfigurationYBR_FULL.dcm")
    instance = isengard.post("/instances", data=path.read_bytes()).json()["ID"]
    preview = isengard.get(f"/instances/{instance}/preview")
    assert preview.status_code == 200
    assert hashlib.md5(preview.content).hexdigest() == "07a3ea7ea08d54362f744cc5945e8743"
