"""Configuration loading, the config schema and the command line, as a user sees them."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pynetdicom import _config

from server.config import (
    ConfigError,
    default_configuration_text,
    load_configuration,
    schema,
)
from server.config.source import strip_comments
from server.errors import DESCRIPTIONS, ErrorCode, OrthancError
from server.logging_setup import (
    OrthancFormatter,
    get_category_log_level,
    get_log_level,
    set_category_log_level,
    set_log_level,
)

REPO = Path(__file__).resolve().parent.parent


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_configuration(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- command line -----------------------------------------------------------------


def test_help_lists_every_orthanc_option() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--help", "--logdir=", "--logfile=", "--config=", "--errors", "--verbose",
                   "--trace", "--upgrade", "--no-jobs", "--openapi=", "--cheatsheet=",
                   "--version", "--verbose-dicom", "--trace-lua", "--trace-http"):
        assert option in result.stdout


def test_version() -> None:
    """Isengard implements Orthanc 1.13.0's API; the tests compare with Orthanc 1.10.1 at its level."""
    shipped = subprocess.run([sys.executable, "-m", "server", "--version"], cwd=REPO, capture_output=True,
                             text=True, timeout=30,
                             env={k: v for k, v in os.environ.items() if k != "ISENGARD_ORTHANC_LEVEL"})
    assert shipped.stdout.startswith("Isengard 0.1.0 (Orthanc API 1.13.0)\n")
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("Isengard 0.1.0 (Orthanc API 1.10.1)\n")


def test_errors_table_uses_orthanc_layout() -> None:
    result = run_cli("--errors")
    assert result.returncode == 0
    assert "              15   Bad file format\n" in result.stdout
    assert "            3000   Unsupported media type\n" in result.stdout
    assert len([line for line in result.stdout.splitlines() if "   " in line]) == len(
        DESCRIPTIONS
    )


def test_sample_configuration_parses_and_validates(tmp_path: Path) -> None:
    result = run_cli("--config=-")
    assert result.returncode == 0
    document = json.loads(strip_comments(result.stdout))
    assert document["HttpPort"] == 8042
    assert "AuthenticationEnabled" not in document
    assert "// \"AuthenticationEnabled\" : false," in result.stdout
    Draft202012Validator(schema()).validate(document)
    target = tmp_path / "sample.json"
    assert run_cli(f"--config={target}").returncode == 0
    configuration = load_configuration(target)
    assert configuration.warnings == []
    assert configuration["DicomAet"] == "ORTHANC"


def test_unknown_option_is_a_usage_error() -> None:
    result = run_cli("--verbose", "--no-such-option")
    assert result.returncode == 2
    assert "--no-such-option" in result.stderr
    assert result.stdout == ""


def test_two_configuration_paths_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path), str(tmp_path))
    assert result.returncode == 2
    assert "only one configuration path" in result.stderr


def test_value_option_without_value_is_a_usage_error() -> None:
    assert run_cli("--logfile").returncode == 2


def test_bad_type_stops_start_up_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "orthanc.json", '{ "HttpPort" : "abc" }')
    result = run_cli(str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("E")
    assert (
        f'Invalid configuration in {path}: "HttpPort" is "abc", '
        "expected an integer between 1 and 65535"
    ) in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_configuration_path(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "nowhere.json"))
    assert result.returncode == 1
    assert "Inexistent path to configuration: " in result.stderr


def test_config_error_goes_to_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "isengard.log"
    result = run_cli(f"--logfile={log}", str(tmp_path / "nowhere.json"))
    assert result.returncode == 1
    assert "Inexistent path to configuration" in log.read_text()


def test_logdir_gets_a_timestamped_file(tmp_path: Path) -> None:
    result = run_cli(f"--logdir={tmp_path}", str(tmp_path / "nowhere.json"))
    assert result.returncode == 1
    [log] = tmp_path.glob("Isengard.log.*")
    assert "Inexistent path to configuration" in log.read_text()


def test_openapi_and_cheatsheet_are_written(tmp_path: Path) -> None:
    assert run_cli(f"--openapi={tmp_path / 'api.json'}").returncode == 0
    assert "paths" in json.loads((tmp_path / "api.json").read_text())
    result = run_cli("--cheatsheet=-")
    assert result.returncode == 0
    assert result.stdout.startswith("Path,GET,POST,DELETE,PUT,Summary\n")


# --- loading -----------------------------------------------------------------------


def test_no_configuration_gives_defaults() -> None:
    configuration = load_configuration(None)
    assert configuration.path is None
    assert configuration.base_dir == Path.cwd()
    assert configuration["HttpPort"] == 8042
    assert configuration["AuthenticationEnabled"] is False
    assert configuration["IndexDirectory"] == "OrthancStorage"
    assert configuration.user_value("HttpPort") is None


def test_repository_default_configuration_is_valid() -> None:
    configuration = load_configuration(REPO / "orthanc.json")
    assert configuration.warnings == []
    assert configuration["Name"] == "Isengard"
    assert configuration["RemoteAccessAllowed"] is False
    assert configuration.base_dir == REPO


def test_comments_are_dropped_but_not_inside_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "orthanc.json", """{
      // "HttpPort" : 1,
      /* "DicomPort" : 2, */
      "Name" : "http://x/*y*/ // not a comment",
      "HttpProxy" : "a\\"//b", // trailing comma below is accepted, as jsoncpp does
    }""")
    configuration = load_configuration(path)
    assert configuration["Name"] == "http://x/*y*/ // not a comment"
    assert configuration["HttpProxy"] == 'a"//b'
    assert configuration["HttpPort"] == 8042


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "orthanc.json", '{\n  // comment\n  "Name" : "a"\n  "HttpPort" : 1\n}')
    message = load_error(path)
    assert "does not follow the JSON syntax" in message
    assert str(path) in message
    assert "line 4" in message


def test_document_must_be_an_object(tmp_path: Path) -> None:
    message = load_error(write(tmp_path, "orthanc.json", "[1, 2]"))
    assert "must be an object" in message


def test_environment_substitution_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISENGARD_NAME", "fromenv")
    monkeypatch.setenv("ISENGARD_EMPTY", "")
    monkeypatch.delenv("ISENGARD_UNDEFINED", raising=False)
    path = write(tmp_path, "orthanc.json", """{
      "Name" : "${ISENGARD_NAME:-fallback}",
      "DicomAet" : "${ISENGARD_UNDEFINED}X",
      "HttpProxy" : "${ISENGARD_UNDEFINED:-bare default}|${ISENGARD_UNDEFINED:-'single'}|\
${ISENGARD_EMPTY:-unused}",
      "HttpPort" : ${ISENGARD_UNDEFINED:-"8043"},
      "DicomPort" : ${ISENGARD_UNDEFINED:-4243}
    }""")
    configuration = load_configuration(path)
    assert configuration["Name"] == "fromenv"
    assert configuration["DicomAet"] == "X"
    assert configuration["HttpProxy"] == "bare default|single|"
    assert configuration["HttpPort"] == 8043
    assert configuration["DicomPort"] == 4243


def test_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISENGARD_AET", "YAMLAET")
    path = write(tmp_path, "orthanc.yaml", "HttpPort: 8044\nDicomAet: ${ISENGARD_AET}\n"
                                           "DicomModalities:\n  pacs: [PACS, 127.0.0.1, 104]\n")
    configuration = load_configuration(path)
    assert configuration["HttpPort"] == 8044
    assert configuration["DicomAet"] == "YAMLAET"
    assert configuration["DicomModalities"] == {"pacs": ["PACS", "127.0.0.1", 104]}


def test_folder_merges_top_level_keys(tmp_path: Path) -> None:
    write(tmp_path, "http.json", '{ "HttpPort" : 8045 }')
    write(tmp_path, "DICOM.JSON", '{ "DicomPort" : 4245 }')
    write(tmp_path, "lua.yml", "LuaScripts: [a.lua]\n")
    write(tmp_path, "notes.txt", "{ not json")
    configuration = load_configuration(tmp_path)
    assert (configuration["HttpPort"], configuration["DicomPort"]) == (8045, 4245)
    assert configuration.base_dir == tmp_path.resolve()
    assert configuration.resolve_path("a.lua") == tmp_path.resolve() / "a.lua"
    assert configuration.resolve_path("/abs/b.lua") == Path("/abs/b.lua")


def test_folder_with_the_same_key_twice_is_fatal(tmp_path: Path) -> None:
    write(tmp_path, "a.json", '{ "HttpPort" : 1 }')
    write(tmp_path, "b.json", '{ "HttpPort" : 2 }')
    message = load_error(tmp_path)
    assert '"HttpPort"' in message
    assert "a.json" in message and "b.json" in message


def test_error_in_a_folder_names_the_file_of_the_key(tmp_path: Path) -> None:
    write(tmp_path, "a.json", '{ "HttpPort" : 1 }')
    bad = write(tmp_path, "b.json", '{ "DicomPort" : 70000 }')
    assert f"Invalid configuration in {bad}: " in load_error(tmp_path)


def test_missing_path_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert load_error(missing) == f"Inexistent path to configuration: {missing}"


@pytest.mark.parametrize(("text", "expected"), [
    ('{"DicomModalities": {"pacs": {"AET": "P", "Host": "h", "Port": "abc"}}}',
     '"DicomModalities.pacs.Port" is "abc", expected a port number'),
    ('{"DicomModalities": {"pacs": ["P", "h", 104, "Acme"]}}',
     '"DicomModalities.pacs[3]" is "Acme", expected one of "Generic"'),
    ('{"DicomModalities": {"pacs": {"AET": "P", "Host": "h"}}}',
     '"DicomModalities.pacs.Port" is missing'),
    ('{"DicomModalities": {"bad.name": ["P", "h", 104]}}',
     '"DicomModalities" has an entry named "bad.name", expected a name made only of'),
    ('{"DicomModalities": []}', '"DicomModalities" is [], expected an object'),
    ('{"OrthancPeers": {"peer": ["http://h/", "user"]}}',
     '"OrthancPeers.peer" is ["http://h/", "user"], expected an array of strings [Url]'),
    ('{"Dictionary": {"0405,1002": ["us", "Name"]}}', '"Dictionary.0405,1002[0]" is "us"'),
    ('{"LuaScripts": ["a.lua", 3]}', '"LuaScripts[1]" is 3, expected a string'),
    ('{"ConcurrentJobs": -1}', '"ConcurrentJobs" is -1, expected an integer >= 0'),
    ('{"JobsMaxRetries": true}', '"JobsMaxRetries" is true, expected an integer >= 0'),
    ('{"RemoteAccessAllowed": "yes"}', '"RemoteAccessAllowed" is "yes", expected true or false'),
])
def test_invalid_values_name_key_value_and_expectation(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "orthanc.json", text)
    message = load_error(path)
    assert message.startswith(f"Invalid configuration in {path}: ")
    assert expected in message


def test_valid_network_and_dictionary_forms(tmp_path: Path) -> None:
    path = write(tmp_path, "orthanc.json", json.dumps({
        "DicomModalities": {
            "array": ["A", "127.0.0.1", "104"],
            "with-manufacturer": ["B", "h", 105, "GE"],
            "object_form": {"AET": "C", "Host": "h", "Port": 106, "AllowStore": False,
                            "AllowStorageCommitment": True, "Manufacturer": "Vitrea",
                            "UseDicomTls": False, "LocalAet": "ME", "Timeout": 5},
        },
        "OrthancPeers": {"one": ["http://h/"], "three": ["http://h/", "u", "p"],
                         "object": {"Url": "http://h/", "HttpHeaders": {"T": "v"}},
                         "upper": {"URL": "http://h/"}},
        "Dictionary": {"0405,0010": ["LO", "Creator", 1, 1, "My Company"],
                       "0405,1002": ["US", "MyPrivateUS"]},
        "JobsMaxRetries": 0, "StoreJobRetryDelay": 0.5,
    }))
    configuration = load_configuration(path)
    assert configuration.warnings == []
    assert configuration["JobsMaxRetries"] == 0


def test_unknown_key_warns_with_suggestion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "orthanc.json",
                 '{ "ConcurentJobs" : 3, "Zzyzx" : 1, "DicomWeb" : { "Enable" : true } }')
    with caplog.at_level(logging.WARNING, logger="isengard.config"):
        configuration = load_configuration(path)
    assert configuration.warnings == [
        f'Unknown configuration option "ConcurentJobs" in {path}; '
        'did you mean "ConcurrentJobs"?',
        f'Unknown configuration option "Zzyzx" in {path}',
    ]
    assert configuration.warnings[0] in caplog.text
    assert configuration["ConcurrentJobs"] == 2
    assert configuration["ConcurentJobs"] == 3


def test_values_merge_user_over_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "orthanc.json",
                 '{ "RemoteAccessAllowed" : true, "StorageDirectory" : "/data" }')
    configuration = load_configuration(path)
    assert configuration["AuthenticationEnabled"] is True
    assert configuration["IndexDirectory"] == "/data"
    assert configuration["TemporaryDirectory"] is None
    assert configuration.get("NotAnOption", "x") == "x"
    assert configuration.user_value("RemoteAccessAllowed") is True
    assert configuration.user_value("HttpPort") is None
    explicit = write(tmp_path, "explicit.json",
                     '{ "RemoteAccessAllowed" : true, "AuthenticationEnabled" : false }')
    assert load_configuration(explicit)["AuthenticationEnabled"] is False


def test_schema_declares_every_option_with_default_and_description() -> None:
    declared = schema()
    Draft202012Validator.check_schema(declared)
    for name, declaration in declared["properties"].items():
        assert declaration.get("description"), name
        assert "default" in declaration or "examples" in declaration, name
    for name in ("ConcurrentJobs", "JobsHistorySize", "SaveJobs", "LimitJobs", "MediaArchiveSize",
                 "SynchronousZipStream", "ZipLoaderThreads", "LuaScripts", "LuaHeartBeatPeriod",
                 "PythonScript", "PythonVerbose", "MetricsEnabled", "Dictionary",
                 "StorageCommitmentReportsSize", "DicomModalities", "OrthancPeers",
                 "JobsMaxRetries", "StoreJobRetryDelay", "Plugins"):
        assert name in declared["properties"], name
    assert declared["properties"]["JobsMaxRetries"]["default"] == 3
    assert declared["properties"]["StoreJobRetryDelay"]["default"] == 2


def test_sample_lists_every_declared_option() -> None:
    text = default_configuration_text()
    for name in schema()["properties"]:
        assert f'"{name}" : ' in text, name


@pytest.mark.skipif(shutil.which("Orthanc") is None and not Path("/usr/sbin/Orthanc").exists(),
                    reason="the real Orthanc is not installed")
def test_real_orthanc_sample_configuration_loads(tmp_path: Path) -> None:
    orthanc = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    target = tmp_path / "orthanc.json"
    subprocess.run([orthanc, f"--config={target}"], check=True, capture_output=True, timeout=10)
    configuration = load_configuration(target)
    assert configuration["Name"] == "MyOrthanc"
    assert all("did you mean" not in warning for warning in configuration.warnings)


def test_log_levels() -> None:
    try:
        set_log_level("verbose")
        assert get_log_level() == "verbose"
        assert logging.getLogger("isengard.config").isEnabledFor(logging.INFO)
        set_category_log_level("dicom", "trace")
        assert get_category_log_level("dicom") == "trace"
        assert logging.getLogger("server.net.scp").isEnabledFor(logging.DEBUG)
        assert _config.LOG_HANDLER_LEVEL == "standard" and _config.LOG_RESPONSE_IDENTIFIERS
        with pytest.raises(ValueError):
            set_log_level("loud")
        with pytest.raises(ValueError):
            set_category_log_level("nope", "trace")
    finally:
        set_log_level("default")
    assert not logging.getLogger("isengard.config").isEnabledFor(logging.INFO)
    # pynetdicom's debug lines are not even formatted below "trace"
    assert _config.LOG_HANDLER_LEVEL == "none" and not _config.LOG_REQUEST_IDENTIFIERS


def test_refusals_are_logged_without_a_traceback() -> None:
    formatter = OrthancFormatter()

    def formatted(error: Exception) -> str:
        try:
            raise error
        except Exception:
            record = logging.LogRecord("x", logging.ERROR, "f.py", 1, "failed", None, sys.exc_info())
        return formatter.format(record)

    assert "Traceback" not in formatted(OrthancError(ErrorCode.BAD_REQUEST, "refused"))
    assert "Traceback" in formatted(ValueError("a bug"))
