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
    ("", {"FLOWD_SERVER_PROTT": "1"}, "server.prott"),
    ("", {"FLOWD_PORT": "1"}, "FLOWD_PORT"),
    ("", {"FLOWD_SERVER_PORT": "eighty"}, "server.port"),
    ("", {"FLOWD_SERVER_ACCESS_LOG": "maybe"}, "server.access_log"),
])
def test_bad_settings_name_the_setting(tmp_path, toml, env, needle):
    file = tmp_path / "f.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(str(file), environ=env)
    assert needle in str(info.value) and "\n" not in str(info.value)


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
