"""SMS providers: the outbox (records, sends nothing off the machine) and Twilio's Messages API.

    provider = TwilioProvider("AC…", "auth token", sender="+15005550006", timeout=10)
    await provider.start()
    result = await provider.send(OutgoingSms("msg_…", "+4915112345678", "Your code is 1234"))
    result.provider_message_id            # Twilio's SM… sid
    await provider.close()

Twilio's wire format: `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, HTTP
basic auth `account_sid:auth_token`, a form-encoded body of `To`, `From` (or
`MessagingServiceSid`) and `Body`; `201` with the message as JSON (`sid`). An error is JSON
`{"code", "message", "more_info", "status"}`, which maps to:

| answer                              | outcome                                          |
|-------------------------------------|--------------------------------------------------|
| 21211 (the `To` number is invalid)  | `rejected`: the number is marked bad             |
| 21610 (the recipient sent STOP)     | `RecipientOptedOut`: suppressed, unsubscribed     |
| HTTP 429 (20429), HTTP 5xx          | `EffectFailed("sms_unavailable")`, retryable      |
| HTTP 401 (20003)                    | `EffectFailed("sms_auth_failed")`, not retryable  |
| any other 4xx                       | `EffectFailed("sms_refused")`, not retryable      |

The base URL is the operator's configuration, not an author's: it is called without the
private-network guard (a local fake, a proxy), but with the timeout on every call.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlencode

from flowd.effects.base import EffectFailed, Http, SendResult
from flowd.effects.http import HttpClient
from flowd.effects.outgoing import E164, OutgoingSms, RecipientOptedOut

__all__ = ["DEFAULT_BASE_URL", "OutboxSmsProvider", "TwilioProvider"]

DEFAULT_BASE_URL = "https://api.twilio.com"
INVALID_NUMBER = 21211
UNSUBSCRIBED = 21610


def _invalid(to: str) -> EffectFailed:
    return EffectFailed("invalid_message", f"{to!r} is not an E.164 phone number "
                        "(like +4915112345678)", retryable=False)


class OutboxSmsProvider:
    """Sends nothing off the machine: the message record is the record."""

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, sms: OutgoingSms) -> SendResult:
        if not E164.fullmatch(sms.to):
            raise _invalid(sms.to)
        return SendResult(sms.message_id, (sms.to,), {})


class TwilioProvider:
    def __init__(self, account_sid: str, auth_token: str, *, sender: str = "",
                 messaging_service_sid: str = "", base_url: str = DEFAULT_BASE_URL,
                 timeout: float = 10.0, http: Http | None = None) -> None:
        """`http`: the client to call with (default: one of its own, unguarded, made at
        start)."""
        if not account_sid or not auth_token:
            raise ValueError("provider = \"twilio\" needs account_sid and auth_token")
        if not sender and not messaging_service_sid:
            raise ValueError("provider = \"twilio\" needs from (a number) or "
                             "messaging_service_sid")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        self.url = (f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account_sid, safe='')}"
                    "/Messages.json")
        credentials = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._headers = {"Authorization": f"Basic {credentials}",
                         "Content-Type": "application/x-www-form-urlencoded",
                         "Accept": "application/json"}
        # A Messaging Service picks the sender itself; Twilio refuses both at once.
        self._sender = ({"MessagingServiceSid": messaging_service_sid} if messaging_service_sid
                        else {"From": sender})
        self.timeout = timeout
        self._http = http
        self._own: HttpClient | None = None

    async def start(self) -> None:
        if self._http is None:
            self._own = HttpClient(allow_private_networks=True)
            await self._own.start()
            self._http = self._own

    async def close(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            self._http = None
            await own.close()

    async def send(self, sms: OutgoingSms) -> SendResult:
        if self._http is None:
            raise RuntimeError("TwilioProvider.start() has not been called (or close() has)")
        if not E164.fullmatch(sms.to):
            raise _invalid(sms.to)
        body = urlencode({"To": sms.to, **self._sender, "Body": sms.body}).encode()
        response = await self._http.request("POST", self.url, headers=self._headers, body=body,
                                            timeout=self.timeout)
        if response.ok:
            # Taken: a 2xx without the id it should carry is still a message Twilio has (sending
            # it again would send it twice).
            sid = response.body.get("sid") if isinstance(response.body, dict) else None
            return SendResult(sid if isinstance(sid, str) else None, (sms.to,), {})
        return self._refused(sms.to, response.status, response.body)

    def _refused(self, to: str, status: int, body: Any) -> SendResult:
        error = body if isinstance(body, dict) else {}
        code = error.get("code")
        said = _describe(status, error, body)
        if code == INVALID_NUMBER:
            return SendResult(None, (), {to: said})
        if code == UNSUBSCRIBED:
            raise RecipientOptedOut(f"the recipient {to} unsubscribed from this sender "
                                    f"(Twilio {said})")
        if status == 429 or status >= 500:
            raise EffectFailed("sms_unavailable", f"Twilio answered {said}", retryable=True)
        if status == 401:
            raise EffectFailed("sms_auth_failed", f"Twilio refused the account's credentials: "
                               f"{said}", retryable=False)
        raise EffectFailed("sms_refused", f"Twilio refused the message: {said}",
                           retryable=False)


def _describe(status: int, error: dict[str, Any], body: Any) -> str:
    """`HTTP 400, 21211: The 'To' number … is not a valid phone number (more_info)`."""
    said = f"HTTP {status}"
    if "code" in error:
        said += f", {error['code']}"
    if error.get("message"):
        said += f": {error['message']}"
    elif isinstance(body, str) and body.strip():
        said += f": {body.strip()[:200]}"
    if error.get("more_info"):
        said += f" ({error['more_info']})"
    return said
