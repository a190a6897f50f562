# Calls the toolbox functions of the orthanc module from a REST callback (the database is
# ready by then) and answers what each call gave: [type name, value] or [exception, args].
# The same script runs on Isengard and on the real Orthanc with orthanc-python.

import hashlib
import json
import os
import tempfile

import orthanc


def attempt(call):
    try:
        value = call()
    except orthanc.OrthancException as e:
        return ["OrthancException", list(e.args)]
    except Exception as e:  # noqa: BLE001 - the kind of error is part of the answer
        return [type(e).__name__, str(e)]
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    return [type(value).__name__, value]


def created(flags, tags):
    dicom = orthanc.CreateDicom(json.dumps(tags), None, flags)
    return json.loads(orthanc.DicomBufferToJson(dicom, orthanc.DicomToJsonFormat.HUMAN, orthanc.DicomToJsonFlags.NONE,
                                                0))


def with_image(pixel_format, width, height):
    """CreateDicom with an image (pitch padded by 3 bytes); its tags and the pixel data's MD5."""
    size = {orthanc.PixelFormat.GRAYSCALE8: 1, orthanc.PixelFormat.GRAYSCALE16: 2}.get(pixel_format, 3)
    pitch = width * size + 3
    image = orthanc.CreateImageFromBuffer(pixel_format, width, height, pitch, bytes(i % 251 for i in range(
        pitch * height)))
    dicom = orthanc.CreateDicom(json.dumps({"PatientName": "IMAGE"}), image, orthanc.CreateDicomFlags.NONE)
    tags = json.loads(orthanc.DicomBufferToJson(dicom, orthanc.DicomToJsonFormat.HUMAN, orthanc.DicomToJsonFlags.NONE,
                                                0))
    frame = orthanc.CreateDicomInstance(dicom).GetInstanceRawFrame(0)
    return [tags, hashlib.md5(frame).hexdigest()]


def image_round_trip():
    pixels = bytes(range(12))
    png = orthanc.CompressPngImage(orthanc.PixelFormat.GRAYSCALE8, 4, 3, 4, pixels)
    image = orthanc.UncompressImage(png, orthanc.ImageFormat.PNG)
    return [image.GetImagePixelFormat(), image.GetImageWidth(), image.GetImageHeight(), image.GetImagePitch(),
            image.GetImageBuffer() == pixels]


def files():
    path = os.path.join(tempfile.mkdtemp(), "file.bin")
    orthanc.WriteFile(path, b"content")
    return orthanc.ReadFile(path).decode()


def peers():
    found = orthanc.GetPeers()
    return [[found.GetPeerName(i), found.GetPeerUrl(i), found.GetPeerUserProperty(i, "Custom"),
             found.GetPeerUserProperty(i, "Nope")] for i in range(found.GetPeersCount())]


def run(output, uri, **request):
    target = json.loads(orthanc.GetConfiguration())["ToolboxTarget"]  # another server, for the HTTP client
    Flags = orthanc.CreateDicomFlags
    results = {
        "md5": attempt(lambda: orthanc.ComputeMd5(b"hello")),
        "error_code": attempt(lambda: orthanc.RegisterErrorCode(12, 403, "my error")),
        "error_code_next": attempt(lambda: orthanc.RegisterErrorCode(13, 404, "my other error")),
        "error_description": attempt(lambda: orthanc.GetErrorDescription(1000001)),
        "md5_text": attempt(lambda: orthanc.ComputeMd5("hello")),
        "sha1": attempt(lambda: orthanc.ComputeSha1(b"hello")),
        "lookup_name": attempt(lambda: orthanc.LookupDictionary("PatientName")),
        "lookup_multiple": attempt(lambda: orthanc.LookupDictionary("ImagePositionPatient")),
        "lookup_hex": attempt(lambda: orthanc.LookupDictionary("0010,0010")),
        "lookup_unknown": attempt(lambda: orthanc.LookupDictionary("NoSuchTag")),
        "register_tag": attempt(lambda: orthanc.RegisterDictionaryTag(
            0x4321, 0x1000, orthanc.ValueRepresentation.LO, "IsengardCustomTag", 1, 3)),
        "lookup_registered": attempt(lambda: orthanc.LookupDictionary("IsengardCustomTag")),
        "registered_name": attempt(lambda: orthanc.GetTagName(0x4321, 0x1000, "")),
        "register_private": attempt(lambda: orthanc.RegisterPrivateDictionaryTag(
            0x4323, 0x1001, orthanc.ValueRepresentation.DS, "IsengardPrivateTag", 2, 0, "Isengard")),
        "private_name": attempt(lambda: orthanc.GetTagName(0x4323, 0x1001, "Isengard")),
        "lookup_private": attempt(lambda: orthanc.LookupDictionary("IsengardPrivateTag")),
        "property_default": attempt(lambda: orthanc.GetGlobalProperty(5000, "default")),
        "property_reserved": attempt(lambda: orthanc.SetGlobalProperty(10, "x")),
        "property_set": attempt(lambda: orthanc.SetGlobalProperty(5001, "kept")),
        "property_get": attempt(lambda: orthanc.GetGlobalProperty(5001, "default")),
        "read_missing": attempt(lambda: orthanc.ReadFile("/nonexistent/file")),
        "files": attempt(files),
        "mime_png": attempt(lambda: orthanc.AutodetectMimeType("a.png")),
        "mime_unknown": attempt(lambda: orthanc.AutodetectMimeType("a.unknownextension")),
        "version": attempt(orthanc.CheckVersion),
        "version_newer": attempt(lambda: orthanc.CheckVersionAdvanced(1, 11, 0)),
        "version_older": attempt(lambda: orthanc.CheckVersionAdvanced(1, 9, 7)),
        "database_version": attempt(orthanc.GetExpectedDatabaseVersion),
        "peers": attempt(peers),
        "peer_out_of_range": attempt(lambda: orthanc.GetPeers().GetPeerName(5)),
        "tag_name": attempt(lambda: orthanc.GetTagName(0x10, 0x10, "")),
        "tag_name_none": attempt(lambda: orthanc.GetTagName(0x10, 0x10, None)),
        "created": attempt(lambda: created(Flags.NONE, {"PatientName": "A^B", "PatientID": "X"})),
        "created_identifiers": attempt(lambda: sorted(created(Flags.GENERATE_IDENTIFIERS, {"PatientName": "A"}))),
        "create_bad_json": attempt(lambda: orthanc.CreateDicom("not json", None, Flags.NONE)),
        "created_gray": attempt(lambda: with_image(orthanc.PixelFormat.GRAYSCALE8, 5, 1)),
        "created_gray16": attempt(lambda: with_image(orthanc.PixelFormat.GRAYSCALE16, 3, 2)),
        "created_rgb": attempt(lambda: with_image(orthanc.PixelFormat.RGB24, 2, 3)),
        "compressed": attempt(lambda: orthanc.BufferCompression(b"hello", orthanc.CompressionType.ZLIB_WITH_SIZE, 0)),
        "uncompressed": attempt(lambda: orthanc.BufferCompression(
            orthanc.BufferCompression(b"hello", orthanc.CompressionType.GZIP, 0), orthanc.CompressionType.GZIP, 1)),
        "image_pitch": attempt(lambda: orthanc.CreateImage(orthanc.PixelFormat.RGB24, 3, 2).GetImagePitch()),
        "image_round_trip": attempt(image_round_trip),
        "http_refused": attempt(lambda: orthanc.HttpGet("http://127.0.0.1:1/", "", "")),
        "http_get": attempt(lambda: json.loads(orthanc.HttpGet(target + "/system", "", ""))["ApiVersion"]),
        "http_post": attempt(lambda: json.loads(orthanc.HttpPost(target + "/tools/find", b'{"Level": "Patient", '
                                                                 b'"Query": {}}', "", ""))),
        "http_put": attempt(lambda: orthanc.HttpPut(target + "/tools/metrics", b"true", "", "")),
        "http_delete_missing": attempt(lambda: orthanc.HttpDelete(target + "/patients/nope", "", "")),
        "http_get_missing": attempt(lambda: orthanc.HttpGet(target + "/nope", "", "")),
        "job_constructor": attempt(orthanc.Job),
        "explorer": attempt(lambda: orthanc.ExtendOrthancExplorer("window.extended = true;")),
    }
    output.AnswerBuffer(json.dumps(results), "application/json")


orthanc.RegisterRestCallback("/toolbox", run)
