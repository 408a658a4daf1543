"""The Slack provider: a message posted to an incoming webhook.

    provider = SlackProvider(guarded=http, default_url="https://hooks.slack.com/services/…")
    await provider.start()
    await provider.send(OutgoingSlack("msg_…", None, "Deploy finished", blocks=None))

Slack's wire format: `POST <webhook URL>` with JSON `{"text", "blocks"?}`; `200` with the body
`ok`. Its errors are a status and one word: `400 invalid_payload`, `400 invalid_blocks`, `403
action_prohibited`, `404 channel_not_found`, `404`/`410 no_service`, `410 channel_is_archived`,
… — all `EffectFailed("slack_refused")`, not retryable (the webhook or the payload is wrong);
`429` and `5xx` are `EffectFailed("slack_unavailable")`, retryable. The answer's
`x-slack-req-id` is the provider's id of the message.

A step's `webhook_url` was written by a workflow's author, so it goes through the SSRF-guarded
client (`guarded`, the server's `Http` effect); the operator's `[slack] webhook_url` is
configuration and is called without the guard. Every call has the timeout.
"""

from __future__ import annotations

import json
from typing import Any

from flowd.effects.base import EffectFailed, Http, SendResult
from flowd.effects.http import HttpClient
from flowd.effects.outgoing import OutgoingSlack

__all__ = ["SlackProvider", "shown_url"]


def shown_url(url: str) -> str:
    """A webhook URL as a message record shows it: its last path segment (the secret part of
    `https://hooks.slack.com/services/T…/B…/<secret>`) hidden."""
    head, _, last = url.rstrip("/").rpartition("/")
    if not last or "//" not in url or head.endswith(":/"):
        return url
    return f"{head}/…"


class SlackProvider:
    def __init__(self, *, guarded: Http, default_url: str = "", timeout: float = 10.0,
                 operator_http: Http | None = None) -> None:
        """`operator_http`: the unguarded client for `default_url` (default: one of its own,
        made at start when there is a default URL)."""
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        self.default_url = default_url
        self.timeout = timeout
        self._guarded = guarded
        self._operator = operator_http
        self._own: HttpClient | None = None

    async def start(self) -> None:
        if self._operator is None and self.default_url:
            self._own = HttpClient(allow_private_networks=True)
            await self._own.start()
            self._operator = self._own

    async def close(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            self._operator = None
            await own.close()

    async def send(self, message: OutgoingSlack) -> SendResult:
        if message.url:
            http, url = self._guarded, message.url
        else:
            if not self.default_url:
                raise EffectFailed("no_webhook_url", "the step names no webhook_url and "
                                   "[slack] webhook_url is not set", retryable=False)
            if self._operator is None:
                raise RuntimeError("SlackProvider.start() has not been called (or close() has)")
            http, url = self._operator, self.default_url
        payload: dict[str, Any] = {"text": message.text}
        if message.blocks:
            payload["blocks"] = message.blocks
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        response = await http.request("POST", url, body=body, timeout=self.timeout,
                                      headers={"Content-Type": "application/json; charset=utf-8"})
        if response.ok:
            return SendResult(response.headers.get("x-slack-req-id"), (shown_url(url),), {})
        said = f"HTTP {response.status}"
        text = response.body if isinstance(response.body, str) else json.dumps(response.body)
        if text.strip():
            said += f": {text.strip()[:200]}"
        if response.status == 429 or response.status >= 500:
            raise EffectFailed("slack_unavailable", f"Slack answered {said}", retryable=True)
        raise EffectFailed("slack_refused", f"Slack refused the message: {said}",
                           retryable=False)
