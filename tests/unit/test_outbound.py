"""The outbound policy for fetches made on an account's behalf, against real sockets on
loopback: refused addresses, one resolution, no redirects, a size cap, one deadline."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from keystead.idp.outbound import (
    Fetcher,
    FetchFailed,
    IPAddress,
    OutboundPolicy,
    address_allowed,
)

STRICT = OutboundPolicy(allow_private=False, deadline_seconds=2)
LENIENT = OutboundPolicy(allow_private=True, deadline_seconds=2)


@contextmanager
def server(answer: bytes | None = None, *, trickle: bytes | None = None, pause: float = 0.0,
           host: str = "127.0.0.1") -> Iterator[tuple[int, list[bytes]]]:  # fmt: skip
    """A one-connection-at-a-time HTTP server: ``answer`` sent at once, or ``trickle`` one
    byte every ``pause`` seconds. Yields its port and the requests it read."""
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen(8)
    listener.settimeout(0.2)
    requests: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    requests.append(conn.recv(65536))
                    if answer is not None:
                        conn.sendall(answer)
                    for byte in trickle or b"":
                        if stop.is_set():
                            break
                        conn.sendall(bytes([byte]))
                        time.sleep(pause)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], requests
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def ok(body: bytes = b'{"ok": true}') -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        len(body),
        body,
    )


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1", "::1", "::", "fc00::1",
        "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        # IPv6 forms that carry or reach an IPv4 address (NAT64, 6to4, Teredo, compatible,
        # SIIT), site-local, documentation: refused whatever this Python's tables say.
        "64:ff9b::7f00:1", "64:ff9b:1::a00:1", "2002:7f00:1::", "2001:0:4136:e378::1",
        "::7f00:1", "::127.0.0.1", "::ffff:0:7f00:1", "fec0::1", "2001:db8::1", "100::1",
        "192.0.0.8", "198.18.0.1", "203.0.113.9",
    ],
)  # fmt: skip
def test_private_and_special_addresses_are_not_fetched(address: str) -> None:
    ip: IPAddress = ipaddress.ip_address(address)
    assert not address_allowed(ip, allow_private=False)
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(FetchFailed) as refused:
        Fetcher(STRICT)(f"https://{host}/.well-known/openid-configuration")
    assert refused.value.kind == "refused"


def test_public_addresses_are_allowed_and_multicast_never() -> None:
    for address in ("20.190.128.1", "2603:1030::1", "8.8.8.8"):
        assert address_allowed(ipaddress.ip_address(address), allow_private=False)
    assert not address_allowed(ipaddress.ip_address("224.0.0.1"), allow_private=True)
    assert address_allowed(ipaddress.ip_address("10.0.0.1"), allow_private=True)


def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    """One private address among public ones is enough: the fetch could be steered there."""

    def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("20.190.128.1"), ipaddress.ip_address("10.0.0.7")]

    with pytest.raises(FetchFailed) as refused:
        Fetcher(STRICT, resolve=resolve)("https://login.example/x")
    assert refused.value.kind == "refused"
    assert "KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES" in refused.value.message


def test_plain_http_is_refused_unless_private_addresses_are_allowed_on_loopback() -> None:
    with server(ok()) as (port, requests):
        with pytest.raises(FetchFailed) as refused:
            Fetcher(STRICT)(f"http://127.0.0.1:{port}/x")
        assert refused.value.kind == "refused"
        assert requests == []
        fetched = Fetcher(LENIENT)(f"http://127.0.0.1:{port}/x")
    assert (fetched.status, fetched.body) == (200, b'{"ok": true}')
    with pytest.raises(FetchFailed) as refused:
        Fetcher(LENIENT)("http://login.example/x")  # http off loopback: never
    assert refused.value.kind == "refused"


def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """The name is resolved once, by the policy; the connection uses that answer (here
    127.0.0.2, where only this server listens; the system would say 127.0.0.1)."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address("127.0.0.2")]

    with server(ok(), host="127.0.0.2") as (port, requests):
        fetched = Fetcher(LENIENT, resolve=resolve)(f"http://localhost:{port}/keys")
    assert fetched.status == 200
    assert calls == ["localhost"]
    assert b"Host: localhost" in requests[0]


def test_redirects_are_not_followed() -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"
    with server(moved) as (port, _), pytest.raises(FetchFailed) as refused:
        Fetcher(LENIENT)(f"http://127.0.0.1:{port}/x")
    assert refused.value.kind == "redirect"


def test_a_large_answer_is_cut_at_the_cap_declared_or_not() -> None:
    small = OutboundPolicy(allow_private=True, max_bytes=1000, deadline_seconds=2)
    with server(ok(b"x" * 5000)) as (port, _), pytest.raises(FetchFailed) as declared:
        Fetcher(small)(f"http://127.0.0.1:{port}/x")
    assert declared.value.kind == "too_large"
    streamed = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000
    with server(streamed) as (port, _), pytest.raises(FetchFailed) as undeclared:
        Fetcher(small)(f"http://127.0.0.1:{port}/x")
    assert undeclared.value.kind == "too_large"


@pytest.mark.parametrize(
    "trickle",
    [
        b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 200,  # headers that never end
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"keys": [' + b" " * 200,
    ],
    ids=["trickled-headers", "trickled-body"],
)
def test_one_deadline_bounds_the_whole_fetch_however_slowly_bytes_arrive(trickle: bytes) -> None:
    """A byte every 0.1 s never trips a per-read timeout; the fetch still ends at its
    deadline."""
    policy = OutboundPolicy(allow_private=True, deadline_seconds=1.0)
    with server(trickle=trickle, pause=0.1) as (port, _):
        started = time.monotonic()
        with pytest.raises(FetchFailed) as slow:
            Fetcher(policy)(f"http://127.0.0.1:{port}/keys")
        elapsed = time.monotonic() - started
    assert slow.value.kind == "timeout"
    assert elapsed < 1.6


def test_failures_say_what_went_wrong_without_what_was_answered() -> None:
    with (
        server(b"INTERNAL-SECRET=hunter2\r\n\r\n") as (port, _),
        pytest.raises(FetchFailed) as garbled,
    ):
        Fetcher(LENIENT)(f"http://127.0.0.1:{port}/x")
    assert "hunter2" not in garbled.value.message
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(FetchFailed) as refused:
        Fetcher(LENIENT)(f"http://127.0.0.1:{port}/x")
    assert refused.value.kind == "unreachable"
    assert "Errno" not in refused.value.message
