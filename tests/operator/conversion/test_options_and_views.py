"""CLI options of the webhook and the v1 -> builder views the reconciler uses."""

from __future__ import annotations

import argparse

from thumbnail_operator.conversion.options import (
    add_arguments,
    builder_spec,
    builder_status,
    settings_from_args,
    stored_status,
)
from thumbnail_operator.spec import parse_spec

from .test_conversion_unit import full_alpha, full_v1


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_serve_the_webhook_with_service_names() -> None:
    settings = settings_from_args(parse("--webhook-namespace", "ops"))
    assert settings is not None
    assert settings.port == 9443 and settings.migrate
    assert settings.certificates.namespace == "ops"
    assert settings.certificates.hosts == [
        "thumbnail-operator-webhook.ops.svc", "thumbnail-operator-webhook.ops.svc.cluster.local"]
    assert settings.certificates.managed


def test_options_for_a_local_control_plane_and_user_certificates() -> None:
    settings = settings_from_args(parse(
        "--webhook-port", "10443", "--webhook-extra-host", "127.0.0.1",
        "--webhook-user-certificate", "--no-storage-migration"))
    assert settings is not None
    assert settings.port == 10443 and not settings.migrate
    assert "127.0.0.1" in settings.certificates.hosts
    assert not settings.certificates.managed
    assert settings_from_args(parse("--webhook-port", "0")) is None


def test_builders_see_the_same_spec_whichever_version_was_read() -> None:
    assert builder_spec(full_v1()) == full_alpha()["spec"]
    assert builder_spec(full_alpha()) == full_alpha()["spec"]
    assert parse_spec(builder_spec(full_v1())) == parse_spec(full_alpha()["spec"])


def test_status_views_translate_both_ways() -> None:
    assert builder_status(full_v1()) == full_alpha()["status"]
    assert builder_status(full_alpha()) == full_alpha()["status"]
    assert stored_status(full_alpha()["status"], full_v1()["apiVersion"]) == full_v1()["status"]
    assert stored_status(full_alpha()["status"], full_alpha()["apiVersion"]) == (
        full_alpha()["status"])


def test_builder_spec_orders_presets_as_a_v1alpha1_read_does() -> None:
    beta = full_v1()  # presets listed thumb (small), hero (large): not name order
    spec = builder_spec(beta)
    assert list(spec["thumbnails"]["presets"]) == ["hero", "thumb"]
    assert list(builder_spec(full_alpha())["thumbnails"]["presets"]) == ["hero", "thumb"]
