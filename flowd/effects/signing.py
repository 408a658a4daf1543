"""Standard Webhooks signatures (https://www.standardwebhooks.com): each project has a secret
`whsec_<base64 of 32 random bytes>`; a delivery carries `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` — one signature per valid
secret, space-separated, so receivers keep verifying while a secret is rotated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Awaitable, Callable

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_)


def delivery_id(run_id: str, step_id: str, visit: int) -> str:
    """Deterministic per (run, step, visit): the same across retries and crash re-runs."""
    digest = hashlib.sha256(f"{run_id}/{step_id}/{visit}".encode()).digest()
    return "msg_" + base64.b32encode(digest[:15]).decode().lower()


class WebhookSigner:
    """Signs deliveries with a project's currently valid secrets, cached until rotation."""

    def __init__(self, load_secrets: Callable[[str], Awaitable[list[str]]]) -> None:
        self._load = load_secrets
        self._cache: dict[str, list[str]] = {}

    async def signature(self, project_id: str, msg_id: str, timestamp: int, body: bytes) -> str:
        secrets_ = self._cache.get(project_id)
        if secrets_ is None:
            secrets_ = self._cache[project_id] = await self._load(project_id)
        return signature_header(secrets_, msg_id, timestamp, body)

    def forget(self, project_id: str) -> None:
        self._cache.pop(project_id, None)
