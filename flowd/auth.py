"""API keys: generation, hashing, bootstrap of the first admin key, and request authentication.

Keys are 256-bit random tokens, so a single SHA-256 is the right hash (slow password hashes
defend low-entropy secrets; these are not). A request costs one hash and one indexed lookup,
whether the key is good or bad. The index lookup uses only the first 16 hex digits of the hash;
the full hash is then compared in constant time, so response timing reveals nothing that helps
guess a key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from flowd.clock import Clock
from flowd.errors import ConfigError, Forbidden, Unauthorized
from flowd.store import Store
from flowd.store.base import Keys
from flowd.store.records import Role

log = logging.getLogger("flowd.auth")

KEY_PREFIX = "flowd_"
MIN_ENV_KEY_LENGTH = 16
_CACHE_LIMIT = 10_000


class Access(Enum):
    """What a route requires of the calling key."""

    PUBLIC = "public"   # no key at all
    ANY = "any"         # any valid key
    INGEST = "ingest"   # send events and upsert contacts
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    # Only the caller's own browser session (its cookie), whatever its role: /v1/session.
    SESSION = "session"


ALLOWED_ROLES: dict[Access, frozenset[Role]] = {
    Access.ANY: frozenset(Role),
    Access.INGEST: frozenset({Role.ADMIN, Role.EDITOR, Role.INGEST}),
    Access.READ: frozenset({Role.ADMIN, Role.EDITOR, Role.VIEWER}),
    Access.WRITE: frozenset({Role.ADMIN, Role.EDITOR}),
    Access.ADMIN: frozenset({Role.ADMIN}),
    Access.SESSION: frozenset(Role),
}


@dataclass(frozen=True)
class Principal:
    key_id: str
    project: str
    role: Role


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_prefix(key: str) -> str:
    return key[:len(KEY_PREFIX) + 4]


class Authenticator:
    def __init__(self, store: Store, clock: Clock, cache_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self._cache_ms = int(cache_seconds * 1000)
        # key hash -> (principal, valid until ms). Only keys that exist are cached, so the
        # cache is bounded by the number of real keys, not by what attackers send.
        self._cache: dict[str, tuple[Principal, int]] = {}

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("malformed Authorization header: expected 'Bearer <key>'")
        return await self.authenticate_key(token)

    async def authenticate_key(self, token: str) -> Principal:
        """The principal of an API key itself (from a header, or a sign-in's body)."""
        digest = hash_key(token)
        now = self._clock.now_ms()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        lookup = digest[:Keys.LOOKUP_LENGTH]
        candidates = await self._store.read(lambda tx: tx.keys.find_active(lookup))
        key = next((k for k, stored in candidates if hmac.compare_digest(stored, digest)), None)
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        principal = Principal(key.id, key.project_id, key.role)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[digest] = (principal, now + self._cache_ms)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from the cache at once."""
        for digest, (principal, _) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]


def require(principal: Principal, access: Access) -> None:
    if principal.role not in ALLOWED_ROLES[access]:
        raise Forbidden(f"a key with role '{principal.role.value}' may not do this")


def admin_key_file(db_path: str) -> Path:
    return Path(db_path).resolve().parent / "admin.key"


async def bootstrap_admin(store: Store, clock: Clock, db_path: str, env_key: str | None) -> None:
    """FLOWD_ADMIN_KEY, when set, is (idempotently) an admin key of project `default`.
    Otherwise a database with no keys at all gets one, written to `admin.key` (mode 0600)."""
    now = clock.now_ms()
    if env_key is not None:
        if len(env_key) < MIN_ENV_KEY_LENGTH or not env_key.isprintable() or " " in env_key:
            raise ConfigError(f"FLOWD_ADMIN_KEY must be at least {MIN_ENV_KEY_LENGTH} printable "
                              "characters without spaces")
        await store.write(lambda tx: tx.keys.ensure_admin(
            key_hash=hash_key(env_key), prefix=key_prefix(env_key), name="FLOWD_ADMIN_KEY",
            now=now))
        return
    if await store.read(lambda tx: tx.keys.count()):
        return
    key = generate_key()
    path = admin_key_file(db_path)
    if path.exists():
        log.warning("replacing %s, left from an earlier database: keys of other databases can be "
                    "made with `python -m flowd keys create --role admin --db PATH`", path)
    # Write the file before committing the key: a crash in between leaves a harmless file,
    # never a key nobody can read.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    await store.write(lambda tx: tx.keys.create(
        project_id="default", role=Role.ADMIN, name="bootstrap", key_hash=hash_key(key),
        prefix=key_prefix(key), now=now))
    log.info("created the first admin key; it is in %s (mode 0600)", path)
