"""Every setting of one `thumbnail-operator` process, with its default written once.

Values come from (highest first) command-line flags, `THUMBNAIL_OPERATOR_*` environment
variables, then the defaults below. The flags are generated from the fields: `--<field>` in
kebab case, a bool that defaults to True as `--no-<field>`, a list as a repeatable flag, and
the field description as the help text, so the CLI, the environment and the code cannot
disagree about a name or a default.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from thumbnail_operator import constants as c
from thumbnail_operator.webhook.certmanager import CertificateSettings

ENV_PREFIX = "THUMBNAIL_OPERATOR_"
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class OperatorSettings(BaseSettings):
    # Each field's docstring is its description: the `--help` text of its flag.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", use_attribute_docstrings=True
    )

    # -- the cluster and the controller -------------------------------------------------
    kubeconfig: str | None = None
    """kubeconfig file (default: in-cluster, then $KUBECONFIG or ~/.kube/config)"""
    namespace: list[str] = Field(default_factory=list, json_schema_extra={"short": "-n"})
    """watch only this namespace (repeatable; default: all namespaces); needs only a Role
    there (manifests/namespaced/)"""
    resync_seconds: float = 60.0
    """revisit every resource at least this often"""
    processing_probe_seconds: float = 30.0
    """ask each ready API server this often how many worker processes are alive and since
    when the oldest job waits, for status.processing (0 disables)"""
    autoscaling_probe_seconds: float = 5.0
    """ask the API server of a ThumbnailService with workers.autoscaling this often instead:
    how soon its workers follow the pending work (from zero: the first submission)"""
    workers: int = 16
    """reconcile passes running at once, each for a different resource (they mostly wait for
    the API server)"""
    peering: str | None = None
    """coordinate replicas through this ClusterKopfPeering (needs operator/kopf-peering.yaml);
    without it the operator runs standalone"""
    priority: int | None = None
    """peering priority (default: random, so exactly one replica leads)"""

    # -- what the process serves ----------------------------------------------------------
    metrics_port: int = 8080
    """Prometheus metrics port (0 disables)"""
    liveness_port: int = 8081
    """liveness probe port, served at /healthz (0 disables)"""
    log_level: LogLevel = "INFO"
    """log level"""

    # -- the conversion webhook (ThumbnailService v1alpha1 <-> v1) -------------------------
    webhook_port: int = c.WEBHOOK_PORT
    """HTTPS port of /convert (0 disables the webhook)"""
    webhook_host: str = "0.0.0.0"
    """address the webhook listens on"""
    webhook_namespace: str = Field(
        default=c.WEBHOOK_NAMESPACE,
        validation_alias=AliasChoices(
            "webhook_namespace", f"{ENV_PREFIX}WEBHOOK_NAMESPACE", "POD_NAMESPACE"
        ),
    )
    """namespace of the certificate Secret and webhook Service (in a pod: $POD_NAMESPACE)"""
    webhook_service: str = c.WEBHOOK_SERVICE
    """Service name the API server calls (for the certificate's names)"""
    webhook_secret: str = "thumbnail-operator-webhook-tls"
    """Secret holding ca.crt, tls.crt, tls.key"""
    webhook_user_certificate: bool = False
    """the Secret is provided (e.g. by cert-manager): read it, never create or renew it"""
    webhook_extra_host: list[str] = Field(default_factory=list)
    """additional DNS name or IP for the serving certificate (e.g. 127.0.0.1 when the API
    server calls a URL); repeatable"""
    webhook_cert_check_seconds: float = 300.0
    """how often to re-check the certificate and the CRD's caBundle"""
    storage_migration: bool = True
    """re-store objects in v1 and trim storedVersions at start"""
    migration_retry_seconds: float = 60.0
    """wait between attempts of a failed storage-version migration"""

    @field_validator("namespace")
    @classmethod
    def _exact_namespaces(cls, names: list[str]) -> list[str]:
        # kopf would take a pattern such as "team-*" as a glob, which needs the right to list
        # namespaces; without it (a namespaced install) it would silently watch nothing.
        bad = [n for n in names if not NAMESPACE_NAME.fullmatch(n)]
        if bad:
            raise ValueError(f"not a namespace name: {', '.join(map(repr, bad))} (exact names "
                             "only, no patterns)")
        return names

    @property
    def webhook_enabled(self) -> bool:
        return self.webhook_port != 0

    def certificates(self) -> CertificateSettings:
        namespace, service = self.webhook_namespace, self.webhook_service
        return CertificateSettings(
            namespace=namespace,
            secret_name=self.webhook_secret,
            hosts=[f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local",
                   *self.webhook_extra_host],
            managed=not self.webhook_user_certificate,
        )


# -- the command line, generated from the fields -------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_flag(parser: argparse.ArgumentParser, name: str, field: Any) -> None:
    annotation = field.annotation
    help_text = " ".join((field.description or "").split())
    extra = field.json_schema_extra or {}
    names = [extra["short"], _flag(name)] if "short" in extra else [_flag(name)]
    default = field.get_default(call_default_factory=True)
    if default not in (None, [], False, True):
        help_text = f"{help_text} (default: {default})"
    common: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
    if annotation is bool:
        if field.default is True:
            parser.add_argument("--no-" + name.replace("_", "-"), action="store_false", **common)
        else:
            parser.add_argument(*names, action="store_true", **common)
    elif get_origin(annotation) is list:
        parser.add_argument(*names, action="append", **common)
    elif get_origin(annotation) is Literal:
        parser.add_argument(*names, choices=list(get_args(annotation)), **common)
    else:
        scalar = next((t for t in get_args(annotation) if t is not type(None)), annotation)
        parser.add_argument(*names, type=scalar, **common)


def argument_parser(description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thumbnail-operator", description=description,
        epilog=f"Every flag can also be set as {ENV_PREFIX}<FLAG> in the environment.",
    )
    for name, field in OperatorSettings.model_fields.items():
        _add_flag(parser, name, field)
    return parser


def from_command_line(
    argv: Sequence[str] | None = None, description: str | None = None
) -> OperatorSettings:
    """Flags given on the command line, over the environment, over the defaults."""
    parser = argument_parser(description)
    given = vars(parser.parse_args(argv))
    try:
        return OperatorSettings(**given)
    except ValidationError as err:  # one usage line, as for argparse's own errors
        parser.error("; ".join(
            f"{_flag(str(e['loc'][0])) if e['loc'] else 'settings'}: {e['msg']}"
            for e in err.errors()))
