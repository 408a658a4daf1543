"""The served OpenAPI document: routed = documented both ways, shared shapes as components, and
what it promises about each step type, trigger and condition."""

from __future__ import annotations

from typing import Any

from flowd.api.openapi import ERROR_SCHEMA, openapi_path
from flowd.errors import FlowdError
from flowd.steps import ALIASES, STEP_TYPES
from tests.conftest import Api


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_schema(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation = doc["paths"][path][method]
    return resolve(doc, operation["requestBody"]["content"]["application/json"]["schema"])


async def test_every_route_is_documented_and_every_documented_path_is_routed(api: Api):
    status, doc = await api.get("/v1/openapi.json", key=None)
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routed = {(openapi_path(r.resource.canonical), r.method)
              for r in api.app.router.routes() if r.method != "HEAD"}
    assert routed == documented
    for path, method in [("/v1/events", "POST"), ("/v1/contacts/{id}", "PUT"), ("/v1/me", "GET"),
                         ("/healthz", "GET"), ("/v1/keys/{id}", "DELETE")]:
        assert (path, method) in documented


async def test_documented_request_schemas_are_the_validated_ones(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    put_contact = doc["paths"]["/v1/contacts/{id}"]["put"]
    schema = body_schema(doc, "/v1/contacts/{id}", "put")
    assert schema["additionalProperties"] is False
    assert {"email", "timezone", "traits", "tags", "subscribed"} <= set(schema["properties"])
    assert schema["properties"]["id"] == {"type": "string", "readOnly": True}
    event = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    single, batch = (resolve(doc, option) for option in event["oneOf"])
    assert single["required"] == ["name"]
    assert batch["properties"]["batch"]["maxItems"] == 1000
    assert put_contact["security"] == [{"bearer": []}, {"sessionCookie": []}]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert {"200", "201", "401", "403", "413", "422", "503"} <= set(put_contact["responses"])


async def test_one_schema_per_step_type_discriminated_by_type(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    schemas = doc["components"]["schemas"]
    step = schemas["Step"]
    mapping = step["discriminator"]["mapping"]
    assert step["discriminator"]["propertyName"] == "type"
    assert set(mapping) == set(STEP_TYPES) | {a for a, t in ALIASES.items() if t in STEP_TYPES}
    assert mapping["delay"] == mapping["wait"] == "#/components/schemas/WaitStep"
    wait_for_event = schemas["WaitForEventStep"]
    assert "Branch labels: `event`, `timeout`" in wait_for_event["description"]
    assert "waits" in wait_for_event["description"]
    config = resolve(doc, wait_for_event["properties"]["config"])
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == {"event", "filter", "timeout", "lookback"}
    assert config["properties"]["filter"] == {"$ref": "#/components/schemas/Condition"}
    # A draft may lack required config fields: they are named, not required, in the schema.
    assert "required" not in config and "`event`" in config["description"]
    assert schemas["WebhookConfig"]["properties"]["method"]["enum"] == [
        "POST", "PUT", "PATCH", "DELETE", "GET"]


async def test_triggers_and_conditions_are_documented_as_the_server_takes_them(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    schemas = doc["components"]["schemas"]
    assert set(schemas["Trigger"]["discriminator"]["mapping"]) == {"event", "manual", "schedule",
                                                                   "webhook"}
    schedule = schemas["ScheduleTrigger"]
    assert set(schedule["properties"]) == {"type", "cron", "timezone", "audience"}
    assert "IANA" in schedule["properties"]["timezone"]["description"]
    assert "deterministic id" in schedule["description"]
    leaf = schemas["ConditionLeaf"]
    assert leaf["required"] == ["field", "op"]
    assert {"eq", "between", "before", "after", "exists", "wildcard"} <= set(
        leaf["properties"]["op"]["enum"])
    assert {o["$ref"].rsplit("/", 1)[1] for o in schemas["Condition"]["oneOf"]} == {
        "ConditionLeaf", "ConditionAll", "ConditionAny", "ConditionNot"}
    assert schemas["ConditionAll"]["properties"]["all"]["items"] == {
        "$ref": "#/components/schemas/Condition"}


async def test_input_and_output_shapes_have_distinct_names_and_responses_are_complete(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    schemas = doc["components"]["schemas"]
    workflows = doc["paths"]["/v1/workflows/{id}"]
    assert workflows["put"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WorkflowReplace"}
    assert workflows["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Workflow"}
    workflow = schemas["Workflow"]
    assert set(workflow["required"]) == set(workflow["properties"])
    assert workflow["properties"]["created_at"]["format"] == "date-time"
    assert schemas["WorkflowReplace"]["properties"]["version"] == {
        "type": "integer", "minimum": 1, "readOnly": True}
    run = schemas["Run"]
    assert run["properties"]["completed_at"]["type"] == ["string", "null"]
    assert run["properties"]["completed_at"]["format"] == "date-time"
    assert schemas["IngestResult"]["additionalProperties"] is False
    assert "runs_exited" in schemas["IngestResult"]["required"]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "enum" in node:   # every enum says its type
                assert "type" in node, node
            if node.get("type") == "object":   # and no object is typed as empty by generators
                assert "properties" in node or "additionalProperties" in node, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(doc)


async def test_statuses_the_server_answers_are_documented(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    paths = doc["paths"]
    assert set(paths["/v1/workflows/{id}/runs"]["post"]["responses"]) >= {"200", "201", "404", "409"}
    assert paths["/v1/workflows/{id}/runs"]["post"]["requestBody"]["required"] is False
    assert "422" in paths["/v1/contacts/{id}"]["get"]["responses"]
    contact_id = paths["/v1/contacts/{id}"]["get"]["parameters"][0]["schema"]
    assert contact_id["pattern"].startswith("^") and contact_id["pattern"].endswith("$")
    force = paths["/v1/workflows/{id}"]["delete"]["parameters"][1]
    assert force["name"] == "force" and force["schema"]["type"] == "boolean"
    for status in ("400", "408", "413", "422"):   # action endpoints refuse bodies they don't take
        assert status in paths["/v1/workflows/{id}/archive"]["post"]["responses"]


async def test_links_lead_from_what_creates_an_object_to_what_uses_it(api: Api):
    _, doc = await api.get("/v1/openapi.json", key=None)
    links = doc["paths"]["/v1/workflows"]["post"]["responses"]["201"]["links"]
    assert links["get_workflow"] == {"operationId": "get_workflow",
                                     "parameters": {"id": "$response.body#/id"}}
    assert "fire" in links and "archive_workflow" in links


async def test_health_and_the_page(api: Api):
    assert await api.get("/healthz", key=None) == (200, {"status": "ok"})
    status, html = await api.get("/", key=None)
    assert status == 200 and "flowd" in html and "/v1/openapi.json" in html


def test_every_error_code_the_server_sends_is_in_the_documented_enum():
    documented = set(ERROR_SCHEMA["properties"]["error"]["properties"]["code"]["enum"])
    classes, codes = [FlowdError], set()
    while classes:
        cls = classes.pop()
        codes.add(cls.code)
        classes.extend(cls.__subclasses__())
    assert codes <= documented, codes - documented
