"""GET /v1/step-types and /v1/trigger-types: what the builder page draws from, checked against
what POST /v1/workflows accepts."""

from __future__ import annotations

import jsonschema
import pytest

from flowd.definition_schema import TRIGGER_KINDS
from flowd.steps import ALIASES, STEP_TYPES
from tests.conftest import Api

SAMPLES = {
    "wait": {"duration": "PT1H"},
    "set": {"vars": {"plan": "pro", "n": 2}},
    "webhook": {"url": "https://example.com/hook", "method": "PUT", "headers": {"X-A": "b"},
                "body": {"x": 1}, "timeout": "PT5S"},
    "condition": {"if": {"all": [{"field": "event.properties.amount", "op": "gt", "value": 5},
                                 {"not": {"field": "contact.email", "op": "exists"}}]}},
    "split": {"branches": [{"name": "big", "if": {"field": "event.properties.amount",
                                                  "op": "gte", "value": 100}}]},
    "loop": {"items": [1, 2, 3], "max_items": 10},
    "exit": {},
}


async def test_every_step_type_is_listed_with_its_schema_branches_and_aliases(api: Api):
    status, body = await api.get("/v1/step-types")
    assert status == 200
    names = [item["name"] for item in body["data"]]
    assert names == sorted(STEP_TYPES)
    by_name = {item["name"]: item for item in body["data"]}
    for name, step_type in STEP_TYPES.items():
        item = by_name[name]
        assert set(item) == {"name", "description", "config_schema", "branches",
                             "dynamic_branches", "waits", "aliases"}
        assert item["description"] == step_type.summary
        assert item["waits"] is step_type.waits
        assert item["aliases"] == sorted(a for a, t in ALIASES.items() if t == name)
        schema = item["config_schema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "components" not in str(schema)   # nothing refers outside the schema itself
        assert schema.get("required", []) == list(step_type.schema.required)
        if name == "split":
            assert item["branches"] == [] and item["dynamic_branches"] is True
        elif name == "ai":   # a decide step's options, beside the fixed `unavailable`
            assert item["branches"] == ["unavailable"] and item["dynamic_branches"] is True
        else:
            assert item["branches"] == list(step_type.branches)
            assert item["dynamic_branches"] is False
    assert by_name["wait_for_event"]["branches"] == ["event", "timeout"]
    assert by_name["wait"]["aliases"] == ["delay"] and by_name["wait"]["waits"] is True


async def test_configs_valid_by_the_schema_are_accepted_and_invalid_ones_refused(api: Api):
    _, body = await api.get("/v1/step-types")
    schemas = {item["name"]: item["config_schema"] for item in body["data"]}
    for name, config in SAMPLES.items():
        jsonschema.validate(config, schemas[name])
        status, created = await api.post("/v1/workflows", json={
            "name": f"sample {name}", "trigger": {"type": "manual"},
            "steps": [{"id": "s", "type": name, "config": config}]})
        assert status == 201, (name, created)
        assert created["steps"][0]["config"] == config
        assert not [i for i in created["issues"] if i["code"] == "missing_config"], created
    for name, config in [("wait", {"duration": "PT1H", "bogus": 1}), ("webhook", {"url": 5}),
                         ("loop", {"items": [], "max_items": 0})]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config, schemas[name])
        status, _ = await api.post("/v1/workflows", json={
            "name": "bad", "steps": [{"id": "s", "type": name, "config": config}]})
        assert status == 422, name


async def test_trigger_types_are_listed_with_their_schemas(api: Api):
    viewer = await api.new_key("viewer")
    status, body = await api.get("/v1/trigger-types", key=viewer)
    assert status == 200
    assert [item["name"] for item in body["data"]] == sorted(TRIGGER_KINDS)
    by_name = {item["name"]: item for item in body["data"]}
    for name, item in by_name.items():
        assert set(item) == {"name", "description", "config_schema"} and item["description"]
        jsonschema.Draft202012Validator.check_schema(item["config_schema"])
    trigger = {"type": "schedule", "cron": "0 9 * * 1", "timezone": "Europe/Berlin"}
    jsonschema.validate(trigger, by_name["schedule"]["config_schema"])
    status, created = await api.post("/v1/workflows", json={
        "name": "scheduled", "trigger": trigger,
        "steps": [{"id": "s", "type": "wait", "config": {"duration": "PT1H"}}]})
    assert status == 201, created
    ingest = await api.new_key("ingest")
    status, _ = await api.get("/v1/step-types", key=ingest)
    assert status == 403
