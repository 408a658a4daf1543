"""The request shape of a workflow definition: one schema per step type and per trigger type,
settings, and the create/replace/patch bodies. The same schema objects validate requests (422
with paths) and render the OpenAPI components (`WaitStep`, `WaitConfig`, `EventTrigger`…).

The line between a 422 and a workflow issue: the *shape* of what is sent (JSON types, unknown
fields, known step and trigger types, enums) is checked here, so a typo is refused at once;
whether a definition can *run* (a required config field still missing in a draft, a `next`
naming no step, a duration that does not parse) is an issue of the saved workflow
(flowd.definitions), so that the builder can save a draft half-done.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from typing import Any

from flowd.conditions import CONDITION
from flowd.errors import Problem
from flowd.send_policy import (
    CHANNELS,
    CLOCK_TIME,
    MAX_CAP,
    check_cap_window,
    check_policy_zone,
    duplicate_channels,
)
from flowd.steps import ALIASES, STEP_TYPES
from flowd.steps.base import StepType
from flowd.validation import (
    INVALID,
    Array,
    Components,
    Either,
    Enum,
    Integer,
    MapOf,
    Nullable,
    Number,
    Object,
    Schema,
    String,
    Tagged,
    join,
    text,
    time_string,
)

MAX_STEPS = 500
STEP_ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
REENTRY = ("once", "after_completion", "always")
WORKFLOW_STATUSES = ("draft", "active", "paused", "archived")

STEP_ID = String(pattern=STEP_ID_PATTERN, pattern_message="must be 1–64 letters, digits, _ or -",
                 description="1–64 letters, digits, _ or -; unique in the workflow.")
NEXT = Nullable(Either((STEP_ID, MapOf(Nullable(STEP_ID), max_keys=100)),
                       pick=lambda v: 1 if isinstance(v, dict) else 0),
                description="Absent: the following step in the list; null: the run ends here; "
                            "a step id; or an object mapping branch labels to step ids (a label "
                            "the step produces but this does not map ends the run).").named("Next")
RETRY = Object({
    "max_attempts": Integer(min=1, max=100, description="All attempts, the first included "
                                                        "(default 3 when `retry` is given)."),
    "backoff": String(min_len=1, description="ISO 8601 duration, doubled per attempt."),
    "max_backoff": String(min_len=1, description="ISO 8601 duration: the cap."),
}).named("StepRetry")
POSITION = Object({"x": Number(), "y": Number()},
                  description="Where the builder draws the step; ignored by the engine."
                  ).named("StepPosition")
ON_ERROR = Enum(("fail", "continue"), description=(
    "After the last failed attempt (without an `error` branch): fail the run, or take the "
    "default next.")).named("OnError")


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def _describe(step_type: StepType) -> str:
    lines = [step_type.summary]
    branches = ", ".join(f"`{b}`" for b in step_type.branches if b != "default")
    if step_type.name == "split":
        lines.append("Branch labels: the names in its config, and `default`.")
    elif step_type.name == "ai":
        lines.append("Branch labels: a decide step's options, and `unavailable`.")
    elif branches:
        lines.append(f"Branch labels: {branches}.")
    if step_type.waits:
        lines.append("The run waits at this step.")
    return " ".join(lines)


def _request_config(step_type: StepType) -> Object:
    """The step type's config schema without its top-level `required`: a draft may lack them
    (they are `missing_config` issues until filled)."""
    needed = ", ".join(f"`{key}`" for key in step_type.schema.required)
    description = (f"Needed before the workflow can be active: {needed}." if needed else "")
    config = dataclasses.replace(step_type.schema, required=(), description=description)
    return config.named(f"{_camel(step_type.name)}Config")  # type: ignore[return-value]


_CONFIGS = {name: _request_config(step_type) for name, step_type in STEP_TYPES.items()}


def _type_names(name: str) -> tuple[str, ...]:
    return (name, *sorted(alias for alias, target in ALIASES.items() if target == name))


def _step_kinds(*, id_required: bool, prefix: str) -> dict[str, Schema]:
    """Type name (and each alias) → the object schema of a step of that type."""
    kinds: dict[str, Schema] = {}
    for name, step_type in STEP_TYPES.items():
        names = _type_names(name)
        kind = Object({
            "id": STEP_ID,
            "type": Enum(names, description=(f"Also accepted: {', '.join(names[1:])} (saved as "
                                             f"{name}).") if len(names) > 1 else ""),
            "name": text(0, 200, description="A label for people."),
            "config": _CONFIGS[name],
            "next": NEXT,
            "retry": RETRY,
            "on_error": ON_ERROR,
            "position": POSITION,
        }, required=("id", "type") if id_required else ("type",),
            description=_describe(step_type)).named(f"{prefix}{_camel(name)}Step")
        kinds.update(dict.fromkeys(names, kind))
    return kinds


STEP = Tagged("type", _step_kinds(id_required=True, prefix="")).named("Step")
# PATCH add_step: the id may be left out (a free one is chosen).
NEW_STEP = Tagged("type", _step_kinds(id_required=False, prefix="New")).named("NewStep")

EVENT_TRIGGER = Object({
    "type": Enum(("event",)),
    "event": text(0, 200, description="An event name pattern: * matches any run of characters "
                                      "(auth.* matches auth.user_created; * matches every event)."),
    "filter": CONDITION,
}, required=("type",), description="Starts a run for the event's contact when a matching event "
                                   "arrives.").named("EventTrigger")
MANUAL_TRIGGER = Object({"type": Enum(("manual",))}, required=("type",),
                        description="Runs start only when fired through the API."
                        ).named("ManualTrigger")
SCHEDULE_TRIGGER = Object({
    "type": Enum(("schedule",)),
    "cron": text(0, 200, description=(
        "Five fields: minute hour day-of-month month day-of-week (`0 9 * * 1`: Mondays at "
        "09:00). Each takes `*`, `*/n`, `a-b`, `a-b/n` and lists; months JAN–DEC and days "
        "SUN–SAT by name; day-of-week 0 and 7 are Sunday. When day-of-month and day-of-week "
        "are both restricted, a day matching either fires. Also @yearly, @annually, @monthly, "
        "@weekly, @daily, @midnight, @hourly. Needed before the workflow can be active.")),
    "timezone": text(0, 100, description=(
        "The IANA time zone the fields are read in, e.g. Europe/Berlin (default UTC). A time "
        "skipped when clocks spring forward fires at the first instant after the gap; a time "
        "repeated when they fall back fires once, at its first occurrence.")),
    "audience": text(0, 200, description=(
        "An audience (id or name): each fire starts one run per member, the members read "
        "when it fires (the workflow's reentry rule applies to each). A workflow naming an "
        "audience the project does not have has an `unknown_audience` error.")),
}, required=("type",), description=(
    "Starts one run without a contact at each time the cron expression names (or, with "
    "`audience`, one run per member), while the workflow is active. Each fire has a "
    "deterministic id, so it never starts twice; fires missed while the server was down (or "
    "the workflow paused) collapse into one. A workflow activated for the first time counts "
    "from its activation.")).named("ScheduleTrigger")
TRIGGER_KINDS: dict[str, Schema] = {"event": EVENT_TRIGGER, "manual": MANUAL_TRIGGER,
                                    "schedule": SCHEDULE_TRIGGER}


# -- the webhook (and form) trigger
def _check_hook_secret(value: str) -> str | None:
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        return "must be whsec_ followed by base64"
    if not 24 <= len(key) <= 64:
        return f"must hold 24–64 bytes of key (this one has {len(key)})"
    return None


# Base64 of 24–64 bytes is 32–88 characters, the last ones `=` padding.
HOOK_SECRET = String(pattern=r"whsec_[A-Za-z0-9+/]{30,86}[A-Za-z0-9+/=]{2}",
                     pattern_message="must be a Standard Webhooks secret: whsec_ followed by "
                                     "the base64 of 24–64 random bytes",
                     check=_check_hook_secret, check_code="invalid_secret", description=(
                         "A Standard Webhooks secret (`whsec_` + base64 of 24–64 bytes, e.g. "
                         "the one your provider shows): deliveries must then carry a valid "
                         "`webhook-signature` over the raw body, with `webhook-id` and a "
                         "`webhook-timestamp` within 5 minutes of the server's clock. The "
                         "server also checks that the base64 decodes (a rule the pattern "
                         "cannot state exactly)."))
# Dot-separated keys; no spaces or control characters (written as escapes, so that the
# document's regex dialect reads it as the server does).
_PATH_SEGMENT = "[^.\\u0000-\\u0020\\u007f]+"
CONTACT_ID_PATH = String(max_len=200, pattern=f"{_PATH_SEGMENT}(?:\\.{_PATH_SEGMENT})*",
                         pattern_message="must be keys joined by dots, such as user.id",
                         description=(
                             "Where the contact id is in the body's properties, as keys joined "
                             "by dots (`user.id`; a number picks a list item). The value must "
                             "be a string or an integer; a delivery without it is a 422 "
                             "`missing_contact_id`. Without this field runs have no contact."))
WEBHOOK_TRIGGER = Object({
    "type": Enum(("webhook",)),
    "secret": HOOK_SECRET,
    "contact_id_path": CONTACT_ID_PATH,
}, required=("type",), read_only={"url": String(format="uri", description=(
    "Where to POST (absolute; the token in it is the capability, no API key needed). "
    "`POST /v1/workflows/{id}/trigger/rotate` makes a new one; the old one is then a 404."))},
    description="Starts a run for each POST to `url`: a JSON object, or an HTML form's text "
                "fields, become the event's properties (event `webhook.received`)."
).named("WebhookTrigger")
TRIGGER_KINDS["webhook"] = WEBHOOK_TRIGGER
TRIGGER = Tagged("type", TRIGGER_KINDS, description="Every workflow can also be fired through "
                                                     "the API.").named("Trigger")

EXIT_RULE = Object({"event": text(0, 200, description="An event name pattern."),
                    "filter": CONDITION}, required=("event",)).named("ExitRule")
# -- the send policy's overrides (flowd.send_policy reads them)
POLICY_MODE = Enum(("defer", "skip"), description=(
    "defer (default): the run waits and the step runs again when the rule lets the message "
    "through; skip: the step sends nothing (outcome rate_limited) and the run goes on.")
                   ).named("SendPolicyMode")
_CLOCK = String(pattern=CLOCK_TIME, pattern_message="must be a time of day HH:MM, 00:00–23:59",
                description="Local time of day, HH:MM.")
QUIET_HOURS = Object({
    "start": _CLOCK,
    "end": _CLOCK.described("Local time of day, HH:MM. Before `start`: the window spans "
                            "midnight; equal to it: no quiet hours."),
    "timezone": String(max_len=64, check=check_policy_zone, check_code="unknown_time_zone",
                       description=(
                           "contact (default): the contact's timezone, else the project's "
                           "([policy] timezone); or an IANA time zone name. The server checks "
                           "that it exists.")),
    "mode": POLICY_MODE,
}, required=("start", "end"), description=(
    "Messages to the contact (email, sms, push; not Slack posts) are held back between `start` "
    "and `end` on the wall clock of `timezone`. A time skipped when clocks spring forward is "
    "read as the first instant after the gap; one repeated when they fall back, as its first "
    "occurrence.")).named("QuietHours")
FREQUENCY_CAP = Object({
    "channel": Enum(CHANNELS),
    "max": Nullable(Integer(min=1, max=MAX_CAP), description=(
        "Most messages per window; null: no cap on this channel for this workflow's runs.")),
    "per": String(min_len=1, max_len=64, check=check_cap_window, check_code="invalid_duration",
                  description="The rolling window, an ISO 8601 duration up to P366D (needed "
                              "unless max is null)."),
    "mode": POLICY_MODE,
}, required=("channel", "max"), description=(
    "At most `max` messages on `channel` to one contact per rolling `per`, counted from the "
    "message records of all its journeys (sending or sent; not suppressed or failed ones, nor "
    "transactional sends from POST /v1/messages/email).")).named("FrequencyCap")


@dataclasses.dataclass
class FrequencyCaps(Schema):
    """`settings.frequency_cap`: one cap, or a list with at most one per channel."""

    description: str = ""

    def validate(self, value: Any, path: Any, problems: list[Problem]) -> Any:
        many = isinstance(value, list)
        shape = Array(FREQUENCY_CAP, max_items=len(CHANNELS)) if many else FREQUENCY_CAP
        out = shape.validate(value, path, problems)
        if out is INVALID:
            return INVALID
        caps = value if many else [value]
        before = len(problems)
        for i, cap in enumerate(caps):
            where = join(str(path), i) if many else str(path)
            if cap["max"] is not None and "per" not in cap:
                problems.append(Problem(join(where, "per"), "is required unless max is null",
                                        "dependent_required"))
        for i in duplicate_channels(caps):
            problems.append(Problem(join(join(str(path), i), "channel"),
                                    f"another cap already names channel {caps[i]['channel']}; "
                                    "give at most one per channel", "duplicate_channel"))
        return INVALID if len(problems) > before else out

    def render(self, components: Components | None) -> dict[str, Any]:
        return self._doc({"oneOf": [
            FREQUENCY_CAP.json_schema(components),
            {"type": "array", "maxItems": len(CHANNELS),
             "items": FREQUENCY_CAP.json_schema(components)}]})


SETTINGS = Object({
    "reentry": Enum(REENTRY, description="once: a contact enters at most once ever; "
                    "after_completion (default): at most one active run per contact; always."),
    "exit_on": Array(EXIT_RULE, max_items=50, description="A matching event of the contact ends "
                     "its active runs of this workflow as completed."),
    "quiet_hours": Nullable(QUIET_HOURS, description=(
        "Replaces the project's [policy] quiet hours for this workflow's runs; null: none.")),
    "frequency_cap": Nullable(FrequencyCaps(), description=(
        "Replaces the project's [policy] cap on each channel named (one cap, or a list with at "
        "most one per channel; the others keep the project's); null: no caps at all for this "
        "workflow's runs. Caps still count the messages of every journey.")),
}).named("WorkflowSettings")

ISSUE = Object({
    "severity": Enum(("error", "warning")),
    "step_id": Nullable(String()),
    "code": String(description="e.g. missing_config, unknown_next_step, unknown_field"),
    "message": String(),
    "path": String(description="Where in the definition, e.g. steps[2].config.duration."),
}, required=("severity", "step_id", "code", "message", "path")).named("Issue")

# What GET returns beside the definition: accepted in a body and ignored (GET → edit → PUT).
READ_ONLY: dict[str, Schema] = {
    "id": String(), "created_at": time_string(), "updated_at": time_string(),
    "version": Integer(min=1), "issues": Array(ISSUE),
}
DEFINITION_FIELDS: dict[str, Schema] = {
    "name": text(1, 200),
    "description": String(max_len=5000),
    "trigger": TRIGGER,
    "settings": SETTINGS,
    "steps": Array(STEP, max_items=MAX_STEPS),
}
NEW_WORKFLOW = Object({**DEFINITION_FIELDS, "status": Enum(("draft", "active"), description=(
    "draft (default), or active if the workflow has no error issue."))},
    required=("name",), read_only=READ_ONLY).named("WorkflowCreate")
REPLACE_WORKFLOW = Object(DEFINITION_FIELDS, required=("name",),
                          read_only={**READ_ONLY, "status": Enum(WORKFLOW_STATUSES)}
                          ).named("WorkflowReplace")


def validate_definition_parts(definition: dict[str, Any], problems: list[Any]) -> None:
    """Check a definition assembled on the server (a PATCH batch's result) against the request
    shape, as if it had been sent whole."""
    DEFINITION_FIELDS["trigger"].validate(definition["trigger"], "trigger", problems)
    DEFINITION_FIELDS["settings"].validate(definition["settings"], "settings", problems)
    DEFINITION_FIELDS["steps"].validate(definition["steps"], "steps", problems)
