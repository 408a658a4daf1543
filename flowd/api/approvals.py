"""The approval links: a page (or JSON) that shows what is asked and changes nothing, and the
POST that decides — no API key, the token is the capability. Browsers get HTML pages, errors
included; API clients get JSON in the usual envelope."""

from __future__ import annotations

import html

from aiohttp import web

from flowd.api.pages import page, wants_html
from flowd.api.routes import (
    FORM,
    JSON_OR_FORM,
    Call,
    Param,
    json_response,
    route,
    shape,
)
from flowd.approvals import DECISIONS, MAX_COMMENT, ApprovalView
from flowd.auth import Access
from flowd.errors import FlowdError
from flowd.timeutil import format_ms
from flowd.validation import Array, Enum, Nullable, Object, String, time_string

_TOKEN = (Param("token", String(min_len=1, max_len=200, description=(
    "The token from an approval link; anything else is a 404."))),)
APPROVAL = shape("Approval", {
    "id": String(), "status": Enum(("pending", "approved", "rejected", "expired")),
    "message": String(), "workflow_id": String(), "workflow_name": String(),
    "run_id": String(), "step_id": String(), "contact_id": Nullable(String()),
    "approvers": Array(String()), "approver": Nullable(String(description=(
        "Whom this link names (null: the link in the step's output)."))),
    "created_at": time_string(), "expires_at": time_string(),
    "decision": Nullable(Enum(DECISIONS)), "comment": Nullable(String()),
    "decided_by": Nullable(String()), "decided_at": Nullable(time_string()),
}, description="What an approval asks, and its decision once made.")
DECISION = Object({
    "decision": Enum(DECISIONS),
    "comment": String(max_len=MAX_COMMENT),
}, required=("decision",)).named("ApprovalDecision")
_ERRORS = (404, 409, 410, 429)


def _browser(call: Call) -> bool:
    return wants_html(call.request.headers.get("Accept", ""), call.request.content_type)


def _client(call: Call) -> str:
    # The peer address: behind a reverse proxy every client shares the proxy's, which then
    # throttles them together (the proxy should limit per client itself).
    return call.request.remote or "unknown"


@route("GET", "/v1/approvals/{token}", access=Access.PUBLIC, tag="approvals", errors=(404, 429),
       path_params=_TOKEN, response=APPROVAL, page=True, error_pages=True,
       summary="What an approval link asks: an HTML page with approve / reject buttons, or "
               "JSON with `Accept: application/json`. Changes nothing.",
       description="Mail scanners and link previews fetch every link in a message, so looking "
                   "never decides. Too many unknown tokens from one client: 429 with "
                   "Retry-After.")
async def show_approval(call: Call) -> web.StreamResponse:
    try:
        view = await call.services.approvals.view(call.path("token"), _client(call))
    except FlowdError as error:
        return _error_page(call, error)
    if not _browser(call):
        return json_response(view.to_json())
    return page("Approval requested", _ask(view))


@route("POST", "/v1/approvals/{token}", access=Access.PUBLIC, tag="approvals", errors=_ERRORS,
       path_params=_TOKEN, body=DECISION, body_type=JSON_OR_FORM,
       body_media=("application/json", FORM), response=APPROVAL, page=True, error_pages=True,
       summary="Decide: approved or rejected, with an optional comment. Exactly once.",
       description="The decision, the comment and who decided (the approver the link names, "
                   "or `link` for the step output's link) become the step's output, and the "
                   "run goes on along `approved` or `rejected`. 409 once decided (by anyone); "
                   "410 after it expired or when the run stopped waiting (cancelled); 404 for "
                   "an unknown token; 429 after too many unknown tokens from one client. "
                   "JSON or the page's form (which gets an HTML page back).")
async def decide_approval(call: Call) -> web.StreamResponse:
    try:
        view = await call.services.approvals.decide_by_token(
            call.path("token"), call.body["decision"], call.body.get("comment") or None,
            _client(call))
    except FlowdError as error:
        return _error_page(call, error)
    if not _browser(call):
        return json_response(view.to_json())
    decision = html.escape(view.approval.decision or "")
    return page("Thank you", f"<p>The request was <strong>{decision}</strong>. "
                             "You can close this page.</p>")


def _ask(view: ApprovalView) -> str:
    a, e = view.approval, html.escape
    facts = [("Workflow", view.workflow_name or a.workflow_id), ("Run", a.run_id)]
    if a.contact_id:
        facts.append(("Contact", a.contact_id))
    facts.append(("Decide by", format_ms(a.expires_at) or ""))
    details = "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in facts)
    status = a.status(view.now)
    if status != "pending":
        said = (f"{status} by {a.decided_by}" if a.decision else "expired")
        return (f"<p>{e(a.message)}</p><dl>{details}</dl>"
                f"<p role=\"status\">This request was {e(said)}.</p>")
    return (f"<p>{e(a.message)}</p><dl>{details}</dl>"
            '<form method="post"><p><label for="comment">Comment (optional)</label><br>'
            f'<textarea id="comment" name="comment" rows="3" maxlength="{MAX_COMMENT}">'
            "</textarea></p>"
            '<button type="submit" name="decision" value="approved">Approve</button>'
            '<button type="submit" name="decision" value="rejected" class="secondary">'
            "Reject</button></form>")


def _error_page(call: Call, error: FlowdError) -> web.StreamResponse:
    """A browser sees an error as a page; an API client in the usual envelope."""
    if not _browser(call):
        raise error
    titles = {404: "Unknown link", 409: "Already decided", 410: "No longer open",
              429: "Too many attempts"}
    response = page(titles.get(error.status, "Something went wrong"),
                    f"<p>{html.escape(error.message)}</p>", status=error.status)
    response.headers.update(error.headers)
    return response
