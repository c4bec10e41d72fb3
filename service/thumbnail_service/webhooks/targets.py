"""Where a completion webhook may go: the SSRF guard.

A callback URL is http(s) with a host and nothing hidden in it (no user info, at most
MAX_URL_LENGTH characters). Its host must resolve only to public addresses: loopback,
private, link-local (cloud metadata), shared, reserved and multicast ones are refused unless
a configured network (THUMBNAIL_WEBHOOK_ALLOWED_NETWORKS) contains them. The check runs at
submission for an address written in the URL, and at every delivery on what the name
resolves to then; the delivery connects to the address it checked (no second lookup that a
rebinding DNS server could answer differently).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list[tuple[Any, ...]]]


class CallbackRefused(ValueError):
    """Not a URL we deliver to; the message says why."""


def parse_callback_url(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefused(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number in 0..65535)
    except ValueError as exc:
        raise CallbackRefused(f"callback_url is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("callback_url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry user info (user:password@)")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise CallbackRefused("callback_url must not contain spaces or control characters")
    return parts


def allowed_address(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allowed):
        return True
    return address.is_global and not address.is_multicast


def check_written_address(parts: SplitResult, allowed: Sequence[IPNetwork]) -> None:
    """At submission: an address written in the URL must be one we may deliver to."""
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return  # a name: checked on what it resolves to, at every delivery
    if not allowed_address(address, allowed):
        raise CallbackRefused(
            f"callback_url points at {address}, a non-public address; the service delivers "
            "only to public addresses unless THUMBNAIL_WEBHOOK_ALLOWED_NETWORKS allows it"
        )


def resolve_checked(
    parts: SplitResult, allowed: Sequence[IPNetwork], resolver: Resolver = socket.getaddrinfo
) -> IPAddress:
    """The address a delivery connects to: the first the host resolves to, after checking
    that every one of them is allowed (blocking: run it in a thread)."""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = resolver(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CallbackRefused(f"cannot resolve {parts.hostname}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses:
        raise CallbackRefused(f"{parts.hostname} resolves to no address")
    refused = [a for a in addresses if not allowed_address(a, allowed)]
    if refused:
        raise CallbackRefused(
            f"{parts.hostname} resolves to {refused[0]}, a non-public address (not in "
            "THUMBNAIL_WEBHOOK_ALLOWED_NETWORKS)"
        )
    return addresses[0]
