"""The served OpenAPI document works for the tools that read it: it is a valid OpenAPI 3.1
document, openapi-python-client generates a client from it without one warning or skipped
operation, and that generated client talks to a real server (the PUT that a model-name clash
once made it drop included)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from openapi_spec_validator import validate

from tests.e2e.conftest import ServerProcess


@pytest.fixture
def document(server: ServerProcess) -> dict[str, Any]:
    response = server.get("/v1/openapi.json", key=None)
    assert response.status == 200
    return response.body


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)


@pytest.fixture
def generated(document: dict[str, Any], tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """(the generated package, what the generator printed)."""
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    # No formatter runs after it; the open pixel's GIF is bytes to a client, as the generator's
    # documented override says (it knows only JSON, text and octet-stream bodies).
    (tmp_path / "config.yaml").write_text(
        "post_hooks: []\ncontent_type_overrides:\n  image/gif: application/octet-stream\n")
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json",
         "--config", "config.yaml", "--output-path", "client"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sys.path.insert(0, str(tmp_path / "client"))
    try:
        yield importlib.import_module("flowd_client"), output
    finally:
        sys.path.remove(str(tmp_path / "client"))
        for name in [n for n in sys.modules if n == "flowd_client" or n.startswith("flowd_client.")]:
            del sys.modules[name]


def test_a_client_generates_without_warnings_for_every_operation(
        document: dict[str, Any], generated: tuple[Any, str]) -> None:
    package, output = generated
    assert "Warning" not in output and "Unable to" not in output, output
    root = Path(package.__file__).parent / "api"
    modules = {path.stem for path in root.rglob("*.py") if path.stem != "__init__"}
    operations = {op["operationId"] for ops in document["paths"].values() for op in ops.values()}
    assert operations <= modules, operations - modules


def test_the_generated_client_creates_replaces_and_fires(server: ServerProcess,
                                                          generated: tuple[Any, str]) -> None:
    package, _ = generated
    client = package.AuthenticatedClient(base_url=server.url, token=server.key)
    models = importlib.import_module("flowd_client.models")
    create = importlib.import_module("flowd_client.api.workflows.create_workflow")
    replace = importlib.import_module("flowd_client.api.workflows.replace_workflow")
    fire = importlib.import_module("flowd_client.api.runs.fire")

    body = {"name": "from the client", "status": "active", "trigger": {"type": "manual"},
            "steps": [{"id": "pause", "type": "wait", "config": {"duration": "PT0.2S"}},
                      {"id": "done", "type": "exit", "config": {"reason": "ok"}}]}
    created = create.sync(client=client, body=models.WorkflowCreate.from_dict(body))
    assert isinstance(created, models.Workflow), created
    assert created.version == 1 and created.status.value == "active"

    replaced = replace.sync(created.id, client=client, body=models.WorkflowReplace.from_dict(
        {**body, "name": "renamed", "steps": body["steps"][:1]}))
    assert isinstance(replaced, models.Workflow), replaced
    assert replaced.name == "renamed" and replaced.version == 2

    run = fire.sync_detailed(created.id, client=client,
                             body=models.FireRequest.from_dict({"contact_id": "u_1"}))
    assert run.status_code == 201 and run.parsed.workflow_version == 2
