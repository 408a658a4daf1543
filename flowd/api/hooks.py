"""Webhook and form triggers over HTTP: the public hook URL that starts runs, and rotating it.

`POST /v1/hooks/{token}` takes no API key: the token is the capability. JSON clients get JSON
(202, or the error envelope); a browser posting a form gets a small HTML page, for errors too,
with the same status.
"""

from __future__ import annotations

import html

from aiohttp import web

from flowd.api.hook_bodies import MULTIPART, properties
from flowd.api.middleware import read_body
from flowd.api.pages import page, wants_html
from flowd.api.routes import (
    FORM,
    RAW,
    Alternative,
    Call,
    Param,
    json_response,
    route,
    shape,
)
from flowd.api.workflows import WORKFLOW, present
from flowd.auth import Access
from flowd.errors import FlowdError, ValidationError
from flowd.hooks import delivery_id
from flowd.validation import Boolean, Json, Nullable, String

_TOKEN = (Param("token", String(min_len=1, max_len=300, description=(
    "From the workflow's `trigger.url`; anything else is a 404."))),)
DELIVERED = shape("HookDelivery", {
    "run_id": Nullable(String(description="null when the workflow's reentry rule kept the "
                                          "contact out (the delivery is still stored).")),
    "event_id": String(description="The stored `webhook.received` event."),
    "duplicate": Boolean(description="This `webhook-id` was delivered to this workflow "
                                     "before: the first delivery's answer, nothing started."),
})
_BODY = Json(object_only=True, description=(
    "A JSON object (any other JSON value is a 400), or an HTML form: url-encoded or multipart. "
    "A form's text fields become the properties (a name given several times: a list of its "
    "values); file parts are ignored. Any other Content-Type is read as JSON."))
_TITLES = {400: "The form could not be read", 401: "Not accepted",
           404: "This form is not available", 409: "This form is not taking submissions now",
           413: "The submission is too large", 422: "Please check the form"}


def _page(title: str, body: str, status: int) -> web.Response:
    return page(html.escape(title), body, status)


def _error_page(error: FlowdError) -> web.Response:
    body = f'<p role="alert">{html.escape(error.message)}</p>'
    if isinstance(error, ValidationError):
        items = "".join(f"<li>{html.escape(p.path)}: {html.escape(p.message)}</li>"
                        for p in error.problems)
        body += f"<ul>{items}</ul>"
    response = _page(_TITLES.get(error.status, "Something went wrong"), body, error.status)
    response.headers.update(error.headers)
    return response


@route("POST", "/v1/hooks/{token}", access=Access.PUBLIC, tag="hooks", path_params=_TOKEN,
       body=_BODY, body_optional=True, body_type=RAW, body_media=("application/json", FORM,
                                                                  MULTIPART),
       status=202, response=DELIVERED, errors=(401, 404, 409), error_pages=True,
       other_statuses={200: Alternative("A browser's form post (it prefers text/html to JSON, "
                                        "or posts a form without preferring JSON): a small "
                                        "\"received\" page; its errors are pages too.",
                                        "text/html", String())},
       summary="Start a run of the workflow whose webhook trigger has this URL (no API key).",
       description=(
           "The body becomes the properties of event `webhook.received`, stored with the run "
           "it starts (trigger `{\"type\": \"webhook\", \"event\"}`); the event starts no "
           "other workflow. Reentry rules apply. With the trigger's `contact_id_path`, the "
           "contact id is taken from the properties (422 `missing_contact_id` without one). "
           "A paused workflow's run is created paused; a workflow that is neither active nor "
           "paused answers 409. A URL that was rotated, or whose workflow no longer has a "
           "webhook trigger, is a 404. With the trigger's `secret`, Standard Webhooks "
           "headers are required (`webhook-id`, `webhook-timestamp` within 5 minutes, "
           "`webhook-signature` with one or more space-separated `v1,` signatures of which "
           "one must match the raw body): 401 otherwise, and nothing is stored. A "
           "`webhook-id` (signed or not) is the delivery's idempotency key: delivered to this "
           "workflow again, it starts nothing and answers as the first time with "
           "`duplicate: true`."))
async def deliver(call: Call) -> web.StreamResponse:
    request, hooks = call.request, call.services.hooks
    browser = wants_html(request.headers.get("Accept", ""), request.content_type)
    try:
        workflow_id, generation = hooks.parse(call.path("token"))
        raw = await read_body(request)
        target = await hooks.target(workflow_id, generation)
        hooks.check_signature(target, request.headers, raw)
        found = properties(raw, request.content_type, request.headers.get("Content-Type", ""),
                           request.charset)
        delivered = await hooks.deliver(target, found, delivery_id(request.headers))
    except FlowdError as error:
        if not browser:
            raise
        return _error_page(error)
    if browser:
        return _page("Received", "<p>Thank you: your submission was received.</p>", 200)
    return json_response(delivered.to_json(), status=202)


@route("POST", "/v1/workflows/{id}/trigger/rotate", access=Access.WRITE, tag="workflows",
       errors=(404, 409), response=WORKFLOW,
       summary="A new webhook URL for the workflow's trigger; the old one is a 404 from now on.",
       description="409 when the workflow's trigger is not a webhook. The workflow's version "
                   "does not change (the URL is not part of the definition).")
async def rotate_hook(call: Call) -> web.Response:
    workflow = await call.services.hooks.rotate(call.project, call.path("id"))
    return json_response(present(call, workflow))
