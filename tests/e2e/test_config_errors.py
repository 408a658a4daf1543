"""Bad settings stop flowd with exit code 2 and one line on stderr naming the setting; an unknown
FLOWD_* environment variable is only a warning."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import clean_env, run_flowd, wait_until


def assert_one_line_error(result, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(("toml", "needles"), [
    ("[server]\nprott = 8080\n", ("server.prott",)),
    ("[sever]\nport = 8080\n", ("sever",)),
    ('[server]\nport = "abc"\n', ("server.port", "abc")),
    ("[storage]\nsynchronous = \"sometimes\"\n", ("storage.synchronous", "sometimes")),
])
def test_bad_config_file(tmp_path, toml, needles) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = run_flowd("--config", str(config), "--db", str(tmp_path / "x.db"), "--port", "0",
                       cwd=tmp_path)
    assert_one_line_error(result, *needles, str(config))
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(("name", "value", "needles"), [
    ("FLOWD_STORAGE_SYNCHRONOUS", "sometimes", ("storage.synchronous", "sometimes")),
    ("FLOWD_SERVER_PORT", "eighty", ("server.port", "eighty")),
])
def test_bad_environment_variable(tmp_path, name, value, needles) -> None:
    result = run_flowd("--db", str(tmp_path / "x.db"), "--port", "0", cwd=tmp_path,
                       env=clean_env({name: value}))
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(("name", "advice"), [
    ("FLOWD_SERVER_PROTT", "did you mean FLOWD_SERVER_PORT?"),
    ("FLOWD_HARNESS_RUN_ID", "settings are named FLOWD_<SECTION>_<KEY>"),
])
def test_unknown_environment_variable_is_a_warning_and_the_server_starts(start_server, name,
                                                                          advice) -> None:
    """Deployment tools and test harnesses set FLOWD_* variables of their own."""
    server = start_server(env={name: "1", "FLOWD_SERVER_ACCESS_LOG": "true"})
    assert server.get("/v1/me").status == 200
    warnings = [line for line in server.log_text().splitlines() if name in line]
    assert len(warnings) == 1, server.log_text()
    assert "WARNING flowd.config:" in warnings[0] and advice in warnings[0], warnings[0]
    # The settings next to it still apply.
    assert wait_until(lambda: "GET /v1/me" in server.log_text(), 5, "the access log line")


def test_unknown_environment_variable_does_not_hide_a_bad_value(tmp_path) -> None:
    result = run_flowd("--db", str(tmp_path / "x.db"), "--port", "0", cwd=tmp_path,
                       env=clean_env({"FLOWD_SERVER_PROTT": "1", "FLOWD_SERVER_PORT": "eighty"}))
    assert_one_line_error(result, "server.port", "eighty")
    assert not (tmp_path / "x.db").exists()


def test_missing_config_file(tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    result = run_flowd("--config", str(missing), "--port", "0", cwd=tmp_path)
    assert_one_line_error(result, str(missing))


def test_bad_setting_in_default_flowd_toml(tmp_path) -> None:
    (tmp_path / "flowd.toml").write_text("[auth]\nkey_cache_seconds = -1\n")
    result = run_flowd("--port", "0", cwd=tmp_path)
    assert_one_line_error(result, "auth.key_cache_seconds", "flowd.toml")


@pytest.mark.parametrize("value", ["short", "has spaces in this admin key"])
def test_bad_admin_key_environment_variable(tmp_path, value) -> None:
    result = run_flowd("--db", str(tmp_path / "x.db"), "--port", "0", cwd=tmp_path,
                       env=clean_env({"FLOWD_ADMIN_KEY": value}))
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("flowd:")]
    assert len(errors) == 1 and "FLOWD_ADMIN_KEY" in errors[0], result.stderr
    assert value not in result.stderr
