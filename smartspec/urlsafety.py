"""Where the server may send requests: a check for upstream base URLs against SSRF.

Provider base URLs come from settings (`*_BASE_URL`), validated when settings load, so a
misconfigured deployment refuses to start instead of calling out to a cloud metadata service
or an internal host. Link-local and metadata addresses are always refused; private, loopback
and other non-public addresses only when `ALLOW_PRIVATE_BASE_URLS` is true (its default follows
DEBUG; a self-hosted Ollama on the same network sets it in production).

Literal addresses and well-known names are checked here; names are not resolved (start-up must
not depend on DNS), so the egress firewall remains the place that pins down what names resolve to.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

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


class UnsafeURL(ValueError):
    """A URL the server must not call."""


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # Shorthand IPv4 forms ("2130706433", "0x7f.1", "127.1") that resolvers accept as addresses.
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def base_url_validate(url: str, *, allow_private: bool) -> str:
    """Return `url` if the server may call it, else raise `UnsafeURL` saying why."""
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
        if address in METADATA_IPS or address.is_link_local:
            raise UnsafeURL(f"{url!r}: link-local and metadata addresses are never called.")
        if address.is_multicast or address.is_unspecified:
            raise UnsafeURL(f"{url!r}: not a unicast host address.")
        if not allow_private and not address.is_global:
            raise UnsafeURL(
                f"{url!r}: private and loopback addresses are refused while ALLOW_PRIVATE_BASE_URLS "
                "is off (its default follows DEBUG)"
            )
    elif not allow_private and (host in LOCAL_HOSTS or host.endswith((".localhost", ".internal"))):
        raise UnsafeURL(
            f"{url!r}: local hosts are refused while ALLOW_PRIVATE_BASE_URLS is off "
            "(its default follows DEBUG)"
        )
    return url
