"""Command-line options of `thumbnail-operator`."""

from __future__ import annotations

from thumbnail_operator.cli import parse_args


def test_defaults_watch_everything_standalone() -> None:
    args = parse_args([])
    assert (args.metrics_port, args.liveness_port, args.resync_seconds) == (8080, 8081, 60.0)
    assert args.namespace == [] and args.peering is None and args.kubeconfig is None


def test_options_are_parsed() -> None:
    args = parse_args(["-n", "a", "-n", "b", "--peering", "p", "--priority", "7",
                       "--metrics-port", "0", "--kubeconfig", "/k"])
    assert args.namespace == ["a", "b"]
    assert (args.peering, args.priority, args.metrics_port, args.kubeconfig) == ("p", 7, 0, "/k")
