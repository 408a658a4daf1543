"""`python -m flowd export|import PATH --db`: the bundle verbs on a database file, no server."""

from __future__ import annotations

import json
from pathlib import Path

from flowd.cli import main
from tests.conftest import Api

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
BUNDLE = {
    "format": "flowd.bundle/1",
    "templates": [{"name": "welcome", "channel": "email", "subject": "Hi", "text": "Hello"}],
    "workflows": [{"name": "Welcome", "status": "active",
                   "trigger": {"type": "event", "event": "user.created"},
                   "steps": [{"id": "mail", "type": "send_email",
                              "config": {"template": "welcome"}}]}],
}


def _write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def _last_json(out: str) -> dict:
    return json.loads(out[out.index("{"):])


async def test_import_then_export_on_a_file_and_the_same_bundle_on_a_server(tmp_path, capsys,
                                                                           api: Api):
    db = str(tmp_path / "cli.db")
    source = _write(tmp_path / "in.json", BUNDLE)
    assert main(["import", source, "--db", db]) == 0
    result = _last_json(capsys.readouterr().out)
    assert [(e["type"], e["name"]) for e in result["created"]] == [("template", "welcome"),
                                                                   ("workflow", "Welcome")]
    assert main(["import", source, "--db", db]) == 0          # idempotent by name
    result = _last_json(capsys.readouterr().out)
    assert result["created"] == [] and len(result["unchanged"]) == 2

    out = tmp_path / "out.json"
    assert main(["export", str(out), "--db", db]) == 0
    exported = json.loads(out.read_text())
    assert exported["$schema"] == "http://127.0.0.1:8080/v1/schemas/bundle.json"
    assert exported["workflows"][0]["steps"][0]["config"] == {"template": "welcome"}

    # The file imports into a running server, whose export is the same text.
    status, body = await api.post("/v1/import", json=exported)
    assert status == 200, body
    async with api.client.get("/v1/export", headers={"Authorization": f"Bearer {api.key}"}) as r:
        served = await r.text()
    schema_url = json.loads(served)["$schema"]
    assert served.replace(schema_url, exported["$schema"]) == out.read_text()


def test_a_bad_bundle_is_refused_with_paths_and_changes_nothing(tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    bad = json.loads(json.dumps(BUNDLE))
    bad["workflows"].append({"name": "Broken", "status": "active",
                             "steps": [{"id": "w", "type": "wait"}]})
    assert main(["import", _write(tmp_path / "bad.json", bad), "--db", db]) == 1
    assert "workflows[1].steps[0].config" in capsys.readouterr().err
    assert main(["export", "-", "--db", db]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["workflows"] == [] and exported["templates"] == []


def test_a_definition_of_another_tool(tmp_path, capsys):
    db = str(tmp_path / "cli.db")
    assert main(["import", str(FIXTURES / "ref001_welcome_flow.json"), "--db", db]) == 0
    result = _last_json(capsys.readouterr().out)
    assert result["source"] == "reference 001 (nodes)" and result["warnings"]
    assert main(["import", str(tmp_path / "missing.json"), "--db", db]) == 1
    assert "cannot read" in capsys.readouterr().err
