"""``/tools/metrics-prometheus``: Prometheus' text format, Orthanc's names, values that follow the server."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import ON_POSTGRESQL, REPO, Isengard, free_port, sample

MEGABYTE = 1024 * 1024
#: Present from the first scrape on (Orthanc 1.10.1's, plus up time and last change of newer versions).
STATE_METRICS = {
    "orthanc_count_instances", "orthanc_count_patients", "orthanc_count_series", "orthanc_count_studies",
    "orthanc_disk_size_mb", "orthanc_uncompressed_size_mb", "orthanc_jobs_completed", "orthanc_jobs_failed",
    "orthanc_jobs_pending", "orthanc_jobs_running", "orthanc_jobs_success", "orthanc_last_change",
    "orthanc_up_time_s", "orthanc_rest_api_active_requests",
    # Orthanc 1.13's
    "orthanc_jobs_total_completed", "orthanc_jobs_total_success", "orthanc_jobs_total_failed",
    "orthanc_logged_errors_count", "orthanc_logged_warnings_count",
    "orthanc_available_http_threads_count", "orthanc_available_dicom_threads",
}


def scrape(server: Isengard) -> dict[str, float]:
    """The exposition, parsed by the Prometheus client's own parser (name -> value)."""
    answer = server.get("/tools/metrics-prometheus")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4"
    values = {}
    now_ms = time.time() * 1000
    for family in text_string_to_metric_families(answer.text):
        for sample_ in family.samples:
            assert sample_.name.startswith(("orthanc_", "isengard_")) and sample_.labels == {}
            assert now_ms - 600_000 < sample_.timestamp * 1000 <= now_ms + 1000
            values[sample_.name] = sample_.value
    names = [line.split(" ")[0] for line in answer.text.splitlines()]
    assert names == sorted(names)
    return values


@pytest.fixture
def server(make_isengard) -> Isengard:
    return make_isengard()


def test_counts_sizes_and_storage_follow_instances(server: Isengard) -> None:
    first = scrape(server)
    assert STATE_METRICS <= first.keys()
    assert first["orthanc_count_instances"] == 0 and first["orthanc_disk_size_mb"] == 0
    data = sample("Formats/Jpeg.dcm").read_bytes()
    uploaded = server.upload(data)
    stored = scrape(server)
    statistics = server.json("/statistics")
    for level in ("Patients", "Studies", "Series", "Instances"):
        assert stored[f"orthanc_count_{level.lower()}"] == statistics[f"Count{level}"] == 1
    assert stored["orthanc_disk_size_mb"] == pytest.approx(len(data) / MEGABYTE)
    assert stored["orthanc_storage_written_bytes"] == len(data)
    assert stored["orthanc_last_change"] > first["orthanc_last_change"]
    assert {"orthanc_store_dicom_duration_ms", "orthanc_storage_create_duration_ms"} <= stored.keys()
    # The counters of the writers' lock taken late are a cluster's (tests/test_cluster.py).
    assert ON_POSTGRESQL or not [name for name in stored if name.startswith("isengard_ingest_late_lock")]
    assert server.get(f"/instances/{uploaded['ID']}/file").content == data
    read = scrape(server)
    assert read["orthanc_storage_read_bytes"] == stored.get("orthanc_storage_read_bytes", 0) + len(data)
    assert "orthanc_storage_read_duration_ms" in read
    assert server.delete(f"/patients/{uploaded['ParentPatient']}").status_code == 200
    removed = scrape(server)
    assert removed["orthanc_count_instances"] == removed["orthanc_count_patients"] == 0
    assert removed["orthanc_disk_size_mb"] == 0
    assert "orthanc_storage_remove_duration_ms" in removed
    assert removed["orthanc_rest_api_duration_ms"] >= 0
    assert removed["orthanc_up_time_s"] >= 0


def test_uncompressed_size_is_the_real_one(make_isengard) -> None:
    """Orthanc 1.10.1 reported the disk size twice; the uncompressed size is the true one here."""
    server = make_isengard(StorageCompression=True)
    data = sample("Formats/Jpeg.dcm").read_bytes()
    server.upload(data)
    values = scrape(server)
    assert values["orthanc_uncompressed_size_mb"] == pytest.approx(len(data) / MEGABYTE)
    assert values["orthanc_disk_size_mb"] < values["orthanc_uncompressed_size_mb"]
    assert values["orthanc_storage_written_bytes"] == pytest.approx(values["orthanc_disk_size_mb"] * MEGABYTE)


def test_metrics_switched_off_and_on(server: Isengard) -> None:
    assert server.get("/tools/metrics").text == "1"
    assert server.put("/tools/metrics", "maybe").json()["Details"] == "Boolean value expected"
    off = server.put("/tools/metrics", " 0 ")
    assert (off.status_code, off.content) == (200, b"")
    assert server.get("/tools/metrics").text == "0"
    empty = server.get("/tools/metrics-prometheus")
    assert (empty.status_code, empty.text) == (200, "")
    server.upload(sample("Formats/Jpeg.dcm"))
    assert server.put("/tools/metrics", "true").status_code == 200
    assert "orthanc_storage_written_bytes" not in scrape(server)


def test_metrics_disabled_at_startup(make_isengard) -> None:
    server = make_isengard(MetricsEnabled=False)
    assert server.get("/tools/metrics").text == "0"
    assert server.get("/tools/metrics-prometheus").text == ""


def test_job_metrics_follow_the_engine(make_isengard) -> None:
    """A storage commitment request to itself makes the DICOM server run a job."""
    port = free_port()
    server = make_isengard(DicomPort=port, DicomModalities={"self": {"AET": "ISENGARD", "Host": "127.0.0.1",
                                                                     "Port": port}})
    assert scrape(server)["orthanc_jobs_completed"] == 0
    instance = server.upload(sample("Formats/Jpeg.dcm"))["ID"]
    answer = server.post("/modalities/self/storage-commitment", json={"Resources": [instance]})
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        jobs = server.json("/jobs?expand")
        if jobs and all(job["State"] in ("Success", "Failure") for job in jobs):
            break
        time.sleep(0.1)
    states = Counter(job["State"] for job in jobs)
    values = scrape(server)
    assert states["Success"] >= 1
    assert values["orthanc_jobs_success"] == states["Success"]
    assert values["orthanc_jobs_failed"] == states["Failure"]
    assert values["orthanc_jobs_completed"] == states["Success"] + states["Failure"]
    assert values["orthanc_jobs_pending"] == values["orthanc_jobs_running"] == 0
    # Orthanc 1.13's cumulative counters: the same jobs, kept after the history forgets them
    assert values["orthanc_jobs_total_success"] == states["Success"]
    assert values["orthanc_jobs_total_completed"] == states["Success"] + states["Failure"]
    for job in jobs:
        server.delete(f"/jobs/{job['ID']}")
    assert scrape(server)["orthanc_jobs_total_success"] == states["Success"]


def test_logged_errors_warnings_and_available_threads(make_isengard) -> None:
    """Orthanc 1.13's: what the server logged since start-up, idle workers at the scrape."""
    server = make_isengard(ExecuteLuaEnabled=True)
    before = scrape(server)
    assert before["orthanc_available_http_threads_count"] == 7  # 8 workers, one answers the scrape
    assert before["orthanc_available_dicom_threads"] > 0
    assert before["orthanc_logged_warnings_count"] >= 1  # "Isengard has started"
    assert server.post("/tools/execute-script", b'print("one warning")').status_code == 200
    form = b"--b\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\nnot dicom\r\n--b--\r\n"
    server.post("/instances", form, headers={"Content-Type": "multipart/form-data; boundary=b"})
    after = scrape(server)
    assert after["orthanc_logged_warnings_count"] >= before["orthanc_logged_warnings_count"] + 1
    assert after["orthanc_logged_errors_count"] >= before["orthanc_logged_errors_count"] + 1


def test_promtool_accepts_the_exposition(server: Isengard, tmp_path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    server.upload(sample("Formats/Jpeg.dcm"))
    text = server.get("/tools/metrics-prometheus").text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60)
    # Exit status 3 is lint only: Orthanc's names carry units ("_ms", "_mb") and Orthanc sends no HELP
    # lines, which dashboards built for Orthanc rely on; a parse error would be status 1.
    lint = (result.stdout + result.stderr).splitlines()
    assert result.returncode in (0, 3), lint
    assert all(line.endswith(("no help text", "should not contain abbreviated units")) for line in lint), lint


def test_sample_prometheus_configuration_scrapes_the_metrics() -> None:
    sample_config = REPO / "samples" / "prometheus.yml"
    config = yaml.safe_load(sample_config.read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/tools/metrics-prometheus"
    promtool = shutil.which("promtool")
    if promtool is not None:
        result = subprocess.run([promtool, "check", "config", str(sample_config)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
