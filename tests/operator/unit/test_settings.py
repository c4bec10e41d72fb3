"""One settings object per operator process: flags over environment over defaults."""

from __future__ import annotations

import pytest

from thumbnail_operator.settings import OperatorSettings, argument_parser, from_command_line


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)


def test_defaults_watch_everything_standalone_and_serve_the_webhook() -> None:
    settings = from_command_line([])
    assert (settings.metrics_port, settings.liveness_port, settings.resync_seconds) == (
        8080, 8081, 60.0)
    assert settings.namespace == [] and settings.peering is None and settings.kubeconfig is None
    assert settings.webhook_enabled and settings.webhook_port == 9443
    assert settings.storage_migration and settings.webhook_cert_check_seconds == 300.0
    assert settings == OperatorSettings()  # the CLI adds no defaults of its own


def test_flags_are_parsed() -> None:
    settings = from_command_line(["-n", "a", "-n", "b", "--peering", "p", "--priority", "7",
                                  "--metrics-port", "0", "--kubeconfig", "/k"])
    assert settings.namespace == ["a", "b"]
    assert (settings.peering, settings.priority, settings.metrics_port, settings.kubeconfig) == (
        "p", 7, 0, "/k")


def test_certificate_names_follow_the_webhook_service() -> None:
    certificates = from_command_line(["--webhook-namespace", "ops"]).certificates()
    assert certificates.namespace == "ops"
    assert certificates.hosts == [
        "thumbnail-operator-webhook.ops.svc", "thumbnail-operator-webhook.ops.svc.cluster.local"]
    assert certificates.managed


def test_options_for_a_local_control_plane_and_user_certificates() -> None:
    settings = from_command_line([
        "--webhook-port", "10443", "--webhook-extra-host", "127.0.0.1",
        "--webhook-user-certificate", "--no-storage-migration"])
    assert settings.webhook_port == 10443 and not settings.storage_migration
    assert "127.0.0.1" in settings.certificates().hosts
    assert not settings.certificates().managed
    assert not from_command_line(["--webhook-port", "0"]).webhook_enabled


def test_environment_under_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THUMBNAIL_OPERATOR_WORKERS", "3")
    monkeypatch.setenv("THUMBNAIL_OPERATOR_RESYNC_SECONDS", "5")
    monkeypatch.setenv("POD_NAMESPACE", "from-downward-api")
    settings = from_command_line(["--resync-seconds", "9"])
    assert (settings.workers, settings.resync_seconds) == (3, 9.0)
    assert settings.webhook_namespace == "from-downward-api"


@pytest.mark.parametrize("argv", [["--log-level", "LOUD"], ["--workers", "many"], ["--bogus"]])
def test_bad_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        from_command_line(argv)
    assert "error" in capsys.readouterr().err


def test_every_setting_has_one_documented_flag() -> None:
    parser = argument_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    for name, field in OperatorSettings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in flags or f"--no-{name.replace('_', '-')}" in flags, name
        assert field.description, f"{name} has no description (its --help text)"


@pytest.mark.parametrize("name", ["team-*", "Team", "-x", "a" * 64, ""])
def test_watched_namespaces_are_exact_names(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """kopf would take a pattern as a glob, which needs the right to list namespaces: without
    it (a namespaced install) the operator would silently watch nothing."""
    with pytest.raises(SystemExit):
        from_command_line(["-n", "ok", "-n", name])
    assert "--namespace" in capsys.readouterr().err
    assert from_command_line(["-n", "team-a", "-n", "b" * 63]).namespace == ["team-a", "b" * 63]
