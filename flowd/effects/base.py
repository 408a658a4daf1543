"""What a step may do to the outside world, as protocols: the one failure every effect raises,
one `Protocol` per effect, the `Effects` bundle a step gets in `ctx.effects`, and a recording
implementation that performs nothing.

- `EffectFailed(code, message, retryable=…)` is how any effect reports a failure. The engine
  maps it to the step's trace once, for every step type: code and message become the trace
  entry's error, and `retryable` decides whether the step's retry policy applies. A step never
  translates an effect's failure itself.
- `Http` (the SSRF-guarded client of `flowd.effects.http`) and `Signer` (Standard Webhooks,
  `flowd.effects.signing`) call out directly; `Email` and `Channel` (SMS, push, Slack) are
  messaging as steps see it, with suppression and a durable record around a provider;
  `Audiences` answers the audience check every messaging step makes before it sends.
- `Sandbox` runs a `code` step's JavaScript (`flowd.effects.sandbox`: QuickJS in worker
  processes). It sends nothing anywhere, so a dry run uses the real one.
- `MessageProvider` is the one interface of every provider that hands a message to the outside
  world — email (`flowd.effects.mail`: outbox, SMTP), SMS (`flowd.effects.sms`: outbox,
  Twilio), push (`flowd.effects.push`: outbox, FCM) and Slack (`flowd.effects.slack`): start,
  close, and `send` answering a `SendResult` (with the provider's id) or raising
  `EffectFailed` (`retryable` when a later attempt may work). `MailProvider` is its email
  form; the types it takes and returns live here so the recorder can use them.
- `Ai` is a language model as steps see it (`flowd.ai_service` implements it over the providers
  of `flowd.effects.ai_providers`): one chat completion for a project, `AiRequest` in,
  `AiAnswer` out. `RecordingAi` is its dry-run twin: it records the messages that would be
  sent and answers from canned answers by step id, else `ai_unavailable`.
- `RecordingEffects` is what the dry run gives the same engine: every call is recorded with
  what would have been sent, nothing leaves the process, and answers come from canned
  responses — per step, else per URL, else `200 {}`. `RecordingMailProvider` does the same
  for email: it records every message and answers per recipient, else all accepted.
"""

from __future__ import annotations

import copy
import json
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, TypeVar

from flowd.effects.signing import SECRET_PREFIX, signature_header

if TYPE_CHECKING:
    from flowd.effects.messages import ChannelRequest, Delivery, EmailRequest
    from flowd.message_templates import CompiledContent

__all__ = [
    "AI_UNAVAILABLE",
    "Ai",
    "AiAnswer",
    "AiCall",
    "AiRequest",
    "Attachment",
    "Audiences",
    "Channel",
    "EffectFailed",
    "Effects",
    "Http",
    "HttpCall",
    "HttpResponse",
    "MailProvider",
    "MessageProvider",
    "OutgoingEmail",
    "RecordingAi",
    "RecordingEffects",
    "RecordingHttp",
    "RecordingMailProvider",
    "RecordingSigner",
    "SendHistory",
    "Sandbox",
    "SendResult",
    "Signer",
    "SigningCall",
    "TEST_SECRET",
]


class EffectFailed(Exception):
    """An effect could not do what it was asked. `code` is what the trace shows
    (`destination_not_allowed`, `timeout`, …); `retryable` False skips the step's remaining
    attempts (retrying cannot help, e.g. a refused destination)."""

    def __init__(self, code: str, message: str, *, retryable: bool,
                 retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        # The earliest a later attempt may come, when the other side said (an HTTP 429's
        # Retry-After): the engine waits at least this long, however short its backoff.
        self.retry_after_ms = retry_after_ms


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: Any                # parsed JSON, or text (see flowd.effects.http)
    truncated: bool          # the body was longer than the client's cap and was cut

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str   # "application/pdf", …


@dataclass(frozen=True)
class OutgoingEmail:
    """One email as the caller means it; `flowd.effects.mail.build_message` makes it RFC 5322.

    `to`, `cc` and `bcc` are plain addresses (`ann@example.com`, no display name): they are the
    envelope's recipients and the keys of `SendResult`. `sender` and `reply_to` may carry a
    display name (`Ann Café <ann@example.com>`). `message_id` is the whole `Message-ID` value
    (`<msg_…@example.com>`): the caller derives it from run, step and visit, so a message sent
    again after a crash has the same id. `headers` are extra headers (`List-Unsubscribe`, …)."""

    message_id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        """The envelope's recipients: to, cc, then bcc, each address once."""
        return tuple(dict.fromkeys(self.to + self.cc + self.bcc))


@dataclass(frozen=True)
class SendResult:
    """What the provider did with a message. `rejected` maps a recipient to the server's
    permanent refusal (`"550 5.1.1 no such user"`); nothing was sent when `accepted` is empty."""

    provider_message_id: str | None   # the server's queue id, else the Message-ID; None if unsent
    accepted: tuple[str, ...]
    rejected: dict[str, str]


# --- the protocols ------------------------------------------------------------------------------

class Http(Protocol):
    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      body: bytes | None = None, timeout: float) -> HttpResponse:
        """One call; any status is returned (non-2xx is the caller's to judge). Raises
        `EffectFailed` when there is no response (refused destination, timeout, …)."""
        ...


class Signer(Protocol):
    async def signature(self, project_id: str, msg_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` header of a delivery: one `v1,<mac>` per valid secret."""
        ...


OutgoingT = TypeVar("OutgoingT", contravariant=True)


class MessageProvider(Protocol[OutgoingT]):
    """Hands one kind of message to the world: `OutgoingEmail`, or `OutgoingSms`,
    `OutgoingPush`, `OutgoingSlack` (flowd.effects.outgoing). Every call has a timeout."""

    async def start(self) -> None:
        ...

    async def close(self) -> None:
        """Waits for the sends under way, then lets go of every connection."""
        ...

    async def send(self, message: OutgoingT) -> SendResult:
        """One message. A recipient the provider refuses for good (an SMTP 5xx, an invalid
        phone number, an unregistered push token) is in `rejected`; anything else that stops
        the message raises `EffectFailed` (`retryable` when a later attempt may work: a 4xx
        of SMTP, an HTTP 429 or 5xx, a timeout, a server that cannot be reached)."""
        ...


class MailProvider(MessageProvider[OutgoingEmail], Protocol):
    """Hands emails to the world (`flowd.effects.mail`: `OutboxProvider`, `SmtpProvider`)."""


class Email(Protocol):
    """Email as a messaging step sees it (flowd.mailer implements it): templates by id or
    name, and sending with suppression and a durable record."""

    async def template(self, project_id: str, ref: str) -> "CompiledContent | None": ...

    async def send(self, request: "EmailRequest") -> "Delivery": ...

    async def accept(self, request: "EmailRequest") -> "Delivery":
        """Record now, deliver in the background (retried until it goes or gives up)."""
        ...


class Channel(Protocol):
    """SMS, push or Slack as a messaging step sees it (flowd.messenger implements it):
    templates of the channel by id or name, and sending with suppression and a durable
    record — one message per recipient (push: per token of the contact)."""

    async def template(self, project_id: str, ref: str) -> "CompiledContent | None": ...

    async def send(self, request: "ChannelRequest") -> "list[Delivery]":
        """The deliveries, in recipient order. A failure a later attempt may cure raises
        `EffectFailed` (retryable) unless it is the request's final attempt."""
        ...


class Audiences(Protocol):
    """The audience check of every messaging step, evaluated at the moment of the send.
    `audience` is an audience's id or name; naming none that exists raises `EffectFailed`."""

    async def in_audience(self, project_id: str, audience: str,
                          contact_id: str | None) -> bool: ...


class SendHistory(Protocol):
    """What the send policy's frequency caps count (flowd.send_history implements it over the
    message records; a dry run's over its own throwaway store, so it counts what that test run
    sent)."""

    async def recent_sends(self, project_id: str, contact_id: str, channel: str, after_ms: int,
                           limit: int, *, excluding: str | None = None) -> list[int]:
        """When the contact's counted messages on `channel` created after `after_ms` were
        created, newest first, at most `limit` (flowd.store.base.Messages.recent_sends)."""
        ...

    def one_at_a_time(self, project_id: str, contact_id: str,
                      channel: str) -> AbstractAsyncContextManager[None]:
        """Held while a capped step counts the contact's sends and records its own message:
        sends to one contact on one channel then take turns, so concurrent journeys cannot
        all pass a count that none of their messages is in yet."""
        ...


class Sandbox(Protocol):
    """Runs untrusted JavaScript with memory, stack and time limits and no access to anything
    but its input (flowd.effects.sandbox)."""

    async def run(self, source: str, input_json: str, timeout_ms: int) -> str:
        """The JSON text of what the function body `source` returned (`null` for nothing),
        called with the object `input_json` as `event`, `contact`, `vars` and `steps`.
        `timeout_ms` is CPU time, cut to the operator's maximum. A script's failure raises
        `EffectFailed` with `code_error`, `code_timeout`, `code_memory` or
        `code_output_too_large` (never retryable)."""
        ...


AI_UNAVAILABLE = "ai_unavailable"   # the code of an `Ai` call with no provider to ask


@dataclass(frozen=True)
class AiRequest:
    """One chat completion. `messages` are `{"role": "system" | "user" | "assistant",
    "content": text}`; `json_schema` asks for a JSON answer (`{}`: any JSON object, else the
    schema the answer must follow, as far as the provider can enforce it); `model` and
    `temperature` override the configured ones."""

    messages: tuple[dict[str, str], ...]
    json_schema: dict[str, Any] | None = None
    model: str | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class AiAnswer:
    content: str              # the model's answer, as text (JSON text when JSON was asked)
    model: str                # the model that answered, as the provider names it
    usage: dict[str, int]     # prompt_tokens, completion_tokens, total_tokens


class Ai(Protocol):
    async def complete(self, project_id: str, request: AiRequest) -> AiAnswer:
        """Ask the project's model (its own key, else the server's [ai]). Raises
        `EffectFailed`: `ai_unavailable` when no provider is configured (not retryable),
        `ai_unauthorized`, `ai_model_not_found`, `ai_bad_request` (not retryable),
        `ai_rate_limited` and `ai_provider_error` (retryable; a 429's `Retry-After` is
        `retry_after_ms`). No message of any of them ever holds an API key."""
        ...


@dataclass
class Effects:
    """The outside world as steps see it: protocols only, so a dry run swaps in recorders."""

    http: Http
    signer: Signer
    email: Email | None = None
    approvals: ApprovalLinks | None = None
    sms: Channel | None = None
    push: Channel | None = None
    slack: Channel | None = None
    audiences: Audiences | None = None
    send_history: SendHistory | None = None
    sandbox: Sandbox | None = None
    ai: Ai | None = None


class ApprovalLinks(Protocol):
    """The links that decide an approval (flowd.approvals implements it). A link's token is
    the same each time it is asked for, so a step tried again mails the very links its first
    attempt may already have sent."""

    def token(self, approval_id: str, approver: str | None) -> str: ...

    def url(self, token: str) -> str: ...


# --- recording ----------------------------------------------------------------------------------

# 32 fixed bytes: recorded signatures are the same on every dry run, and obviously not real.
TEST_SECRET = SECRET_PREFIX + "Zmxvd2QtZHJ5LXJ1bi10ZXN0LXNlY3JldC0zMmJ5dGU="

CannedAnswer = HttpResponse | EffectFailed   # a canned failure lets a dry run take error paths


@dataclass
class HttpCall:
    """A request an `Http` effect would have sent."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float
    step_id: str | None = None   # the step that made it, when the recorder was bound to one
    at: int | None = None        # when (epoch ms), when the recording has a clock


@dataclass
class SigningCall:
    """A delivery a `Signer` would have signed, and the signature it got (under TEST_SECRET)."""

    project_id: str
    msg_id: str
    timestamp: int
    body: bytes
    signature: str
    step_id: str | None = None


@dataclass
class AiCall:
    """A request an `Ai` effect would have sent."""

    request: AiRequest
    step_id: str | None = None
    at: int | None = None


@dataclass
class Recording:
    """What recorders bound to different steps share: the log of calls, in order, and the
    canned answers."""

    by_step: dict[str, CannedAnswer] = field(default_factory=dict)
    by_url: dict[str, CannedAnswer] = field(default_factory=dict)
    http_calls: list[HttpCall] = field(default_factory=list)
    signing_calls: list[SigningCall] = field(default_factory=list)
    # By step id: the model's answer as `{"text": …}`, `{"choice": …}` or `{"fields": {…}}`.
    ai_by_step: dict[str, dict[str, Any]] = field(default_factory=dict)
    ai_calls: list[AiCall] = field(default_factory=list)
    now: Callable[[], int] | None = None   # stamps each call (a test run's virtual clock)


def default_response() -> HttpResponse:
    return HttpResponse(status=200, headers={"content-type": "application/json"}, body={},
                        truncated=False)


class RecordingHttp:
    """An `Http` that sends nothing: records the call and answers from the canned answers."""

    def __init__(self, recording: Recording, step_id: str | None = None) -> None:
        self._recording = recording
        self._step_id = step_id

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      body: bytes | None = None, timeout: float) -> HttpResponse:
        at = self._recording.now() if self._recording.now else None
        self._recording.http_calls.append(HttpCall(method, url, dict(headers or {}), body,
                                                   timeout, self._step_id, at))
        answer = self._answer(url)
        if isinstance(answer, EffectFailed):
            raise answer
        # A copy, so a step that changes its output cannot change what later calls get.
        return copy.deepcopy(answer)

    def _answer(self, url: str) -> CannedAnswer:
        recording = self._recording
        if self._step_id is not None and self._step_id in recording.by_step:
            return recording.by_step[self._step_id]
        if url in recording.by_url:
            return recording.by_url[url]
        return default_response()


class RecordingAi:
    """An `Ai` that asks no model: records the request and answers from the canned answer of
    its step (`{"text"}` as it is; `{"choice"}` and `{"fields"}` as the JSON a model would
    write), else raises `ai_unavailable` — what a server without a provider does."""

    MODEL = "dry-run"

    def __init__(self, recording: Recording, step_id: str | None = None) -> None:
        self._recording = recording
        self._step_id = step_id

    async def complete(self, project_id: str, request: AiRequest) -> AiAnswer:
        at = self._recording.now() if self._recording.now else None
        self._recording.ai_calls.append(AiCall(request, self._step_id, at))
        canned = self._recording.ai_by_step.get(self._step_id or "")
        if canned is None:
            raise EffectFailed(AI_UNAVAILABLE, "a test run asks no model: give this step's "
                               "answer in `responses`", retryable=False)
        if "text" in canned:
            content = str(canned["text"])
        elif "choice" in canned:
            content = json.dumps({"choice": canned["choice"]})
        else:
            content = json.dumps(canned.get("fields") or {})
        zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return AiAnswer(content, request.model or self.MODEL, zero)


class RecordingSigner:
    """A `Signer` that signs with TEST_SECRET (deterministic, no store) and records what it
    signed."""

    def __init__(self, recording: Recording, step_id: str | None = None) -> None:
        self._recording = recording
        self._step_id = step_id

    async def signature(self, project_id: str, msg_id: str, timestamp: int, body: bytes) -> str:
        signature = signature_header([TEST_SECRET], msg_id, timestamp, body)
        self._recording.signing_calls.append(SigningCall(project_id, msg_id, timestamp, body,
                                                         signature, self._step_id))
        return signature


class RecordingEffects(Effects):
    """Effects that perform nothing and record what would have been done.

        effects = RecordingEffects(
            by_url={"https://crm.example/hook": HttpResponse(201, {}, {"id": 7}, False)},
            by_step={"charge": EffectFailed("timeout", "…", retryable=True)})
        step_effects = effects.for_step("charge")      # what the step `charge` is given
        effects.http_calls, effects.signing_calls      # every call, in the order made

    An answer given for a step wins over one given for the URL; anything else gets `200 {}`.
    `for_step` returns recorders bound to one step — same log, same answers — so each call
    says which step made it and that step's canned answer applies. (Unbound, as the engine
    hands the same effects to every step today, the answers per URL still apply; binding per
    step is the dry run's to wire.)
    """

    def __init__(self, *, by_step: Mapping[str, CannedAnswer] | None = None,
                 by_url: Mapping[str, CannedAnswer] | None = None,
                 recording: Recording | None = None, step_id: str | None = None,
                 ai_by_step: Mapping[str, dict[str, Any]] | None = None) -> None:
        if recording is None:
            recording = Recording(by_step=dict(by_step or {}), by_url=dict(by_url or {}),
                                  ai_by_step=dict(ai_by_step or {}))
        self.recording = recording
        self.step_id = step_id
        super().__init__(http=RecordingHttp(recording, step_id),
                         signer=RecordingSigner(recording, step_id),
                         ai=RecordingAi(recording, step_id))

    def for_step(self, step_id: str) -> RecordingEffects:
        return RecordingEffects(recording=self.recording, step_id=step_id)

    @property
    def http_calls(self) -> list[HttpCall]:
        return self.recording.http_calls

    @property
    def signing_calls(self) -> list[SigningCall]:
        return self.recording.signing_calls


CannedMailAnswer = SendResult | EffectFailed


class RecordingMailProvider:
    """A `MailProvider` that sends nothing: records every email and answers from the answers
    given per recipient, else with every recipient accepted.

        mail = RecordingMailProvider(by_recipient={
            "gone@example.com": SendResult(None, (), {"gone@example.com": "550 5.1.1 no user"}),
            "slow@example.com": EffectFailed("smtp_temporary", "451 4.7.1 later", retryable=True)})
        await mail.send(email)
        mail.emails                       # every OutgoingEmail, in the order sent

    The first recipient (to, cc, bcc) with an answer decides the whole message's answer.
    """

    def __init__(self, *, by_recipient: Mapping[str, CannedMailAnswer] | None = None) -> None:
        self.by_recipient = dict(by_recipient or {})
        self.emails: list[OutgoingEmail] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, email: OutgoingEmail) -> SendResult:
        self.emails.append(email)
        for recipient in email.recipients:
            answer = self.by_recipient.get(recipient)
            if isinstance(answer, EffectFailed):
                raise answer
            if answer is not None:
                return copy.deepcopy(answer)  # the caller may not change later answers
        return SendResult(email.message_id, email.recipients, {})
