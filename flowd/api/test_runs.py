"""Time-travel test runs over HTTP: of a saved workflow (its current version, a draft too) or
of a definition sent along. See flowd.testrun."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from flowd.api.routes import Call, json_response, route, shape
from flowd.auth import Access
from flowd.contact_fields import CONTACT_FIELDS, CONTACT_ID
from flowd.definition_schema import DEFINITION_FIELDS
from flowd.definitions import analyze, normalize
from flowd.durations import parse_duration
from flowd.effects.base import HttpResponse
from flowd.errors import Problem, ValidationError
from flowd.mailer import MailSettings
from flowd.testrun import (
    DEFAULT_HORIZON_MS,
    MAX_EVENTS,
    MAX_HORIZON_MS,
    MAX_STEPS,
    TestRunRequest,
    audiences_for,
    parse_events,
    templates_for,
    test_run,
)
from flowd.validation import (
    Array,
    Enum,
    Integer,
    Json,
    MapOf,
    Nullable,
    Object,
    String,
    text,
    time_string,
)
from flowd.workflows import refuse_errors

_FIELDS = {
    "event": Object({"name": text(1, 200, description="Default: test.run."),
                     "properties": Json(object_only=True)},
                    description="The trigger event the run starts with."),
    "contact": Object({**CONTACT_FIELDS.fields, "id": CONTACT_ID}, description=(
        "The contact the run is for (default id `test-contact`, no fields): it exists only "
        "in the test run.")),
    "events": Array(Object({
        "after": String(min_len=1, description="ISO 8601 duration from the start (default "
                                               "PT0S)."),
        "name": text(1, 200),
        "properties": Json(object_only=True),
    }, required=("name",)), max_items=MAX_EVENTS, description=(
        "Events of the contact arriving at their virtual times: they match waits, triggers and "
        "exit rules exactly as posted ones do.")),
    "responses": MapOf(Object({
        "status": Integer(min=100, max=599), "body": Json(),
        "headers": MapOf(String(max_len=8192), max_keys=50),
        "text": String(max_len=100_000), "choice": String(max_len=100),
        "fields": Json(object_only=True),
    }, exclusive=("text", "choice", "fields")), max_keys=500, description=(
        "By step id: the answer a webhook or http_request step gets (`status`, `body`, "
        "`headers`; default 200 {}), or the model's answer an ai step gets: `text` "
        "(generate), `choice` (decide) or `fields` (extract, generate with fields), checked "
        "as a real answer is. An ai step without one is `ai_unavailable`: a test run asks no "
        "model.")),
    "horizon": String(min_len=1, description="How far virtual time may go: an ISO 8601 "
                                             "duration, at most P366D (default P30D)."),
}
TEST_RUN = Object(_FIELDS).named("TestRunRequest")
TEST_DEFINITION = Object({**_FIELDS, "definition": Object(
    {**DEFINITION_FIELDS, "name": text(1, 200)}, description="The workflow to test, unsaved "
                                                           "(`name` optional).")},
    required=("definition",)).named("TestRunDefinitionRequest")
RESULT = shape("TestRunResult", {
    "status": Enum(("pending", "running", "waiting", "paused", "completed", "failed",
                    "cancelled"), description="The run's status when the test run ended."),
    "run": Json(object_only=True, description="vars, error, exit_reason, wait, current_step_id."),
    "trace": Array(Json(object_only=True), description=(
        "Each step visit: step_id, type, status, at (virtual time), finished_at, outcome, "
        "branch, input, output, error.")),
    "effects": Array(Json(object_only=True), description=(
        "What would have been done, in virtual-time order: kind (webhook, http_request, "
        "email, sms, push, slack, ai), step_id, at, and what would be sent — a message's `to` "
        "and `status` with its email `subject`, `text`, `html`; SMS `body`; push `title`, "
        "`body`, `data` (one per push token); Slack `text`, `blocks`; for ai, the `messages` "
        "(the rendered prompt), the step's `model` (null: the configured one) and whether a "
        "JSON answer is asked (`json`); an ai step asked again after an answer that did not "
        "fit lists both calls.")),
    "ends_at": time_string(description="When the run ended, or the horizon."),
    "stopped": Nullable(Enum(("step_limit", "time_limit")), description=(
        f"Why the test run stopped early: {MAX_STEPS} steps, or 5 s of real time.")),
}, description="Nothing was written, sent or called.")
_DESCRIPTION = ("The same engine and steps as real runs, on a throwaway in-memory store, with a "
                "virtual clock that jumps to what comes next: days of waits pass at once. "
                "Webhooks and HTTP requests are answered from `responses` (else 200 {}), ai steps "
                "too (else they take their `unavailable` path: no model is asked); emails, "
                "SMS, push notifications and Slack messages go through their real messengers "
                "(suppression included) to recorders; nothing is written, sent or called. "
                "The send policy applies as in real runs (the project's [policy] and the "
                "workflow's settings): a message deferred by quiet hours or a frequency cap "
                "goes at the virtual time its window ends, and its trace entry says why "
                "(`output.deferred`); caps count the test run's own messages. "
                "Child workflows and emitted events see only the tested workflow. A messaging "
                "step's `audience` is checked on the test's own contact: the filter of the "
                "project's audience (as it is when the test run starts) evaluated at virtual "
                "time; an audience the project does not have fails the step with "
                "`unknown_audience`. 422 when the workflow has error issues.")


@route("POST", "/v1/workflows/{id}/test-run", access=Access.READ, tag="workflows",
       body=TEST_RUN, body_optional=True, errors=(404,), response=RESULT,
       summary="Dry-run the workflow's current version (a draft too) for one contact.",
       description=_DESCRIPTION)
async def test_saved(call: Call) -> web.Response:
    workflow = await call.services.workflows.get(call.project, call.path("id"))
    return await _respond(call, workflow.definition, workflow.name)


@route("POST", "/v1/workflows/test-run", access=Access.READ, tag="workflows",
       body=TEST_DEFINITION, response=RESULT,
       summary="Dry-run an unsaved definition for one contact.", description=_DESCRIPTION)
async def test_unsaved(call: Call) -> web.Response:
    raw = call.body["definition"]
    return await _respond(call, normalize(raw), raw.get("name") or "test run")


async def _respond(call: Call, definition: dict[str, Any], name: str) -> web.Response:
    compiled, issues = analyze(definition)
    if compiled is None:   # what analyze says of a definition with error issues
        raise refuse_errors(issues, "the workflow has errors; fix them before a test run")
    body = call.body or {}
    services = call.services
    request = TestRunRequest(
        definition=definition, name=name, event=body.get("event") or {},
        contact=body.get("contact"), events=parse_events(body.get("events") or []),
        responses={step: HttpResponse(r.get("status", 200), dict(r.get("headers") or {}),
                                      r.get("body", {}), False)
                   for step, r in (body.get("responses") or {}).items()
                   if not _AI_ANSWER.intersection(r)},
        ai_responses={step: r for step, r in (body.get("responses") or {}).items()
                      if _AI_ANSWER.intersection(r)},
        horizon_ms=_horizon(body.get("horizon")),
        templates=await templates_for(services.store, call.project, definition),
        audiences=await audiences_for(services.store, call.project, definition))
    result = await test_run(request, now=services.clock.now_ms(),
                            public_url=services.public_url(),
                            mail_settings=MailSettings.of(services.config.email),
                            slack_webhook_url=services.config.slack.webhook_url,
                            send_policy=services.send_policy, sandbox=services.sandbox)
    return json_response(result)


_AI_ANSWER = frozenset(("text", "choice", "fields"))


def _horizon(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_HORIZON_MS
    try:
        horizon = parse_duration(raw)
    except ValueError as exc:
        raise ValidationError([Problem("horizon", str(exc), "invalid_duration")]) from None
    if not 0 < horizon <= MAX_HORIZON_MS:
        raise ValidationError([Problem("horizon", "must be more than zero and at most P366D",
                                       "invalid_duration")])
    return horizon

