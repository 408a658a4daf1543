"""The served OpenAPI document and the router agree, both ways."""

from __future__ import annotations

from flowd.api.openapi import ERROR_SCHEMA, openapi_path
from flowd.errors import FlowdError
from tests.conftest import Api


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
    schema = put_contact["requestBody"]["content"]["application/json"]["schema"]
    assert schema["additionalProperties"] is False
    assert {"email", "timezone", "traits", "tags", "subscribed"} <= set(schema["properties"])
    event = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    single, batch = event["oneOf"]
    assert single["required"] == ["name"]
    assert batch["properties"]["batch"]["maxItems"] == 1000
    assert put_contact["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert "422" in put_contact["responses"] and "401" in put_contact["responses"]


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
