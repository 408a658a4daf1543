"""Standard Webhooks signatures (https://www.standardwebhooks.com): each project has a secret
`whsec_<base64 of 32 random bytes>`; a delivery carries `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` — one signature per valid
secret, space-separated, so receivers keep verifying while a secret is rotated.

`verify` is the receiving side, for webhook triggers: the same primitives, checked in constant
time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Awaitable, Callable, Mapping

SECRET_PREFIX = "whsec_"
# Standard Webhooks' default: a delivery older or newer than this is a replay or a wrong clock.
TOLERANCE_SECONDS = 5 * 60


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
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


class SignatureRejected(Exception):
    """A delivery whose signature does not hold; the message says why, for the sender."""


def verify(secret: str, headers: Mapping[str, str], body: bytes, now_s: float,
           tolerance_s: int = TOLERANCE_SECONDS) -> None:
    """Check a delivery's `webhook-id`, `webhook-timestamp` and `webhook-signature` (any one
    `v1,` signature of the space-separated list may match) over its raw body."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    presented = headers.get("webhook-signature")
    missing = [name for name, value in (("webhook-id", msg_id),
                                        ("webhook-timestamp", timestamp),
                                        ("webhook-signature", presented)) if not value]
    if missing:
        raise SignatureRejected(f"this hook needs a signed delivery; missing header "
                                f"{', '.join(missing)}")
    assert msg_id is not None and timestamp is not None and presented is not None
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRejected("webhook-timestamp must be a Unix time in whole seconds")
    skew = int(timestamp) - now_s
    if abs(skew) > tolerance_s:
        raise SignatureRejected(f"webhook-timestamp is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
                                f"the server's clock (at most {tolerance_s} s is accepted)")
    # The signed text is the header's own spelling of the time, as the sender wrote it.
    expected = sign(secret, msg_id, timestamp, body).encode()
    # Every candidate is compared (no early exit), so timing tells nothing about which was close.
    matched = False
    for candidate in presented.split(" "):
        if candidate.startswith("v1,") and candidate.isascii():
            matched |= hmac.compare_digest(candidate.encode(), expected)
    if not matched:
        raise SignatureRejected("no signature in webhook-signature matches this body under the "
                                "hook's secret")
