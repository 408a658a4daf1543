"""Alert webhooks: subscribe a URL to alerts (run.failed, message.bounced, approval.requested,
workflow.failing), list and delete subscriptions, and see each one's deliveries.

Editors may subscribe and unsubscribe (they can already send any project data to any URL with
a webhook step, so reserving this to admins would protect nothing); any reading key may list.
The signing secret is in the create response only."""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from flowd.api.routes import Call, json_response, page_response, route, shape
from flowd.auth import Access
from flowd.effects.signing import new_secret
from flowd.errors import Conflict, NotFound
from flowd.ids import new_id
from flowd.store import Transaction
from flowd.store.records import AlertEvent, AlertSubscription, DeliveryStatus
from flowd.validation import Array, Enum, Integer, Nullable, Object, String, time_string

MAX_SUBSCRIPTIONS = 50   # per project: every alert fans out to each, in the unit that records it
EVENTS = tuple(e.value for e in AlertEvent)


def _check_url(value: str) -> str | None:
    try:
        url = URL(value)
    except (ValueError, TypeError):
        return "must be an http:// or https:// URL"
    if url.scheme not in ("http", "https") or not url.raw_host or not url.is_absolute():
        return "must be an absolute http:// or https:// URL with a host"
    try:
        url.port
    except ValueError:
        return "has an invalid port"
    return None


# Printable ASCII only (percent-encode the rest, punycode a host): `\s` means different
# characters to the server's regexes and to a client's ECMA-262 ones.
_URL = String(min_len=1, max_len=2048, pattern=r"[hH][tT][tT][pP][sS]?://[!-~]+",
              pattern_message="must be an http:// or https:// URL of printable ASCII "
              "characters", check=_check_url,
              check_code="invalid_url", description=(
                  "Where alerts are POSTed: an absolute http(s) URL with a host. Whether its "
                  "address may be called is decided at each delivery, by `[http] "
                  "allow_private_networks` / `allowed_networks` (as for webhook steps): a "
                  "refused one fails its delivery with destination_not_allowed."))
_EVENTS = Array(Enum(EVENTS), min_items=1, max_items=len(EVENTS) * 4,
                description="The alerts to send here (duplicates are dropped).")
_FIELDS = {"id": String(description="whk_…"), "url": String(description="As given."),
           "events": Array(Enum(EVENTS)), "created_at": time_string()}
SUBSCRIPTION = shape("AlertWebhook", _FIELDS)
CREATED = shape("CreatedAlertWebhook", {**_FIELDS, "secret": String(
    pattern=r"whsec_[A-Za-z0-9+/]{43}=", description=(
        "Signs this subscription's deliveries (Standard Webhooks: webhook-id, "
        "webhook-timestamp, webhook-signature). Shown in this response only."))})
NEW = Object({"url": _URL, "events": _EVENTS}, required=("url", "events"),
             read_only={k: v for k, v in _FIELDS.items() if k not in ("url", "events")}
             ).named("NewAlertWebhook")
DELIVERY = shape("AlertDelivery", {
    "id": String(description="dlv_…; also the webhook-id header of every attempt."),
    "subscription_id": String(), "event_type": Enum(EVENTS),
    "status": Enum(tuple(s.value for s in DeliveryStatus)),
    "attempts": Integer(min=0),
    "last_status_code": Nullable(Integer(description="The last attempt's HTTP status.")),
    "last_error": Nullable(String(description="Why the last attempt did not deliver it.")),
    "created_at": time_string(), "delivered_at": Nullable(time_string()),
    "next_attempt_at": Nullable(time_string(description="When a pending one is tried next."))})

_DESCRIPTION = (
    "Each alert is POSTed as JSON `{\"type\", \"timestamp\", \"data\": {…}}`, signed with the "
    "subscription's secret. An alert is recorded in the same transaction as what it reports, "
    "so none is lost to a crash. A 2xx answer delivers it; anything else is retried after "
    "10 s, doubling, at most an hour apart, for 24 hours, then the delivery says `failed`. "
    "Every attempt carries the same webhook-id (the delivery's id): receivers de-duplicate "
    "on it. `workflow.failing` is sent at most once an hour per workflow, when at least "
    "`[alerts] failing_rate` of its runs that ended in the last hour failed (and at least "
    "`[alerts] failing_min_runs` ended). At most "
    f"{MAX_SUBSCRIPTIONS} subscriptions per project (409 beyond).")


@route("POST", "/v1/webhooks", access=Access.WRITE, tag="webhooks", body=NEW, status=201,
       errors=(409,), summary="Subscribe a URL to alerts; the signing secret is in this "
       "response only.", description=_DESCRIPTION, links_to="/v1/webhooks/{id}",
       response=CREATED)
async def create_webhook(call: Call) -> web.Response:
    now = call.services.clock.now_ms()
    events = list(dict.fromkeys(call.body["events"]))
    subscription = AlertSubscription(id=new_id("whk", now), project_id=call.project,
                                     url=call.body["url"], events=events, secret=new_secret(),
                                     created_at=now)

    def unit(tx: Transaction) -> bool:
        if tx.alerts.count(call.project) >= MAX_SUBSCRIPTIONS:
            return False
        tx.alerts.create(subscription)
        return True

    if not await call.services.store.write(unit):
        raise Conflict(f"the project has {MAX_SUBSCRIPTIONS} alert webhooks, the most it may "
                       "have; delete one first")
    return json_response({**subscription.to_json(), "secret": subscription.secret}, status=201)


@route("GET", "/v1/webhooks", access=Access.READ, tag="webhooks", paginated=True,
       summary="List the project's alert webhooks (without their secrets).",
       response=SUBSCRIPTION)
async def list_webhooks(call: Call) -> web.Response:
    page = await call.services.store.read(lambda tx: tx.alerts.page(
        call.project, before=call.before, limit=call.limit))
    return page_response(page)


async def _subscription(call: Call) -> AlertSubscription:
    found = await call.services.store.read(lambda tx: tx.alerts.get(call.project,
                                                                    call.path("id")))
    if found is None:
        raise NotFound("no such webhook")
    return found


@route("GET", "/v1/webhooks/{id}", access=Access.READ, tag="webhooks", errors=(404,),
       summary="One alert webhook (without its secret).", response=SUBSCRIPTION)
async def get_webhook(call: Call) -> web.Response:
    return json_response((await _subscription(call)).to_json())


@route("DELETE", "/v1/webhooks/{id}", access=Access.WRITE, tag="webhooks", status=204,
       errors=(404,), summary="Delete an alert webhook: its pending deliveries are never "
       "sent, and its delivery records go with it.")
async def delete_webhook(call: Call) -> web.Response:
    deleted = await call.services.store.write(lambda tx: tx.alerts.delete(call.project,
                                                                          call.path("id")))
    if not deleted:
        raise NotFound("no such webhook")
    return web.Response(status=204)


@route("GET", "/v1/webhooks/{id}/deliveries", access=Access.READ, tag="webhooks",
       paginated=True, errors=(404,), summary="The webhook's deliveries, newest first.",
       response=DELIVERY)
async def list_deliveries(call: Call) -> web.Response:
    subscription = await _subscription(call)
    page = await call.services.store.read(lambda tx: tx.alerts.deliveries(
        subscription.id, before=call.before, limit=call.limit))
    return page_response(page)
