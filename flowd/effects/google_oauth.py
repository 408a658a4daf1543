"""OAuth2 access tokens for a Google service account, by the JWT-bearer grant (RFC 7523), as FCM
needs them.

    account = load_service_account("/etc/flowd/firebase.json")   # ValueError says what is wrong
    tokens = AccessTokens(account, clock, http, timeout=10)
    bearer = await tokens.get()      # fetched once, then cached until shortly before it expires

The grant: `POST token_url` with the form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
and `assertion=<JWT>`, the JWT signed RS256 with the account's private key and claiming `iss` =
the account's `client_email`, `scope`, `aud` = the token URL, `iat` and `exp` = `iat` + 1 h. The
answer is `{"access_token", "expires_in", "token_type"}`.

RS256 needs the `cryptography` package, an optional extra (`pip install 'flowd[fcm]'`): it is
imported only here and only when an account is loaded, so a server without FCM never needs it,
and one configured for FCM without it stops at start with a clear message.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flowd.clock import Clock
from flowd.effects.base import EffectFailed, Http

__all__ = ["AccessTokens", "FCM_SCOPE", "GOOGLE_TOKEN_URL", "ServiceAccount",
           "load_service_account"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 3600
# A token is fetched anew this long before it expires, so none is used at its last moment.
REFRESH_MARGIN_MS = 60_000
INSTALL_HINT = "pip install 'flowd[fcm]'"


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    project_id: str
    token_uri: str
    private_key_id: str | None
    signer: Any            # the RSA private key (cryptography), loaded once


def load_service_account(path: str) -> ServiceAccount:
    """The account of a service-account JSON key file; ValueError says what is wrong."""
    _require_cryptography()
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except OSError as exc:
        raise ValueError(f"cannot read the service-account file {path}: "
                         f"{exc.strerror or exc}") from None
    except ValueError:
        raise ValueError(f"the service-account file {path} is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"the service-account file {path} is not a JSON object")
    missing = [key for key in ("client_email", "private_key", "project_id")
               if not isinstance(data.get(key), str) or not data[key]]
    if missing:
        raise ValueError(f"the service-account file {path} has no {', '.join(missing)}")
    key_id = data.get("private_key_id")
    return ServiceAccount(client_email=data["client_email"], project_id=data["project_id"],
                          token_uri=str(data.get("token_uri") or GOOGLE_TOKEN_URL),
                          private_key_id=key_id if isinstance(key_id, str) else None,
                          signer=_private_key(data["private_key"], path))


def _require_cryptography() -> None:
    try:
        import cryptography.hazmat.primitives.asymmetric.rsa  # noqa: F401
    except ImportError:
        raise ValueError(f"provider = \"fcm\" signs its OAuth assertion with RS256, which "
                         f"needs the cryptography package: {INSTALL_HINT}") from None


def _private_key(pem: str, path: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the private_key of {path} is not a PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"the private_key of {path} is not an RSA key (RS256 needs one)")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def assertion(account: ServiceAccount, audience: str, scope: str, now_s: int) -> str:
    """The JWT of the grant, signed RS256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {"iss": account.client_email, "scope": scope, "aud": audience, "iat": now_s,
              "exp": now_s + ASSERTION_SECONDS}
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode())
                             for part in (header, claims))
    signature = account.signer.sign(signing_input.encode("ascii"), padding.PKCS1v15(),
                                     hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


class AccessTokens:
    """One bearer token at a time for `account`, fetched when first needed and again shortly
    before it expires (or after `forget`). Concurrent callers share one fetch."""

    def __init__(self, account: ServiceAccount, clock: Clock, http: Http, *,
                 token_url: str | None = None, scope: str = FCM_SCOPE,
                 timeout: float = 10.0) -> None:
        self.account = account
        self.token_url = token_url or account.token_uri
        self.scope = scope
        self.timeout = timeout
        self._clock = clock
        self._http = http
        self._token: str | None = None
        self._renew_at = 0
        self._lock = asyncio.Lock()

    def forget(self, token: str) -> None:
        """The API refused `token` (401): the next `get` fetches a new one."""
        if self._token == token:
            self._token = None

    async def get(self) -> str:
        if self._token is not None and self._clock.now_ms() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is None or self._clock.now_ms() >= self._renew_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def _fetch(self) -> None:
        now_ms = self._clock.now_ms()
        jwt = assertion(self.account, self.token_url, self.scope, now_ms // 1000)
        body = urlencode({"grant_type": GRANT_TYPE, "assertion": jwt}).encode()
        response = await self._http.request(
            "POST", self.token_url, body=body, timeout=self.timeout,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json"})
        answer = response.body if isinstance(response.body, dict) else {}
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if response.ok and isinstance(token, str) and token:
            lifetime_ms = (int(expires_in) if isinstance(expires_in, (int, float))
                           else ASSERTION_SECONDS) * 1000
            self._token = token
            self._renew_at = now_ms + max(lifetime_ms - REFRESH_MARGIN_MS, 0)
            return
        said = f"HTTP {response.status}"
        if answer.get("error"):
            said += f", {answer['error']}"
        if answer.get("error_description"):
            said += f": {answer['error_description']}"
        retryable = response.status == 429 or response.status >= 500
        raise EffectFailed("push_unavailable" if retryable else "push_auth_failed",
                           f"the OAuth token endpoint {self.token_url} answered {said}",
                           retryable=retryable)
