"""The ``orthanc`` module against the real orthanc-python plugin loaded in the real Orthanc 1.10.1.

The same scripts run on both servers: ``names`` lists the module's public names
(functions, classes and their methods, enumerations and their values) and
``tests/python/toolbox.py`` calls the toolbox functions; Isengard must have every
name of the plugin and answer the calls the same way.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import ORTHANC_BINARY, Isengard, Orthanc, sample

PLUGIN = Path("/usr/lib/orthanc/libOrthancPython.so.4.0")
SCRIPTS = Path(__file__).parent / "python"
SAMPLES = Path(__file__).parent.parent / "samples" / "python"
#: Public names of the module's objects, as the dump below writes them.
NAMES_SCRIPT = """
import json, orthanc

def describe(value):
    if not isinstance(value, type):
        return "function"
    members = {{k: getattr(value, k) for k in dir(value) if not k.startswith("_")}}
    if issubclass(value, Exception):
        return "exception"
    if members and all(isinstance(v, int) for v in members.values()):
        return {{"enum": members}}
    return {{"methods": sorted(k for k, v in members.items() if callable(v))}}

names = {{name: describe(getattr(orthanc, name)) for name in dir(orthanc) if not name.startswith("_")}}
open({target!r}, "w").write(json.dumps(names))
"""
#: Names Isengard adds to orthanc-python 4.0: newer plugin features Isengard has, and custom jobs
#: (the C SDK's CreateJob2 and RegisterJobsUnserializer, which no plugin release wraps).
NEWER = {"DicomConnection", "RegisterStorageCommitmentScpCallback", "RegisterStorageCommitmentScpCallback2",
         # orthanc-python 6.0/7.0's database functions
         "StoreKeyValue", "GetKeyValue", "DeleteKeyValue", "CreateKeysValuesIterator", "KeysValuesIterator",
         "EnqueueValue", "DequeueValue", "ReserveQueueValue", "AcknowledgeQueueValue", "GetQueueSize",
         "QueueOrigin", "SetStableStatus", "StableStatus",
         "CreateJob", "RegisterJobsUnserializer"}


def _real_required() -> None:
    if not (ORTHANC_BINARY.exists() and PLUGIN.exists()):
        pytest.skip("the real Orthanc or its orthanc-python plugin is not installed")


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.stat().st_size:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written")
        time.sleep(0.05)


def _names(tmp_path: Path, real: bool) -> dict[str, Any]:
    workdir = tmp_path / ("real" if real else "isengard")
    workdir.mkdir()
    target = workdir / "names.json"
    script = workdir / "names.py"
    script.write_text(NAMES_SCRIPT.format(target=str(target)))
    server: Isengard | Orthanc
    if real:
        server = Orthanc(workdir, Plugins=[str(PLUGIN)], PythonScript=str(script)).start()
    else:
        server = Isengard(workdir, PythonScript=str(script)).start()
    try:
        _wait_for(target)
        time.sleep(0.1)
        return json.loads(target.read_text())
    finally:
        server.stop()


def test_module_has_every_public_name_and_value_of_the_real_plugin(tmp_path: Path) -> None:
    _real_required()
    real = _names(tmp_path, real=True)
    ours = _names(tmp_path, real=False)
    missing = sorted(set(real) - set(ours))
    assert missing == [], f"names of orthanc-python that Isengard lacks: {missing}"
    assert set(ours) - set(real) == NEWER
    for name, kind in real.items():
        if isinstance(kind, dict) and "enum" in kind:
            values = dict(ours[name]["enum"])
            if name == "StorageCommitmentFailureReason":  # Isengard also has the newer plugin's spelling
                assert values.pop("REFERENCED_SOP_CLASS_NOT_SUPPORTED") == values["REFERENCED_SOPCLASS_NOT_SUPPORTED"]
            assert values == kind["enum"], name
        elif isinstance(kind, dict):
            lacking = sorted(set(kind["methods"]) - set(ours[name].get("methods", [])))
            assert lacking == [], f"methods of orthanc.{name} that Isengard lacks: {lacking}"
        else:
            assert ours[name] == kind, name


def _toolbox(server: Isengard | Orthanc) -> dict[str, Any]:
    answer = server.get("/toolbox")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_toolbox_functions_answer_like_the_real_plugin(tmp_path: Path) -> None:
    _real_required()
    peers = {"b": {"Url": "http://127.0.0.1:9999/", "Custom": "yes"}, "a": ["http://127.0.0.1:8888"]}
    (tmp_path / "real").mkdir()
    shutil.copy(SCRIPTS / "toolbox.py", tmp_path / "toolbox.py")
    ours = Isengard(tmp_path / "isengard", PythonScript=str(tmp_path / "toolbox.py"), OrthancPeers=peers)
    real = Orthanc(tmp_path / "real", Plugins=[str(PLUGIN)], PythonScript=str(tmp_path / "toolbox.py"),
                   OrthancPeers=peers, ToolboxTarget=ours.url).start()
    ours.config["ToolboxTarget"] = real.url  # each one's HTTP client calls the other
    ours.config_path.write_text(json.dumps(ours.config))
    ours.start()
    try:
        expected, got = _toolbox(real), _toolbox(ours)
    finally:
        real.stop()
        ours.stop()
    differences = {key: (got.get(key), value) for key, value in expected.items() if got.get(key) != value}
    assert differences == {}, json.dumps(differences, indent=1, sort_keys=True)


SLOW_ROUTE = """
import time, orthanc

def slow(output, uri, **request):
    time.sleep(0.4)
    output.AnswerBuffer("done", "text/plain")

orthanc.RegisterRestCallback("/slow", slow)
"""


def _slow_calls(server: Isengard, count: int) -> float:
    """Seconds taken by ``count`` concurrent calls of the 0.4 s route."""
    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda _: requests.get(server.url + "/slow", timeout=30), range(count)))
    assert all(a.status_code == 200 and a.text == "done" for a in answers)
    return time.monotonic() - started


@pytest.mark.parametrize("threads", [2, 12])
def test_rest_callbacks_get_as_many_workers_as_http_threads(tmp_path: Path, threads: int) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_ROUTE)
    server = Isengard(tmp_path / "server", PythonScript=str(script), HttpThreadsCount=threads).start()
    try:
        with ThreadPoolExecutor(1) as background:
            busy = background.submit(_slow_calls, server, 12)
            time.sleep(0.1)
            quick = time.monotonic()
            assert requests.get(server.url + "/system", timeout=30).status_code == 200
            assert time.monotonic() - quick < 0.3  # built-in routes do not wait for the script's workers
            elapsed = busy.result()
    finally:
        server.stop()
    if threads == 2:
        assert elapsed >= 6 * 0.4  # 12 calls, 2 at a time
    else:
        assert elapsed < 3 * 0.4  # all 12 at once


@pytest.mark.parametrize("name", ["2019-06-17-VedranZdesic.dcm", "Formats/Jpeg.dcm"])
def test_dicom_functions_answer_like_the_real_plugin(tmp_path: Path, name: str) -> None:
    _real_required()
    (tmp_path / "real").mkdir()
    shutil.copy(SCRIPTS / "instance_api.py", tmp_path / "instance_api.py")
    script = str(tmp_path / "instance_api.py")
    real = Orthanc(tmp_path / "real", Plugins=[str(PLUGIN)], PythonScript=script).start()
    ours = Isengard(tmp_path / "isengard", PythonScript=script).start()
    try:
        answers = []
        for server in (real, ours):
            instance_id = server.upload(sample(name))["ID"]
            answer = server.get(f"/instance-api/{instance_id}")
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
            png = server.get("/png")
            answers[-1]["png"] = [png.headers["Content-Type"], png.content[:8].hex()]
    finally:
        real.stop()
        ours.stop()
    expected, got = answers
    differences = {key: (got.get(key), value) for key, value in expected.items() if got.get(key) != value}
    assert differences == {}, json.dumps(differences, indent=1, sort_keys=True)


def test_decoded_frames_are_the_real_plugins_once_the_pixel_codec_is_there(tmp_path: Path) -> None:
    """Until ``server.dicom.pixels`` is merged, decoding raises NotImplemented (never a fake image)."""
    _real_required()
    (tmp_path / "real").mkdir()
    script = str(SCRIPTS / "decode.py")
    real = Orthanc(tmp_path / "real", Plugins=[str(PLUGIN)], PythonScript=script).start()
    ours = Isengard(tmp_path / "isengard", PythonScript=script).start()
    try:
        answers = []
        for server in (real, ours):
            instance_id = server.upload(sample("ColorTestMalaterre.dcm"))["ID"]
            answers.append(server.json(f"/decode/{instance_id}"))
    finally:
        real.stop()
        ours.stop()
    if importlib.util.find_spec("server.dicom.pixels") is None:
        assert answers[1] == {"0": [2, "Decoding DICOM pixel data is not available yet"], "1000": answers[1]["0"]}
    else:
        assert answers[1] == answers[0]


def test_sample_storage_area_keeps_files_where_the_script_says(tmp_path: Path) -> None:
    folder = tmp_path / "script-storage"
    server = Isengard(tmp_path / "server", PythonScript=str(SAMPLES / "storage_area.py"),
                      ScriptStorageFolder=str(folder), StorageCompression=True).start()
    data = sample("2019-06-17-VedranZdesic.dcm").read_bytes()
    try:
        uploaded = server.upload(data)
        attachment = server.json(f"/instances/{uploaded['ID']}/attachments/dicom/info")
        stored = folder / f"1-{attachment['Uuid']}"
        assert stored.exists() and stored.stat().st_size == attachment["CompressedSize"]
        local = [p for p in (tmp_path / "server" / "storage").rglob("*") if p.is_file() and p.name == stored.name[2:]]
        assert local == []
        assert server.get(f"/instances/{uploaded['ID']}/file").content == data
        base = f"/instances/{uploaded['ID']}/attachments/dicom"
        stored_part = server.get(f"{base}/compressed-data", headers={"Range": "bytes=0-9"})
        assert (stored_part.status_code, stored_part.content) == (206, stored.read_bytes()[:10])
        assert server.get(f"{base}/data", headers={"Range": "bytes=128-131"}).content == b"DICM"
    finally:
        server.stop()
    server.start()
    try:
        assert server.get(f"/instances/{uploaded['ID']}/file").content == data  # after a restart
        assert server.delete(f"/instances/{uploaded['ID']}").status_code == 200
        assert not stored.exists()
    finally:
        server.stop()


def test_storage_area_callbacks_must_be_functions(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import orthanc\northanc.RegisterStorageArea(1, 2, 3)\n")
    server = Isengard(tmp_path / "server", PythonScript=str(script))
    with pytest.raises(RuntimeError):
        server.start()
    assert "Expected three callback functions to register a Python storage area" in server.log()


def test_pixel_format_conversions_are_the_real_plugins(tmp_path: Path) -> None:
    _real_required()
    (tmp_path / "real").mkdir()
    script = str(SCRIPTS / "convert.py")
    real = Orthanc(tmp_path / "real", Plugins=[str(PLUGIN)], PythonScript=script).start()
    ours = Isengard(tmp_path / "isengard", PythonScript=script).start()
    try:
        expected, got = real.json("/convert"), ours.json("/convert")
    finally:
        real.stop()
        ours.stop()
    assert len(expected) == 100
    assert {pair: got.get(pair) for pair in expected if got.get(pair) != expected[pair]} == {}


COUNTER = """
import orthanc

def count(output, uri, **request):
    value = int(orthanc.GetGlobalProperty(5002, "0")) + 1
    orthanc.SetGlobalProperty(5002, str(value))
    output.AnswerBuffer(str(value), "text/plain")

orthanc.RegisterRestCallback("/count", count)
"""


def test_global_properties_are_kept_in_the_index_across_restarts(tmp_path: Path) -> None:
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    server = Isengard(tmp_path / "server", PythonScript=str(script)).start()
    try:
        assert [server.get("/count").text for _ in range(2)] == ["1", "2"]
    finally:
        server.stop()
    server.start()
    try:
        assert server.get("/count").text == "3"
    finally:
        server.stop()


def _draw_text(server: Isengard | Orthanc) -> dict[str, Any]:
    answer = server.get("/draw-text")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_draw_text_is_the_real_plugins_with_another_font(tmp_path: Path) -> None:
    """Same fonts API, formats, colours, errors and placement; the glyphs are another font's."""
    _real_required()
    (tmp_path / "real").mkdir()
    shutil.copy(SCRIPTS / "draw_text.py", tmp_path / "draw_text.py")
    real = Orthanc(tmp_path / "real", Plugins=[str(PLUGIN)], PythonScript=str(tmp_path / "draw_text.py")).start()
    try:
        expected = _draw_text(real)
    finally:
        real.stop()
    ours = Isengard(tmp_path / "isengard", PythonScript=str(tmp_path / "draw_text.py")).start()
    try:
        got = _draw_text(ours)
    finally:
        ours.stop()
    assert got["fonts"] == expected["fonts"] == [1, 16, None, 0]
    assert got["font_index"] == expected["font_index"] == 3  # ParameterOutOfRange
    for name, drawn in expected["formats"].items():  # unsupported: NotImplemented, and nothing drawn
        assert (got["formats"][name]["answer"], got["formats"][name]["max"]) == (drawn["answer"], drawn["max"]), name
    assert expected["formats"]["RGBA32"]["max"] == [200, 100, 50, 255]  # the colour itself over transparency
    for result in (expected, got):
        left, top, right, bottom = result["one_line"]["box"]
        assert 5 <= left <= 7 and 4 <= top <= 8  # x, y: the top left of the text
        assert result["two_lines"]["box"][:3] == [left, top, right] and result["two_lines"]["box"][3] > 2 * bottom - top
        assert result["not_latin1"]["box"] is None  # characters outside Latin-1 are not drawn
        assert result["outside"] == [["ok", None], None]


def test_draw_text_without_the_system_font_uses_pillows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where DejaVu is not installed: Pillow's own font, whose missing characters are not drawn."""
    from server.scripting import python_font
    from server.scripting.python_images import Image

    monkeypatch.setattr(python_font, "SYSTEM_FONT", tmp_path / "absent.ttf")
    python_font.font.cache_clear()
    try:
        assert python_font.font().name == "Aileron-Regular"
        drawn, missing = Image(1, 40, 20, 40, bytes(800)), Image(1, 40, 20, 40, bytes(800))
        drawn.DrawText(0, "Ab", 0, 0, 255, 255, 255)
        missing.DrawText(0, "\u00e9", 0, 0, 255, 255, 255)
        assert max(drawn.GetImageBuffer()) > 200 and max(missing.GetImageBuffer()) == 0
    finally:
        python_font.font.cache_clear()


def test_sample_annotated_preview_draws_text_and_stores_a_secondary_capture(tmp_path: Path) -> None:
    import io

    from PIL import Image as PillowImage

    server = Isengard(tmp_path / "server", PythonScript=str(SAMPLES / "annotated_preview.py")).start()
    try:
        source = server.upload(sample("2019-06-17-VedranZdesic.dcm"))["ID"]
        preview = PillowImage.open(io.BytesIO(server.get(f"/instances/{source}/preview").content))
        answer = server.get(f"/instances/{source}/annotated")
        assert (answer.status_code, answer.headers["Content-Type"]) == (200, "image/png")
        annotated = PillowImage.open(io.BytesIO(answer.content)).convert("RGB")
        assert annotated.size == preview.size
        corner = {annotated.getpixel((x, y)) for x in range(4, 60) for y in range(4, 24)}
        assert any(r > 240 and g > 240 and b < 16 for r, g, b in corner)  # yellow text (Orthanc's 254 at most)
        assert server.get("/instances/nowhere/annotated").status_code == 404

        stored = server.post(f"/instances/{source}/annotated", "")
        assert stored.status_code == 200, stored.text
        created = server.json(f"/instances/{stored.json()['ID']}/simplified-tags")
        original = server.json(f"/instances/{source}/simplified-tags")
        assert (created["SOPClassUID"], created["Modality"]) == ("1.2.840.10008.5.1.4.1.1.7", "OT")
        new_id = stored.json()["ID"]
        assert server.json(f"/instances/{new_id}/study")["ID"] == server.json(f"/instances/{source}/study")["ID"]
        assert created["SeriesInstanceUID"] != original["SeriesInstanceUID"]
        assert (int(created["Columns"]), int(created["Rows"])) == preview.size
    finally:
        server.stop()
