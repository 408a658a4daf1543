"""Settings: precedence, clear errors, and flowd.toml / README / config.py in agreement."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from flowd.config import describe_settings, load_config
from flowd.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    config = load_config(path=None, environ={})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.storage.path == "flowd.db" and config.storage.synchronous == "normal"


def test_precedence_file_then_env_then_flags(tmp_path):
    file = tmp_path / "f.toml"
    file.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[storage]\nsynchronous = "full"\n')
    config = load_config(str(file), environ={"FLOWD_SERVER_PORT": "9100"})
    assert config.server.port == 9100 and config.server.host == "0.0.0.0"
    assert config.storage.synchronous == "full"
    config = load_config(str(file), {"server.port": 9200}, environ={"FLOWD_SERVER_PORT": "9100"})
    assert config.server.port == 9200
    assert load_config(str(file), environ={"FLOWD_SERVER_ACCESS_LOG": "yes"}).server.access_log is True


@pytest.mark.parametrize("toml,env,needle", [
    ("[server]\nprot = 1\n", {}, "server.prot"),
    ("[sever]\nport = 1\n", {}, "[sever]"),
    ('[server]\nport = "abc"\n', {}, "server.port"),
    ("[server]\nport = 70000\n", {}, "server.port"),
    ('[storage]\nsynchronous = "sometimes"\n', {}, "storage.synchronous"),
    ("[server\n", {}, "not valid TOML"),
    ("", {"FLOWD_SERVER_PORT": "eighty"}, "server.port"),
    ("", {"FLOWD_SERVER_ACCESS_LOG": "maybe"}, "server.access_log"),
])
def test_bad_settings_name_the_setting(tmp_path, toml, env, needle):
    file = tmp_path / "f.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(str(file), environ=env)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name,closest", [
    ("FLOWD_SERVER_PROTT", "FLOWD_SERVER_PORT"),
    ("FLOWD_SEVER_PORT", "FLOWD_SERVER_PORT"),
    ("FLOWD_PORT", "FLOWD_SERVER_PORT"),              # the key without its section
    ("FLOWD_SERVER_LOGLEVEL", "FLOWD_SERVER_LOG_LEVEL"),
    ("FLOWD_STORAGE_SYNC", "FLOWD_STORAGE_SYNCHRONOUS"),
    ("FLOWD_ADMIN_KY", "FLOWD_ADMIN_KEY"),            # not a setting, but a variable flowd reads
    ("FLOWD_CONFIG_PATH", "FLOWD_CONFIG"),
])
def test_unknown_environment_variable_is_a_warning_with_the_closest_name(name, closest):
    config = load_config(path=None, environ={name: "1", "FLOWD_SERVER_PORT": "9100"})
    assert config.server.port == 9100   # the start goes on, with the real settings applied
    assert config.warnings == (
        f"unknown environment variable {name} (ignored): did you mean {closest}?",)


@pytest.mark.parametrize("name", ["FLOWD_HARNESS_RUN_ID", "FLOWD_DEPLOY_ENV", "FLOWD_",
                                  "FLOWD_SECRET"])
def test_unknown_environment_variable_far_from_any_setting_says_how_they_are_named(name):
    [warning] = load_config(path=None, environ={name: "x"}).warnings
    assert warning.startswith(f"unknown environment variable {name} (ignored): ")
    assert "settings are named FLOWD_<SECTION>_<KEY>, e.g. FLOWD_SERVER_PORT" in warning
    assert "did you mean" not in warning and "\n" not in warning


def test_each_unknown_environment_variable_warns_once_and_known_ones_not_at_all():
    environ = {"FLOWD_B_UNKNOWN": "1", "FLOWD_A_UNKNOWN": "1", "FLOWD_ADMIN_KEY": "k" * 20,
               "FLOWD_CONFIG": "", "FLOWD_SERVER_PORT": "9100", "OTHER_TOOL_PORT": "1"}
    warnings = load_config(path=None, environ=environ).warnings
    assert [w.split()[3] for w in warnings] == ["FLOWD_A_UNKNOWN", "FLOWD_B_UNKNOWN"]


def test_warnings_do_not_make_configs_differ():
    assert load_config(path=None, environ={"FLOWD_X": "1"}) == load_config(path=None, environ={})
    assert load_config(path=None, environ={}).warnings == ()


def test_unknown_environment_variable_does_not_excuse_a_bad_value():
    with pytest.raises(ConfigError, match="server.port"):
        load_config(path=None, environ={"FLOWD_SERVER_PROTT": "1", "FLOWD_SERVER_PORT": "eighty"})


@pytest.mark.parametrize("toml,env,expected", [
    ("[server]\nport = 1.5\n", {}, "setting server.port ({file}) must be an integer, got 1.5"),
    ("[server]\nport = true\n", {}, "setting server.port ({file}) must be an integer, got True"),
    ("", {"FLOWD_SERVER_PORT": "eighty"},
     "setting server.port (environment FLOWD_SERVER_PORT) must be an integer, got 'eighty'"),
    ('[server]\nshutdown_timeout = "soon"\n', {},
     "setting server.shutdown_timeout ({file}) must be a number, got 'soon'"),
    ("", {"FLOWD_SERVER_SHUTDOWN_TIMEOUT": "ten"},
     "setting server.shutdown_timeout (environment FLOWD_SERVER_SHUTDOWN_TIMEOUT) must be a "
     "number, got 'ten'"),
    ("[server]\naccess_log = 1\n", {},
     "setting server.access_log ({file}) must be true or false, got 1"),
    ("", {"FLOWD_SERVER_ACCESS_LOG": "maybe"},
     "setting server.access_log (environment FLOWD_SERVER_ACCESS_LOG) must be true or false, "
     "got 'maybe'"),
    ("[server]\nhost = 8080\n", {}, "setting server.host ({file}) must be a string, got 8080"),
    ("[storage]\npath = false\n", {}, "setting storage.path ({file}) must be a string, got False"),
])
def test_wrong_type_messages_name_the_type_in_words(tmp_path, toml, env, expected):
    file = tmp_path / "f.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(str(file), environ=env)
    assert str(info.value) == expected.format(file=file)


def test_a_named_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.toml"), environ={})


def test_shipped_flowd_toml_documents_every_setting_with_its_default():
    text = (ROOT / "flowd.toml").read_text()
    # Every setting appears, commented out, with its default: `# key = value`.
    current = None
    found = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"#?\s*\[(\w+)\]\s*", line):
            current = m.group(1)
        elif current and (m := re.fullmatch(r"#\s*(\w+)\s*=\s*(.+)", line)):
            found[(current, m.group(1))] = tomllib.loads(f"v = {m.group(2)}")["v"]
    expected = {(s, k): d for s, k, d, _ in describe_settings()}
    assert found == expected
    # And the file as shipped is valid and loads to the defaults.
    assert load_config(str(ROOT / "flowd.toml"), environ={}).server.port == 8080


def test_readme_settings_table_matches_the_code():
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)\.(\w+)` \| `([^`]*)` \| (.+?) \|$", text, re.MULTILINE)
    documented = {(s, k): (d, h) for s, k, d, h in rows}
    expected = {}
    for section, key, default, help_text in describe_settings():
        shown = ("true" if default else "false") if isinstance(default, bool) else (
            f'"{default}"' if isinstance(default, str) else str(default))
        expected[(section, key)] = (shown, help_text)
    assert documented == expected


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_a_number_setting_must_be_finite(text):
    with pytest.raises(ConfigError, match="must be a finite number"):
        load_config(path=None, environ={"FLOWD_SERVER_SHUTDOWN_TIMEOUT": text})
