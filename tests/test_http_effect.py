"""The outbound HTTP effect, against real servers on 127.0.0.1 (and 127.0.0.2) only.

Refusals are proven to happen before any connection in two ways: a connection-counting sink on
127.0.0.1 that must see nothing (with a positive control showing it does see calls that are
allowed), and private/unroutable literals with a short timeout, which would otherwise time out or
fail differently.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

import pytest
from aiohttp import web

from flowd.effects import http as http_mod
from flowd.effects.base import EffectFailed
from flowd.effects.http import (
    DestinationNotAllowed,
    GuardedResolver,
    HttpCallFailed,
    HttpClient,
    HttpResponse,
    NetworkPolicy,
)

# --- helpers ------------------------------------------------------------------------------------


class Sink:
    """A raw TCP listener that counts every connection it accepts and answers 200 "sink"."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
                         b"Connection: close\r\n\r\nsink")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}/"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def sink():
    s = Sink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def make_client():
    clients: list[HttpClient] = []

    async def make(**kw) -> HttpClient:
        kw.setdefault("allow_private_networks", False)
        c = HttpClient(**kw)
        await c.start()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def guarded(make_client) -> HttpClient:
    return await make_client(allow_private_networks=False)


@pytest.fixture
async def open_client(make_client) -> HttpClient:
    return await make_client(allow_private_networks=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeResolver:
    """Stands in for aiohttp's ThreadedResolver: answers every name with fixed addresses."""

    def __init__(self, addresses: list[str] | Exception) -> None:
        self.addresses = addresses
        self.calls: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.calls.append(host)
        if isinstance(self.addresses, Exception):
            raise self.addresses
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in self.addresses]

    async def close(self):
        pass


# --- the guard: loopback and names never reach the local sink ----------------------------------

async def test_sink_is_reachable_when_private_networks_are_allowed(open_client, sink):
    # Positive control: the refusals below are meaningful because this does connect.
    resp = await open_client.request("GET", sink.url(), timeout=2)
    assert (resp.status, resp.body, resp.truncated) == (200, "sink", False)
    assert sink.connections == 1
    resp = await open_client.request("GET", sink.url("localhost"), timeout=2)
    assert resp.status == 200 and sink.connections == 2


async def test_loopback_literal_is_refused_and_sink_receives_nothing(guarded, sink):
    with pytest.raises(DestinationNotAllowed) as err:
        await guarded.request("GET", sink.url(), timeout=2)
    assert err.value.code == "destination_not_allowed"
    assert err.value.address == "127.0.0.1"
    assert str(err.value) == ("127.0.0.1 is a loopback address; set [http] allow_private_networks "
                              "= true to allow private destinations")
    await asyncio.sleep(0.05)
    assert sink.connections == 0


async def test_localhost_name_is_refused_via_resolver_and_sink_receives_nothing(guarded, sink):
    with pytest.raises(DestinationNotAllowed) as err:  # not wrapped in ClientConnectorError
        await guarded.request("POST", sink.url("localhost"), body=b"{}", timeout=2)
    assert err.value.host == "localhost"
    assert "localhost resolves to" in str(err.value) and "loopback" in str(err.value)
    await asyncio.sleep(0.05)
    assert sink.connections == 0


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.2", "127.255.255.254", "0.0.0.0", "0", "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]", "LocalHost",
    # legacy numeric spellings getaddrinfo/inet_aton map to 127.0.0.1
    "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.1", "127.0.0.1.",
    # IDNA/NFKC spellings yarl normalises to 127.0.0.1
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127\u30020\u30020\u30021",
])
async def test_every_spelling_of_this_host_is_refused(guarded, sink, host):
    with pytest.raises(DestinationNotAllowed):
        await guarded.request("GET", sink.url(host), timeout=1)
    await asyncio.sleep(0.02)
    assert sink.connections == 0


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://172.16.0.1/", "http://192.168.1.1/",       # RFC 1918
    "http://169.254.169.254/latest/meta-data/",                           # cloud metadata
    "http://100.64.0.1/",                                                 # CGNAT
    "http://0.0.0.0/", "http://[::]/",                                    # unspecified
    "http://[::1]/", "http://[::ffff:127.0.0.1]/",                        # loopback
    "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/",      # IPv4-mapped
    "http://[fd00::1]/", "http://[fe80::1]/", "http://[fe80::1%25lo]/",   # ULA, link-local
    "http://224.0.0.1/", "http://[ff02::1]/",                             # multicast
    "http://240.0.0.1/", "http://255.255.255.255/",                       # reserved, broadcast
    "http://192.0.2.1/", "http://[2001:db8::1]/",                         # documentation
    "http://[2002:a9fe:a9fe::1]/", "http://[64:ff9b::a9fe:a9fe]/",        # 6to4 / NAT64 of 169.254.169.254
    "https://10.0.0.1:8443/",
])
async def test_private_literals_are_refused_before_connecting(guarded, url):
    # A short timeout: had a connection been attempted this would time out or fail differently.
    start = time.monotonic()
    with pytest.raises(DestinationNotAllowed):
        await guarded.request("GET", url, timeout=0.3)
    assert time.monotonic() - start < 0.2


async def test_redirect_to_private_address_is_not_followed(make_client, sink, aiohttp_server):
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(sink.url())

    app = web.Application()
    app.router.add_get("/", redirect)
    redirector = await aiohttp_server(app, host="127.0.0.2")  # Linux routes all of 127/8 to lo
    client = await make_client(allowed_networks=["127.0.0.2/32"])

    resp = await client.request("GET", f"http://127.0.0.2:{redirector.port}/", timeout=2)
    assert resp.status == 302
    assert resp.headers["location"] == sink.url()
    await asyncio.sleep(0.05)
    assert sink.connections == 0
    # and the allowance is exactly 127.0.0.2/32: the sink itself stays refused
    with pytest.raises(DestinationNotAllowed):
        await client.request("GET", sink.url(), timeout=1)
    assert sink.connections == 0


async def test_allowed_networks_admit_only_those_addresses(make_client, sink):
    client = await make_client(allowed_networks=["127.0.0.1/32"])
    assert (await client.request("GET", sink.url(), timeout=2)).status == 200
    with pytest.raises(DestinationNotAllowed):
        await client.request("GET", "http://10.0.5.1/", timeout=0.3)
    client = await make_client(allowed_networks=["10.0.5.0/24"])
    with pytest.raises(DestinationNotAllowed):
        await client.request("GET", sink.url(), timeout=1)
    assert sink.connections == 1


async def test_a_name_with_any_disallowed_record_is_refused(make_client, sink, monkeypatch):
    # Round robin / DNS rebinding: one public-looking (here: explicitly allowed) record and one
    # private one. Even though the first would pass, the whole answer is refused.
    fake = FakeResolver(["127.0.0.1", "10.0.0.1"])
    monkeypatch.setattr(http_mod, "ThreadedResolver", lambda: fake)
    client = await make_client(allowed_networks=["127.0.0.1/32"])
    with pytest.raises(DestinationNotAllowed) as err:
        await client.request("GET", sink.url("rebind.example"), timeout=1)
    assert err.value.address == "10.0.0.1" and err.value.host == "rebind.example"
    assert fake.calls == ["rebind.example"] and sink.connections == 0


async def test_connects_to_exactly_the_checked_address(make_client, sink, monkeypatch):
    fake = FakeResolver(["127.0.0.1"])
    monkeypatch.setattr(http_mod, "ThreadedResolver", lambda: fake)
    client = await make_client(allowed_networks=["127.0.0.1/32"])
    resp = await client.request("GET", sink.url("service.internal.example"), timeout=2)
    assert resp.status == 200 and sink.connections == 1


async def test_resolution_failure_is_connection_failed(monkeypatch):
    monkeypatch.setattr(http_mod, "ThreadedResolver",
                        lambda: FakeResolver(socket.gaierror(socket.EAI_NONAME, "Name or service not known")))
    client = HttpClient(allow_private_networks=True)
    await client.start()
    try:
        with pytest.raises(HttpCallFailed) as err:
            await client.request("GET", "http://nowhere.invalid/", timeout=1)
        assert err.value.code == "connection_failed"
        assert "nowhere.invalid" in str(err.value)
    finally:
        await client.close()


async def test_guarded_resolver_checks_every_record():
    policy = NetworkPolicy(allow_private_networks=False)
    ok = GuardedResolver(policy, FakeResolver(["8.8.8.8", "2001:4860:4860::8888"]))
    assert len(await ok.resolve("dns.google", 443, socket.AF_UNSPEC)) == 2
    mixed = GuardedResolver(policy, FakeResolver(["8.8.8.8", "192.168.0.10"]))
    with pytest.raises(DestinationNotAllowed) as err:
        await mixed.resolve("example.test", 80)
    assert err.value.address == "192.168.0.10"
    assert not isinstance(err.value, OSError)  # aiohttp would wrap an OSError as a DNS error
    open_policy = NetworkPolicy(allow_private_networks=True)
    assert len(await GuardedResolver(open_policy, FakeResolver(["192.168.0.10"])).resolve("x")) == 1


# --- the address classes ------------------------------------------------------------------------

REFUSED = {
    "127.0.0.1": "loopback", "127.255.255.254": "loopback", "::1": "loopback",
    "10.0.0.1": "private", "172.16.0.1": "private", "172.31.255.255": "private",
    "192.168.1.1": "private", "fc00::1": "private", "fd12:3456::1": "private",
    "169.254.169.254": "link-local", "169.254.0.1": "link-local", "fe80::1": "link-local",
    "fe80::1%eth0": "link-local", "febf::1": "link-local",
    "100.64.0.1": "carrier-grade NAT", "100.127.255.254": "carrier-grade NAT",
    "224.0.0.1": "multicast", "239.255.255.250": "multicast", "ff02::1": "multicast",
    "ff0e::1": "multicast",
    "0.0.0.0": "unspecified", "::": "unspecified", "0.1.2.3": "this network",
    "240.0.0.1": "reserved", "255.255.255.254": "reserved", "255.255.255.255": "broadcast",
    "192.0.2.1": "documentation", "198.51.100.7": "documentation", "203.0.113.9": "documentation",
    "2001:db8::1": "documentation", "3fff::1": "documentation",
    "198.18.0.1": "special-purpose", "192.0.0.8": "special-purpose", "100::1": "special-purpose",
    "fec0::1": "site-local",
    "::ffff:127.0.0.1": "IPv4-mapped address of 127.0.0.1, which is a loopback",
    "::ffff:10.1.2.3": "IPv4-mapped address of 10.1.2.3, which is a private",
    "::ffff:169.254.169.254": "link-local", "::ffff:100.64.0.1": "carrier-grade NAT",
    "::ffff:0.0.0.0": "unspecified", "::ffff:0.0.0.1": "this network",
    "::127.0.0.1": "IPv4-compatible", "::10.0.0.1": "IPv4-compatible",
    "2002:7f00:1::1": "6to4 address of 127.0.0.1", "2002:c0a8:101::": "6to4 address of 192.168.1.1",
    "64:ff9b::7f00:1": "NAT64 address of 127.0.0.1", "64:ff9b::a9fe:a9fe": "link-local",
    "64:ff9b:1::a00:1": "special-purpose",
    "2001::1": "Teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2": "Teredo",
}

ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "2001:4860:4860::8888",
           "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808", "100.63.255.255",
           "100.128.0.0", "172.32.0.1", "192.169.0.1"]


@pytest.mark.parametrize("address,reason", sorted(REFUSED.items()))
def test_refused_address_classes(address, reason):
    policy = NetworkPolicy(allow_private_networks=False)
    with pytest.raises(DestinationNotAllowed) as err:
        policy.check(address)
    assert reason in str(err.value)
    assert "allow_private_networks = true" in str(err.value)
    NetworkPolicy(allow_private_networks=True).check(address)  # everything goes when allowed


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address):
    NetworkPolicy(allow_private_networks=False).check(address)


def test_allowed_networks_override_and_apply_to_mapped_addresses():
    policy = NetworkPolicy(allow_private_networks=False, allowed_networks=["10.0.5.0/24", "fd00:5::/64"])
    for ok in ["10.0.5.1", "10.0.5.254", "::ffff:10.0.5.9", "fd00:5::1"]:
        policy.check(ok)
    for bad in ["10.0.6.1", "10.0.4.255", "127.0.0.1", "fd00:6::1"]:
        with pytest.raises(DestinationNotAllowed):
            policy.check(bad)
    # a host address in a CIDR is taken as its network
    assert NetworkPolicy(allow_private_networks=False,
                         allowed_networks=["10.0.5.7/24"]).why_not(ipaddress.ip_address("10.0.5.1")) is None


# --- calls that are allowed ---------------------------------------------------------------------

@pytest.fixture
async def target(aiohttp_server):
    """A real aiohttp server on 127.0.0.1 with assorted behaviours; `.seen` records requests."""
    seen: list[dict] = []

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                     "body": body, "peer": request.transport.get_extra_info("peername")})
        return web.json_response({"method": request.method, "body": body.decode()},
                                 headers={"X-Thing": "42"})

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.json_response({"error": "nope"}, status=code)

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="[1, 2, 3]", content_type="text/plain")

    async def problem(request: web.Request) -> web.Response:
        return web.Response(text='{"title": "bad"}', content_type="application/problem+json")

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="{not json", content_type="application/json")

    async def latin1(request: web.Request) -> web.Response:
        return web.Response(body="café".encode("latin-1"),
                            headers={"Content-Type": "text/plain; charset=latin-1"})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1_000_000, content_type="text/plain")

    async def big_json(request: web.Request) -> web.Response:
        return web.json_response({"items": ["y" * 100] * 10_000})

    async def exact(request: web.Request) -> web.Response:
        return web.Response(body=b"z" * int(request.query["n"]), content_type="text/plain")

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        chunk = b"e" * 65536
        try:
            while True:
                await resp.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"start")
        await asyncio.sleep(3)
        return resp

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/echo")

    async def cookie(request: web.Request) -> web.Response:
        seen.append({"path": "/cookie", "cookie": request.headers.get("Cookie")})
        resp = web.Response(text="ok")
        resp.set_cookie("session", "secret")
        return resp

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/text", text)
    app.router.add_get("/problem", problem)
    app.router.add_get("/not-json", not_json)
    app.router.add_get("/latin1", latin1)
    app.router.add_get("/big", big)
    app.router.add_get("/big-json", big_json)
    app.router.add_get("/exact", exact)
    app.router.add_get("/endless", endless)
    app.router.add_get("/slow", slow)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/cookie", cookie)
    server = await aiohttp_server(app, host="127.0.0.1")
    server.seen = seen
    server.base = f"http://127.0.0.1:{server.port}"
    return server


async def test_call_returns_status_json_body_and_headers(open_client, target):
    resp = await open_client.request("POST", f"{target.base}/echo", body=b'{"a": 1}',
                                     headers={"Content-Type": "application/json", "X-Custom": "v"},
                                     timeout=2)
    assert isinstance(resp, HttpResponse)
    assert resp.status == 200 and resp.ok and not resp.truncated
    assert resp.body == {"method": "POST", "body": '{"a": 1}'}
    assert resp.headers["x-thing"] == "42"
    assert resp.headers["content-type"].startswith("application/json")
    got = target.seen[-1]
    assert got["body"] == b'{"a": 1}'
    assert got["headers"]["X-Custom"] == "v"
    assert got["headers"]["Content-Type"] == "application/json"
    assert got["headers"]["User-Agent"] == "flowd/0.1"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "post"])
async def test_any_method(open_client, target, method):
    resp = await open_client.request(method, f"{target.base}/echo", timeout=2)
    assert resp.status == 200 and resp.body["method"] == method.upper()


async def test_head_has_empty_body(open_client, target):
    resp = await open_client.request("HEAD", f"{target.base}/echo", timeout=2)
    assert resp.status == 200 and resp.body == "" and not resp.truncated


@pytest.mark.parametrize("code", [400, 404, 500, 503])
async def test_non_2xx_is_returned_not_raised(open_client, target, code):
    resp = await open_client.request("GET", f"{target.base}/status/{code}", timeout=2)
    assert resp.status == code and not resp.ok
    assert resp.body == {"error": "nope"}


async def test_redirect_is_returned_not_followed(open_client, target):
    resp = await open_client.request("GET", f"{target.base}/redirect", timeout=2)
    assert resp.status == 301 and resp.headers["location"] == "/echo"
    assert target.seen == []


async def test_body_parsing_follows_content_type(open_client, target):
    assert (await open_client.request("GET", f"{target.base}/text", timeout=2)).body == "[1, 2, 3]"
    assert (await open_client.request("GET", f"{target.base}/problem", timeout=2)).body == {"title": "bad"}
    assert (await open_client.request("GET", f"{target.base}/not-json", timeout=2)).body == "{not json"
    assert (await open_client.request("GET", f"{target.base}/latin1", timeout=2)).body == "café"


async def test_one_megabyte_body_is_truncated_at_the_cap(open_client, target):
    resp = await open_client.request("GET", f"{target.base}/big", timeout=2)
    assert resp.truncated is True
    assert resp.body == "x" * 65536


async def test_custom_cap_and_truncated_json_becomes_text(make_client, target):
    client = await make_client(allow_private_networks=True, max_body_bytes=1000)
    resp = await client.request("GET", f"{target.base}/big-json", timeout=2)
    assert resp.truncated is True
    assert isinstance(resp.body, str) and len(resp.body) <= 1000
    assert resp.body.startswith('{"items": ["yyy')
    exact = await client.request("GET", f"{target.base}/exact?n=1000", timeout=2)
    assert (exact.truncated, len(exact.body)) == (False, 1000)
    over = await client.request("GET", f"{target.base}/exact?n=1001", timeout=2)
    assert (over.truncated, len(over.body)) == (True, 1000)


async def test_body_is_never_read_whole(open_client, target):
    # An endless body: reading it all would hang until the timeout; the cap returns at once.
    start = time.monotonic()
    resp = await open_client.request("GET", f"{target.base}/endless", timeout=3)
    assert resp.truncated and len(resp.body) == 65536
    assert time.monotonic() - start < 1


async def test_timeout(open_client, target):
    start = time.monotonic()
    with pytest.raises(HttpCallFailed) as err:
        await open_client.request("GET", f"{target.base}/slow", timeout=0.3)
    assert err.value.code == "timeout"
    assert "timed out after 0.3 s" in str(err.value)
    assert time.monotonic() - start < 1.5


async def test_timeout_covers_reading_the_body(open_client, target):
    with pytest.raises(HttpCallFailed) as err:
        await open_client.request("GET", f"{target.base}/slow-body", timeout=0.3)
    assert err.value.code == "timeout"


@pytest.mark.parametrize("url", [
    "ftp://example.com/file", "file:///etc/passwd", "gopher://example.com/", "javascript:alert(1)",
    "http:///path", "http://", "https://", "example.com/path", "", "not a url", "http://:80/",
    "http://example.com:99999/", "http://[::1/",
])
async def test_bad_urls(guarded, url):
    with pytest.raises(HttpCallFailed) as err:
        await guarded.request("GET", url, timeout=1)
    assert err.value.code == "bad_url"


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "127.0.0.1."])
async def test_non_canonical_ip_is_bad_url_when_private_is_allowed(open_client, sink, host):
    with pytest.raises(HttpCallFailed) as err:
        await open_client.request("GET", sink.url(host), timeout=1)
    assert err.value.code == "bad_url" and "127.0.0.1" in str(err.value)
    assert sink.connections == 0


async def test_bad_method_or_header_is_bad_request(open_client, sink):
    for kwargs in [{"method": "GET /x"}, {"method": ""},
                   {"method": "GET", "headers": {"X-Evil": "a\r\nInjected: 1"}},
                   {"method": "GET", "headers": {"Bad Name": "1"}}]:
        with pytest.raises(HttpCallFailed) as err:
            await open_client.request(url=sink.url(), timeout=1, **kwargs)
        assert err.value.code == "bad_request"
    assert sink.connections == 0


async def test_connection_refused(open_client):
    with pytest.raises(HttpCallFailed) as err:
        await open_client.request("GET", f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert err.value.code == "connection_failed"
    assert "could not connect to 127.0.0.1" in str(err.value)


async def test_failures_are_effect_failures_that_say_whether_to_retry(guarded, open_client, sink):
    # The engine records every EffectFailed alike: its code and message, its `retryable`.
    with pytest.raises(EffectFailed) as refused:
        await guarded.request("GET", sink.url("localhost"), timeout=2)
    assert (refused.value.code, refused.value.retryable) == ("destination_not_allowed", False)
    assert refused.value.message == str(refused.value)
    with pytest.raises(EffectFailed) as unreachable:
        await open_client.request("GET", f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert (unreachable.value.code, unreachable.value.retryable) == ("connection_failed", True)
    assert sink.connections == 0


async def test_keep_alive_connection_is_reused(open_client, target):
    await open_client.request("GET", f"{target.base}/echo", timeout=2)
    await open_client.request("GET", f"{target.base}/echo", timeout=2)
    assert target.seen[0]["peer"] == target.seen[1]["peer"]


async def test_no_cookies_are_kept_between_calls(open_client, target):
    first = await open_client.request("GET", f"{target.base}/cookie", timeout=2)
    assert "session=secret" in first.headers["set-cookie"]
    await open_client.request("GET", f"{target.base}/cookie", timeout=2)
    assert [s["cookie"] for s in target.seen] == [None, None]


async def test_proxy_environment_is_ignored(monkeypatch, target):
    dead = f"http://127.0.0.1:{free_port()}"
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with HttpClient(allow_private_networks=True) as client:
        resp = await client.request("GET", f"{target.base}/echo", timeout=2)
    assert resp.status == 200


async def test_lifecycle():
    client = HttpClient(allow_private_networks=False)
    with pytest.raises(RuntimeError):
        await client.request("GET", "http://example.com/", timeout=1)
    await client.start()
    await client.start()  # idempotent
    await client.close()
    await client.close()
    with pytest.raises(RuntimeError):
        await client.request("GET", "http://example.com/", timeout=1)
