"""Push providers: the outbox (records, sends nothing off the machine) and Firebase Cloud
Messaging's HTTP v1 API.

    provider = FcmProvider(load_service_account(path), clock, timeout=10)
    await provider.start()
    result = await provider.send(OutgoingPush("msg_…", token, "Title", "Body", {"k": "v"}))
    result.provider_message_id            # "projects/<project>/messages/<id>"

FCM's wire format: `POST {base_url}/v1/projects/{project_id}/messages:send` with
`Authorization: Bearer <OAuth2 access token>` (flowd.effects.google_oauth: the service
account's JWT-bearer grant, cached) and `{"message": {"token", "notification": {"title",
"body"}, "data": {str: str}}}`; `200 {"name": "projects/…/messages/…"}`. One message per device
token. An error is `{"error": {"code", "message", "status", "details": [{"errorCode"}]}}`:

| answer                                    | outcome                                        |
|-------------------------------------------|------------------------------------------------|
| 404, or errorCode `UNREGISTERED`          | `rejected`: the token is removed from the contact|
| 429, 5xx, `UNAVAILABLE`, `INTERNAL`,      | `EffectFailed("push_unavailable")`, retryable  |
| `QUOTA_EXCEEDED`                          |                                                |
| 401 (after one fresh token), 403          | `EffectFailed("push_auth_failed")`, not retryable|
| 400 `INVALID_ARGUMENT`, other 4xx         | `EffectFailed("push_refused")`, not retryable  |

The base and token URLs are the operator's configuration: called without the private-network
guard, with the timeout on every call.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from flowd.clock import Clock
from flowd.effects.base import EffectFailed, Http, SendResult
from flowd.effects.google_oauth import AccessTokens, ServiceAccount
from flowd.effects.http import HttpClient
from flowd.effects.outgoing import OutgoingPush

__all__ = ["DEFAULT_BASE_URL", "FcmProvider", "OutboxPushProvider"]

DEFAULT_BASE_URL = "https://fcm.googleapis.com"
_RETRYABLE = frozenset({"UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED"})


def _check(push: OutgoingPush) -> None:
    if not push.token:
        raise EffectFailed("invalid_message", "the push token is empty", retryable=False)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in push.data.items()):
        raise EffectFailed("invalid_message", "push data must map strings to strings",
                           retryable=False)


class OutboxPushProvider:
    """Sends nothing off the machine: the message record is the record."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, push: OutgoingPush) -> SendResult:
        _check(push)
        return SendResult(push.message_id, (push.token,), {})


class FcmProvider:
    def __init__(self, account: ServiceAccount, clock: Clock, *,
                 base_url: str = DEFAULT_BASE_URL, token_url: str | None = None,
                 timeout: float = 10.0, http: Http | None = None) -> None:
        """`token_url`: default the account's `token_uri`. `http`: the client to call with
        (default: one of its own, unguarded, made at start)."""
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        self.account = account
        self.url = (f"{base_url.rstrip('/')}/v1/projects/{quote(account.project_id, safe='')}"
                    "/messages:send")
        self.timeout = timeout
        self._clock = clock
        self._token_url = token_url
        self._http = http
        self._own: HttpClient | None = None
        self._tokens: AccessTokens | None = None

    async def start(self) -> None:
        if self._http is None:
            self._own = HttpClient(allow_private_networks=True)
            await self._own.start()
            self._http = self._own
        self._tokens = AccessTokens(self.account, self._clock, self._http,
                                    token_url=self._token_url, timeout=self.timeout)

    async def close(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            self._http = None
            await own.close()
        self._tokens = None

    async def send(self, push: OutgoingPush) -> SendResult:
        if self._http is None or self._tokens is None:
            raise RuntimeError("FcmProvider.start() has not been called (or close() has)")
        _check(push)
        message: dict[str, Any] = {"token": push.token}
        notification = {k: v for k, v in (("title", push.title), ("body", push.body)) if v}
        if notification:
            message["notification"] = notification
        if push.data:
            message["data"] = push.data
        body = json.dumps({"message": message}, separators=(",", ":")).encode()
        for fresh_token in (False, True):
            bearer = await self._tokens.get()
            response = await self._http.request(
                "POST", self.url, body=body, timeout=self.timeout,
                headers={"Authorization": f"Bearer {bearer}",
                         "Content-Type": "application/json; charset=utf-8"})
            if response.status == 401 and not fresh_token:
                # The cached token was revoked or expired early: once more with a new one.
                self._tokens.forget(bearer)
                continue
            break
        if response.ok:
            name = response.body.get("name") if isinstance(response.body, dict) else None
            return SendResult(name if isinstance(name, str) else None, (push.token,), {})
        return self._refused(push.token, response.status, response.body)

    def _refused(self, token: str, status: int, body: Any) -> SendResult:
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        state = error.get("status") if isinstance(error.get("status"), str) else ""
        details = error.get("details") if isinstance(error.get("details"), list) else []
        codes = {d.get("errorCode") for d in details[:20] if isinstance(d, dict)}
        said = f"HTTP {status}"
        if state or codes - {None}:
            said += f", {' '.join(sorted(c for c in codes if isinstance(c, str))) or state}"
        if error.get("message"):
            said += f": {error['message']}"
        elif isinstance(body, str) and body.strip():
            said += f": {body.strip()[:200]}"
        if status == 404 or "UNREGISTERED" in codes:
            return SendResult(None, (), {token: said})
        if status == 429 or status >= 500 or state in _RETRYABLE or codes & _RETRYABLE:
            raise EffectFailed("push_unavailable", f"FCM answered {said}", retryable=True)
        if status in (401, 403):
            raise EffectFailed("push_auth_failed", f"FCM refused the service account: {said}",
                               retryable=False)
        raise EffectFailed("push_refused", f"FCM refused the message: {said}", retryable=False)
