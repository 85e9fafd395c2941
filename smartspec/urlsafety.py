"""Where the server may send requests: a check for upstream base URLs against SSRF.

Provider base URLs come from settings (`*_BASE_URL`), validated when settings load, so a
misconfigured deployment refuses to start instead of calling out to a cloud metadata service
or an internal host. Link-local and metadata addresses are always refused; private, loopback
and other non-public addresses only when `ALLOW_PRIVATE_BASE_URLS` is true (its default follows
DEBUG; a self-hosted Ollama on the same network sets it in production).

Names are resolved and every address they give is checked, twice: when settings load (a base URL
set in the environment; a name that does not resolve then is let through, so start-up does not
depend on DNS) and each time the transport connects (`GuardedResolver`, aiohttp's resolver hook),
so a name that changes its answer later is caught before a byte, or a provider key, is sent.
IPv4 addresses embedded in IPv6 are decoded and checked as IPv4: IPv4-mapped (`::ffff:0:0/96`),
IPv4-translated (`::ffff:0:0:0/96`), IPv4-compatible (`::/96`), NAT64 (`64:ff9b::/96`,
`64:ff9b:1::/48`), 6to4 (`2002::/16`) and Teredo (`2001::/32`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver

logger = logging.getLogger(__name__)

# Cloud metadata endpoints reachable by name (AWS, GCP, Azure, Alibaba, Oracle use the IPs below).
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})
METADATA_IPS = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)
LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# The resolver names go through: socket.getaddrinfo's signature (tests put a stub here).
getaddrinfo: Callable[..., list[Any]] = socket.getaddrinfo


class UnsafeURL(ValueError):
    """A URL the server must not call."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (routed to it by a translator, tunnel or stack)."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in IPV4_TRANSLATED or any(address in net for net in NAT64):
        return low
    # ::/96 minus :: and ::1 (unspecified and loopback are IPv6's own, checked as such).
    if address in IPV4_COMPATIBLE and int(address) > 1:
        return low
    return None


def _unwrapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address):
        return _embedded_ipv4(address) or address
    return address


def _address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # Shorthand IPv4 forms ("2130706433", "0x7f.1", "127.1") that resolvers accept as addresses.
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    return _unwrapped(address)


def address_refusal(address: Address, *, allow_private: bool) -> str | None:
    """Why the server may not connect to `address` (embedded IPv4 decoded), or None if it may."""
    address = _unwrapped(address)
    if address in METADATA_IPS or address.is_link_local:
        return "link-local and metadata addresses are never called."
    if address.is_multicast or address.is_unspecified:
        return "not a unicast host address."
    if not allow_private and not address.is_global:
        return (
            "private and loopback addresses are refused while ALLOW_PRIVATE_BASE_URLS "
            "is off (its default follows DEBUG)"
        )
    return None


def host_addresses(host: str, port: int | None = None) -> list[Address]:
    """Every address `host` resolves to (raises OSError when it does not resolve)."""
    found = []
    for _family, _type, _proto, _canon, sockaddr in getaddrinfo(host, port, type=socket.SOCK_STREAM):
        found.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    return found


def host_resolve_check(host: str, port: int | None, *, allow_private: bool) -> list[Address]:
    """Resolve `host` and refuse it (`UnsafeURL`) if any of its addresses may not be called."""
    addresses = host_addresses(host, port)
    for address in addresses:
        reason = address_refusal(address, allow_private=allow_private)
        if reason:
            raise UnsafeURL(f"{host!r} resolves to {address}: {reason}")
    return addresses


def base_url_validate(url: str, *, allow_private: bool, resolve: bool = False) -> str:
    """Return `url` if the server may call it, else raise `UnsafeURL` saying why. With `resolve`, a
    name's addresses are checked too (a name that does not resolve passes: see the module doc)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(f"{url!r}: the scheme must be http or https.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeURL(f"{url!r}: credentials do not belong in a base URL.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeURL(f"{url!r}: no host.")
    if host in METADATA_HOSTS:
        raise UnsafeURL(f"{url!r}: cloud metadata services are never called.")
    address = _address(host)
    if address is not None:
        reason = address_refusal(address, allow_private=allow_private)
        if reason:
            raise UnsafeURL(f"{url!r}: {reason}")
        return url
    if not allow_private and (host in LOCAL_HOSTS or host.endswith((".localhost", ".internal"))):
        raise UnsafeURL(
            f"{url!r}: local hosts are refused while ALLOW_PRIVATE_BASE_URLS is off "
            "(its default follows DEBUG)"
        )
    if resolve:
        try:
            host_resolve_check(host, parts.port, allow_private=allow_private)
        except UnsafeURL as exc:
            raise UnsafeURL(f"{url!r}: {exc}") from None
        except (OSError, UnicodeError):
            pass  # not resolvable now: the connect-time check decides when it is
    return url


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver hook: every address a name resolves to is checked before each connect.

    A refused name raises OSError, which aiohttp reports as a connection error (the attempt fails as
    `UpstreamUnavailable`, and the provider key is never sent)."""

    def __init__(self, allow_private: Callable[[], bool]):
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        allow = self._allow_private()
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.run_in_executor(
                None, lambda: getaddrinfo(host, port, family, socket.SOCK_STREAM)
            )
        except socket.gaierror as exc:
            raise OSError(exc.errno, f"{host!r} does not resolve") from None
        results = []
        for fam, _type, proto, _canon, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            reason = address_refusal(address, allow_private=allow)
            if reason:
                logger.warning("refused to connect: %r resolves to %s (%s)", host, address, reason)
                raise OSError(f"refused to connect: {host!r} resolves to {address}: {reason}")
            results.append(
                {
                    "hostname": host,
                    "host": str(sockaddr[0]),
                    "port": sockaddr[1],
                    "family": fam,
                    "proto": proto,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        if not results:
            raise OSError(f"{host!r} does not resolve")
        return results

    async def close(self) -> None:
        return None
