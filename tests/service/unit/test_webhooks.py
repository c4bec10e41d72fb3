"""Pure parts of completion webhooks: the SSRF guard, signatures, backoff, address pinning."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from thumbnail_service.api.app import create_app
from thumbnail_service.api.schemas import ROUTE_PATHS
from thumbnail_service.settings import Settings
from thumbnail_service.webhooks.delivery import _pinned, backoff_seconds
from thumbnail_service.webhooks.signing import signature_header, verify
from thumbnail_service.webhooks.targets import (
    CallbackRefused,
    allowed_address,
    parse_callback_url,
    resolve_checked,
)

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [("93.184.216.34", True), ("2606:2800:220:1::1", True), ("127.0.0.1", False),
     ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
     ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False),
     ("224.0.0.1", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
     ("::ffff:10.0.0.1", False), ("::ffff:93.184.216.34", True)],
)
def test_only_public_addresses_by_default(address: str, allowed: bool) -> None:
    assert allowed_address(ipaddress.ip_address(address), []) is allowed


def test_configured_networks_open_exactly_themselves() -> None:
    assert allowed_address(ipaddress.ip_address("127.0.0.1"), LOOPBACK)
    assert allowed_address(ipaddress.ip_address("::ffff:127.0.0.9"), LOOPBACK)
    assert not allowed_address(ipaddress.ip_address("::1"), LOOPBACK)
    assert not allowed_address(ipaddress.ip_address("10.0.0.1"), LOOPBACK)


def resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]

    return resolve


def test_a_name_must_resolve_only_to_allowed_addresses() -> None:
    parts = parse_callback_url("https://hooks.example.com/x")
    assert str(resolve_checked(parts, [], resolver("93.184.216.34"))) == "93.184.216.34"
    # One private answer among public ones (DNS rebinding, split horizon): refused.
    with pytest.raises(CallbackRefused, match=r"169\.254\.169\.254"):
        resolve_checked(parts, [], resolver("93.184.216.34", "169.254.169.254"))
    with pytest.raises(CallbackRefused, match="no address"):
        resolve_checked(parts, [], resolver())

    def fails(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror("Name or service not known")

    with pytest.raises(CallbackRefused, match="cannot resolve"):
        resolve_checked(parts, [], fails)


def test_delivery_connects_to_the_checked_address_and_keeps_the_name() -> None:
    v4 = _pinned(parse_callback_url("https://hooks.example.com:8443/a?b=1"),
                 ipaddress.ip_address("93.184.216.34"))
    assert v4 == "https://93.184.216.34:8443/a?b=1"
    v6 = _pinned(parse_callback_url("http://hooks.example.com/a"),
                 ipaddress.ip_address("2606:2800:220:1::1"))
    assert v6 == "http://[2606:2800:220:1::1]/a"


def test_signatures_cover_timestamp_and_body_with_every_secret() -> None:
    body = b'{"type":"job.succeeded"}'
    header = signature_header([b"new", b"old"], 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=") and header.count("v1=") == 2
    assert verify(header, b"new", body, now=1_700_000_010)
    assert verify(header, b"old", body, now=1_700_000_010)
    assert not verify(header, b"other", body, now=1_700_000_010)
    assert not verify(header, b"new", body + b"x", now=1_700_000_010)
    assert not verify(header, b"new", body, now=1_700_000_000 + 301)  # a replay, too late
    assert not verify(header.replace("t=1700000000", "t=1700000001"), b"new", body,
                      now=1_700_000_010)


def test_backoff_doubles_up_to_the_maximum() -> None:
    settings = Settings(webhook_retry_min_seconds=1, webhook_retry_max_seconds=10)
    assert [backoff_seconds(settings, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_webhook_links_are_the_apps_routes() -> None:
    app = create_app(Settings())
    for name, path in ROUTE_PATHS.items():
        params = {p: "{" + p + "}" for p in ("job_id", "name") if "{" + p + "}" in path}
        assert app.url_path_for(name, **params) == path


def test_bad_allowed_networks_are_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="CIDR"):
        Settings(webhook_allowed_networks="10.0.0.0/8,not-a-network")
