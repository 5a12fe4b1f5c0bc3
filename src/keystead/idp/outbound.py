"""Every fetch Keystead makes on an account's behalf (the identity provider's discovery
document and key set), under one policy.

An account admin chooses the discovery URL, and the document it returns chooses the key
set's URL, so without a policy an admin could make the server fetch from anywhere: its own
loopback, the cloud's metadata service, the office network. Here:

* https only (plain http only on loopback, and only where the operator allows private
  addresses, for a test or air-gapped identity provider);
* the host is resolved once, and the fetch refused if any of its addresses is loopback,
  private, link-local, multicast, reserved or unspecified (IPv4 and IPv6, IPv4-mapped forms
  included), unless the operator allows private addresses; the connection then goes to the
  address that was checked (a second resolution could answer differently);
* no redirects; a size cap; one deadline for the whole fetch (resolution, connection, TLS,
  headers and body), not per read, so a server trickling a byte at a time is cut off;
* failures say what was wrong (refused address, not reachable, too large, too slow) and
  never what the other side answered.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpcore
import httpx

FailureKind = Literal["refused", "unreachable", "timeout", "too_large", "redirect"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[IPAddress]]


class FetchFailed(Exception):
    """The fetch was refused or did not complete; ``message`` says why, without content."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes


Fetch = Callable[[str], Fetched]


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    max_bytes: int = 1024 * 1024
    deadline_seconds: float = 5.0


def _resolve(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keystead-resolve")


# Never fetched from unless private addresses are allowed, whatever this Python's
# ``is_global`` says (its tables changed across releases): IPv6 ranges that carry or reach
# an IPv4 address (IPv4-compatible, SIIT, NAT64, 6to4, Teredo), site-local and
# unique-local, documentation and discard-only ranges, and IPv4's special-purpose blocks.
_NEVER_PUBLIC = tuple(
    ipaddress.ip_network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0:0/96",  # SIIT, IPv4-translated
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local use
        "100::/64",  # discard-only
        "2001::/32",  # Teredo
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated)
        "fe80::/10",  # link-local
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relays
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
    )
)


def address_allowed(address: IPAddress, *, allow_private: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_multicast or address.is_unspecified:
        return False
    if allow_private:
        return True
    if any(address in net for net in _NEVER_PUBLIC if net.version == address.version):
        return False
    return address.is_global


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the fetch's deadline passed")
        return left

    def clamp(self, timeout: float | None) -> float:
        left = self.remaining()
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the fetch's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self.inner, self.deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.deadline.clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.deadline.clamp(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        upgraded = self.inner.start_tls(ssl_context, server_hostname, self.deadline.clamp(timeout))
        return _Stream(upgraded, self.deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self.inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the one address that was checked, whatever name the URL holds (TLS
    still verifies the certificate against that name). Its pool has no unix socket and
    no retries, so httpcore never asks it for a unix connection or a sleep."""

    def __init__(self, host: str, address: IPAddress, deadline: _Deadline) -> None:
        self.host, self.address, self.deadline = host, address, deadline
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if host.strip("[]").lower() != self.host:
            raise httpcore.ConnectError("a connection to another host than the one checked")
        stream = self.inner.connect_tcp(
            str(self.address), port, self.deadline.clamp(timeout), local_address, socket_options
        )
        return _Stream(stream, self.deadline)


class Fetcher:
    """``Fetch`` under an :class:`OutboundPolicy` (callable: ``fetcher(url)``)."""

    def __init__(self, policy: OutboundPolicy, *, resolve: Resolve = _resolve) -> None:
        self.policy = policy
        self.resolve = resolve
        self.ssl_context = httpx.create_ssl_context()

    def __call__(self, url: str) -> Fetched:
        deadline = _Deadline(self.policy.deadline_seconds)
        host, port = self._target(url)
        address = self._checked_address(host, port, deadline)
        pool = httpcore.ConnectionPool(
            ssl_context=self.ssl_context,
            network_backend=_PinnedBackend(host, address, deadline),
            max_connections=1,
            retries=0,
        )
        try:
            return self._get(pool, url, deadline)
        except httpcore.TimeoutException as exc:
            raise FetchFailed(
                "timeout", f"did not answer within {self.policy.deadline_seconds:g} s"
            ) from exc
        except (httpcore.ConnectError, httpcore.NetworkError, ssl.SSLError, OSError) as exc:
            raise FetchFailed("unreachable", "the connection failed") from exc
        except httpcore.ProtocolError as exc:
            raise FetchFailed("unreachable", "the answer is not HTTP") from exc
        finally:
            pool.close()

    def _target(self, url: str) -> tuple[str, int]:
        try:
            parts = urlsplit(url)
            host, port = (parts.hostname or "").lower(), parts.port
        except ValueError:
            raise FetchFailed("refused", "the URL cannot be parsed") from None
        if not host:
            raise FetchFailed("refused", "the URL names no host")
        if parts.scheme == "https":
            return host, port or 443
        if parts.scheme == "http" and self.policy.allow_private and is_loopback_host(host):
            return host, port or 80
        raise FetchFailed("refused", "only https URLs are fetched")

    def _checked_address(self, host: str, port: int, deadline: _Deadline) -> IPAddress:
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:  # a name, resolved once within the deadline
            addresses = self._resolved(host, port, deadline)
        if not addresses:
            raise FetchFailed("unreachable", f"{host} does not resolve")
        for address in addresses:
            if not address_allowed(address, allow_private=self.policy.allow_private):
                raise FetchFailed(
                    "refused",
                    f"{host} resolves to an address Keystead does not fetch from (loopback, "
                    "private, link-local or reserved); an operator can allow private "
                    "addresses with KEYSTEAD_IDP_ALLOW_PRIVATE_ADDRESSES",
                )
        return addresses[0]

    def _resolved(self, host: str, port: int, deadline: _Deadline) -> list[IPAddress]:
        try:
            return _RESOLVER.submit(self.resolve, host, port).result(timeout=deadline.remaining())
        except (FutureTimeout, httpcore.ReadTimeout):
            raise FetchFailed("timeout", f"resolving {host} took too long") from None
        except (OSError, ValueError, UnicodeError):
            raise FetchFailed("unreachable", f"{host} does not resolve") from None

    def _get(self, pool: httpcore.ConnectionPool, url: str, deadline: _Deadline) -> Fetched:
        timeout = deadline.remaining()
        with pool.stream(
            "GET",
            url,
            headers=[(b"Accept", b"application/json"), (b"User-Agent", b"Keystead")],
            extensions={
                "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
            },
        ) as response:
            if 300 <= response.status < 400:
                raise FetchFailed("redirect", f"it answered a redirect ({response.status}), "
                                  "which Keystead does not follow")  # fmt: skip
            limit = self.policy.max_bytes
            declared = {k.lower(): v for k, v in response.headers}.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise FetchFailed("too_large", f"it is larger than {limit} bytes")
            body = bytearray()
            for chunk in response.iter_stream():
                body += chunk
                if len(body) > limit:
                    raise FetchFailed("too_large", f"it is larger than {limit} bytes")
                deadline.remaining()
            return Fetched(response.status, bytes(body))


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a name or a literal address, IPv6 bracketed or not) is this machine."""
    if not host:
        return False
    try:
        return host.lower() == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def via_client(client: httpx.Client, *, max_bytes: int = 1024 * 1024) -> Fetch:
    """A ``Fetch`` over a given httpx client, with no address policy: for tests that script
    a provider with ``httpx.MockTransport``."""

    def fetch(url: str) -> Fetched:
        try:
            with client.stream("GET", url, follow_redirects=False) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchFailed("too_large", f"it is larger than {max_bytes} bytes")
                return Fetched(response.status_code, bytes(body))
        except httpx.TimeoutException as exc:
            raise FetchFailed("timeout", "did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise FetchFailed("unreachable", "the connection failed") from exc

    return fetch
