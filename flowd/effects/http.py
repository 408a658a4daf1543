"""The one outbound HTTP effect: every step that calls out (webhook, http_request, …) uses it.

    client = HttpClient(allow_private_networks=False)
    await client.start()
    resp = await client.request("POST", url, headers={...}, body=b"...", timeout=10)
    await client.close()

What it guarantees:

- **Private-network guard, on the address actually connected to.** Unless
  `allow_private_networks` is set, a destination is refused (`DestinationNotAllowed`) when it is
  not globally routable: loopback, RFC 1918 / unique-local private, link-local, CGNAT, multicast,
  reserved, unspecified, documentation and other special-purpose ranges, including IPv4 addresses
  hidden inside IPv6 (IPv4-mapped, IPv4-compatible, 6to4, NAT64; Teredo is refused outright).
  `allowed_networks` (CIDRs) are let through anyway. Names are checked by a resolver plugged into
  aiohttp's connector (`GuardedResolver`), so the connector only ever connects to addresses that
  were checked — there is no second lookup an attacker's DNS could answer differently. aiohttp
  never consults the resolver for IP-literal hosts, so those (and the legacy numeric spellings
  `inet_aton` accepts: `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, `127.0.0.1.`) are checked
  here before the request is made.
- **Redirects are never followed**: a 3xx is returned like any other response.
- **Non-2xx is not an exception**: the response is returned and the caller decides.
- **Every call has a total timeout** (connect, send, headers and body) → `HttpCallFailed("timeout")`.
- **Failures are `EffectFailed`s** (`flowd.effects.base`), so the engine records them like any
  effect's: `DestinationNotAllowed` is not retryable, every `HttpCallFailed` is.
- **Bodies are capped** at `max_body_bytes` (default 64 KiB): at most cap+1 bytes are read off the
  stream and the connection is dropped if there was more; `HttpResponse.truncated` says so.
- **JSON**: the body is parsed as JSON when the response's media type says it is JSON
  (`application/json` or any `…/…+json`, e.g. `application/problem+json`) and it parses; otherwise
  (and always when truncated) it is text. The content isn't sniffed: a `text/plain` "123" stays the
  string "123".
- One `aiohttp.ClientSession` is reused (keep-alive pool, keyed by host; every *new* connection goes
  through the guard). It ignores proxy environment variables (`trust_env=False`) and keeps no
  cookies between calls (different workflows must not share a cookie jar).
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import json
import socket
from typing import Any, Mapping, Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from flowd.effects.base import EffectFailed, HttpResponse

__all__ = [
    "DestinationNotAllowed",
    "GuardedResolver",
    "HttpCallFailed",
    "HttpClient",
    "HttpResponse",
    "NetworkPolicy",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_HINT = "set [http] allow_private_networks = true to allow private destinations"


class DestinationNotAllowed(EffectFailed):
    """The destination resolves to an address the private-network guard refuses. Not retryable:
    the same URL is refused again.

    Deliberately not an `OSError`: aiohttp wraps resolver `OSError`s into
    `ClientConnectorDNSError`, while other exceptions from the resolver reach the caller as they are.
    """

    code = "destination_not_allowed"

    def __init__(self, address: str, reason: str, *, host: str | None = None) -> None:
        self.address = address  # the refused IP address, as text
        self.reason = reason    # e.g. "is a loopback address"
        self.host = host        # the URL's host when it differs from the address (a name, 0x7f.1…)
        shown = address if host is None or host == address else f"{host} resolves to {address}, which"
        super().__init__(self.code, f"{shown} {reason}; {_HINT}", retryable=False)


class HttpCallFailed(EffectFailed):
    """The call produced no HTTP response. `code` is one of:

    - `"timeout"` — the total timeout ran out (connecting, sending, or reading the response);
    - `"connection_failed"` — name resolution failed, connection refused/reset, TLS error, or the
      server sent something that is not HTTP;
    - `"bad_url"` — not an absolute http(s) URL with a host;
    - `"bad_request"` — the method or a header can't be sent (e.g. a newline in a header value).

    All are retryable, as the http steps have always treated them: a timeout or a refused
    connection may well work next time, and whether to retry is the workflow's retry policy.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, retryable=True)


# --- the guard ----------------------------------------------------------------------------------

def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Checked by name so the refusal says why (and so each class is covered whatever this Python's
# `is_global` tables say); anything else that isn't `is_global` is refused as "not globally
# routable" at the end.
_CGNAT = _nets("100.64.0.0/10")
_THIS_NETWORK = _nets("0.0.0.0/8")
_DOCUMENTATION = _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32",
                       "3fff::/20")
_SPECIAL = _nets(
    "192.0.0.0/24",     # IETF protocol assignments
    "192.88.99.0/24",   # deprecated 6to4 relay anycast
    "198.18.0.0/15",    # benchmarking
    "100::/64",         # discard-only
    "2001::/23",        # IETF protocol assignments (includes Teredo 2001::/32, refused outright)
    "64:ff9b:1::/48",   # local-use NAT64 (RFC 8215)
    "5f00::/16",        # SRv6 SIDs
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: judged by the embedded IPv4


def _parse_ip(text: str) -> IPAddress:
    """An address from a resolver or URL, without any IPv6 zone (`fe80::1%eth0`, `…%25eth0`)."""
    if ":" in text:
        text = text.split("%", 1)[0]
    return ipaddress.ip_address(text)


class NetworkPolicy:
    """Decides whether an address may be connected to."""

    def __init__(self, *, allow_private_networks: bool, allowed_networks: Sequence[str] = ()) -> None:
        self.allow_private_networks = allow_private_networks
        # strict=False: "10.0.5.7/24" means 10.0.5.0/24.
        self.allowed_networks = tuple(ipaddress.ip_network(c, strict=False) for c in allowed_networks)

    def check(self, address: str | IPAddress, *, host: str | None = None) -> None:
        """Raise `DestinationNotAllowed` if `address` may not be connected to."""
        ip = _parse_ip(address) if isinstance(address, str) else address
        reason = self.why_not(ip)
        if reason is not None:
            raise DestinationNotAllowed(str(ip), reason, host=host)

    def why_not(self, ip: IPAddress) -> str | None:
        """None when `ip` is allowed, else why not (e.g. "is a loopback address")."""
        if self.allow_private_networks:
            return None
        return self._why_not(ip)

    def _allowed_explicitly(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)

    def _why_not(self, ip: IPAddress) -> str | None:
        if self._allowed_explicitly(ip):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            ip = ipaddress.IPv6Address(int(ip))  # drop any zone
            # IPv4 carried inside IPv6 reaches that IPv4 address: judge it by that address.
            if ip.ipv4_mapped is not None:
                return self._embedded(ip.ipv4_mapped, "an IPv4-mapped address of")
            if ip in _NAT64:
                return self._embedded(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "a NAT64 address of")
            if ip.sixtofour is not None:
                inner = self._embedded(ip.sixtofour, "a 6to4 address of")
                if inner is not None:
                    return inner
            if ip.teredo is not None:
                return "is a Teredo address (not globally routable)"
            if int(ip) >> 32 == 0 and int(ip) > 1:
                # ::a.b.c.d, deprecated IPv4-compatible (::/96 minus :: and ::1)
                return "is an IPv4-compatible IPv6 address (reserved)"
        if ip.is_unspecified:
            return "is an unspecified address"
        if ip.version == 4 and any(ip in n for n in _THIS_NETWORK):
            return "is in 0.0.0.0/8 (\"this network\", not a destination)"
        if ip.is_loopback:
            return "is a loopback address"
        if ip.is_link_local:
            return "is a link-local address"
        if ip.is_multicast:
            return "is a multicast address"
        if ip.version == 4 and any(ip in n for n in _CGNAT):
            return "is a carrier-grade NAT (shared) address"
        if any(ip in n for n in _DOCUMENTATION if n.version == ip.version):
            return "is a documentation address"
        if ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255"):
            return "is the broadcast address"
        if ip.version == 6 and ip.is_site_local:
            return "is a site-local address"
        if any(ip in n for n in _SPECIAL if n.version == ip.version):
            return "is a special-purpose address (not globally routable)"
        if ip.is_reserved:
            return "is a reserved address"
        if ip.is_private:
            return "is a private address"
        if not ip.is_global:
            return "is not a globally routable address"
        return None

    def _embedded(self, v4: ipaddress.IPv4Address, what: str) -> str | None:
        inner = self._why_not(v4)
        return None if inner is None else f"is {what} {v4}, which {inner}"


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's ThreadedResolver: the system resolver, /etc/hosts
    included) and refuses the whole answer if ANY record is disallowed. The connector connects to
    exactly the records returned here (happy eyeballs may try any of them, and a failure on one
    falls through to the next), so one private record among public ones — DNS round robin, or a
    rebinding attacker answering with both — must not be usable: checking only the first would let
    the connection land on the private one."""

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                ip = _parse_ip(result["host"])
            except ValueError:
                raise DestinationNotAllowed(str(result["host"]), "is not an IP address",
                                            host=host) from None
            self._policy.check(ip, host=host)
        return results

    async def close(self) -> None:
        await self._inner.close()


def _literal_address(host: str) -> tuple[IPAddress, bool] | None:
    """The address a host names without DNS, and whether it is written canonically.

    Besides real literals this covers what `inet_aton` (so `getaddrinfo`) also takes as IPv4:
    `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`, and a trailing dot (`127.0.0.1.`). aiohttp
    3.14 rejects the all-digit ones itself and sends the hex ones to the resolver, but older
    versions connect to them directly, so they are decoded and checked here either way.
    """
    try:
        return _parse_ip(host), True
    except ValueError:
        pass
    if ":" in host:
        return None
    candidate = host[:-1] if host.endswith(".") else host
    try:
        return ipaddress.IPv4Address(socket.inet_aton(candidate)), False
    except (OSError, ValueError):
        return None


# --- the client ---------------------------------------------------------------------------------

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _is_token(text: str) -> bool:
    return bool(text) and set(text) <= _TOKEN_CHARS


class HttpClient:
    def __init__(self, *, allow_private_networks: bool, allowed_networks: Sequence[str] = (),
                 max_body_bytes: int = 65536, user_agent: str = "flowd/0.1") -> None:
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must be >= 0")
        self.policy = NetworkPolicy(allow_private_networks=allow_private_networks,
                                    allowed_networks=allowed_networks)
        self.max_body_bytes = max_body_bytes
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy))
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,                          # no proxies from the environment
            cookie_jar=aiohttp.DummyCookieJar(),      # calls must not share cookies
            headers={"User-Agent": self.user_agent},
            raise_for_status=False,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> HttpClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                      body: bytes | None = None, timeout: float) -> HttpResponse:
        """One call. Raises `DestinationNotAllowed` or `HttpCallFailed`; any status is returned."""
        if self._session is None:
            raise RuntimeError("HttpClient.start() has not been called (or close() has)")
        if not timeout > 0:
            raise ValueError("timeout must be > 0 seconds")
        if not _is_token(method):
            raise HttpCallFailed("bad_request", f"{method!r} is not a valid HTTP method")
        for name, value in (headers or {}).items():
            if not _is_token(name):
                raise HttpCallFailed("bad_request", f"{name!r} is not a valid header name")
            if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
                # Checked here so nothing is sent; aiohttp only notices after connecting.
                raise HttpCallFailed("bad_request", f"header {name} has an invalid value "
                                                    "(it must be text without line breaks)")
        target = self._check_url(url)
        try:
            async with self._session.request(
                method.upper(), target, headers=dict(headers or {}), data=body,
                allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                raw, truncated = await self._read_capped(resp)
                if truncated:
                    resp.close()  # drop the connection rather than drain the rest
                return HttpResponse(status=resp.status, headers=_headers(resp),
                                    body=_decode(resp, raw, truncated), truncated=truncated)
        except (DestinationNotAllowed, HttpCallFailed):
            raise
        except asyncio.TimeoutError:  # includes aiohttp's ConnectionTimeoutError/ServerTimeoutError
            raise HttpCallFailed("timeout", f"{method.upper()} {_shown(target)} timed out after "
                                            f"{timeout:g} s") from None
        except aiohttp.InvalidURL as exc:
            raise HttpCallFailed("bad_url", f"invalid URL {_shown(target)}: {exc}") from None
        except aiohttp.ClientConnectorDNSError as exc:
            raise HttpCallFailed("connection_failed",
                                 f"could not resolve {target.host}: {_os_reason(exc)}") from None
        except aiohttp.ClientConnectorError as exc:
            _reraise_guard(exc)
            raise HttpCallFailed("connection_failed", f"could not connect to {exc.host}:{exc.port}: "
                                                      f"{_os_reason(exc)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            _reraise_guard(exc)
            raise HttpCallFailed("connection_failed", f"{method.upper()} {_shown(target)} failed: "
                                                      f"{_describe(exc)}") from None
        except ValueError as exc:  # aiohttp/multidict refusing a header name or value
            raise HttpCallFailed("bad_request", f"cannot send the request: {exc}") from None

    def _check_url(self, url: str | URL) -> URL:
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError) as exc:
            raise HttpCallFailed("bad_url", f"invalid URL {url!r}: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise HttpCallFailed("bad_url", f"URL {str(url)!r} must start with http:// or https://")
        host = parsed.raw_host  # exactly what aiohttp will connect to
        if not host:
            raise HttpCallFailed("bad_url", f"URL {str(url)!r} has no host")
        try:
            parsed.port
        except ValueError as exc:
            raise HttpCallFailed("bad_url", f"invalid URL {str(url)!r}: {exc}") from None
        literal = _literal_address(host)
        if literal is None:
            if ":" in host:
                raise HttpCallFailed("bad_url", f"URL {str(url)!r} has an invalid IPv6 address")
            return parsed  # a name: checked by GuardedResolver on every new connection
        ip, canonical = literal
        self.policy.check(ip, host=None if canonical else host)
        if not canonical:
            raise HttpCallFailed("bad_url", f"URL host {host!r} is not a canonical IP address; "
                                            f"write it as {ip}")
        return parsed

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> tuple[bytes, bool]:
        cap = self.max_body_bytes
        buf = bytearray()
        while len(buf) <= cap:
            chunk = await resp.content.read(cap + 1 - len(buf))
            if not chunk:
                break
            buf += chunk
        truncated = len(buf) > cap
        return bytes(buf[:cap]), truncated


def _reraise_guard(exc: BaseException) -> None:
    """Re-raise a DestinationNotAllowed that some aiohttp version wrapped."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DestinationNotAllowed):
            raise cur from None
        cur = cur.__cause__ or cur.__context__
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, DestinationNotAllowed):
            raise arg from None


def _shown(url: URL) -> str:
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return os_error.strerror or str(os_error) or type(os_error).__name__


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _headers(resp: aiohttp.ClientResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in resp.headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _decode(resp: aiohttp.ClientResponse, raw: bytes, truncated: bool) -> Any:
    if not truncated and _is_json_type(resp.content_type):
        try:
            return json.loads(raw)  # bytes: UTF-8/16/32 detected as RFC 8259 allows
        except ValueError:
            pass
    encoding = resp.charset or "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # When cut, final=False drops a multi-byte character split at the cap instead of showing U+FFFD.
    return decoder.decode(raw, final=not truncated)
