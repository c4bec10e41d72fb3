"""Command-line options of the conversion webhook, and the views the reconciler needs.

The reconciler reads ThumbnailServices in the storage version (v1) and builds children from
the typed model (`spec.py`), which follows the v1alpha1 layout; `builder_spec` and
`builder_status` translate with the same pure conversion the webhook uses, and
`stored_status` turns a computed status back into the object's own version.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from thumbnail_operator.conversion.certmanager import CertificateSettings
from thumbnail_operator.conversion.core import (
    V1,
    V1ALPHA1,
    Extras,
    Side,
    convert_body,
    to_v1alpha1,
)
from thumbnail_operator.conversion.mapping import STATUS_MOVES
from thumbnail_operator.conversion.runtime import ConversionSettings
from thumbnail_operator.schema.v1 import WEBHOOK_NAMESPACE, WEBHOOK_PORT, WEBHOOK_SERVICE

Obj = dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("conversion webhook (ThumbnailService v1alpha1 <-> v1)")
    group.add_argument("--webhook-port", type=int, default=WEBHOOK_PORT,
                       help="HTTPS port of /convert (0 disables the webhook)")
    group.add_argument("--webhook-host", default="0.0.0.0",
                       help="address to listen on")
    group.add_argument("--webhook-namespace",
                       default=os.environ.get("POD_NAMESPACE", WEBHOOK_NAMESPACE),
                       help="namespace of the certificate Secret and webhook Service")
    group.add_argument("--webhook-service", default=WEBHOOK_SERVICE,
                       help="Service name the API server calls (for the certificate's names)")
    group.add_argument("--webhook-secret", default="thumbnail-operator-webhook-tls",
                       help="Secret holding ca.crt, tls.crt, tls.key")
    group.add_argument("--webhook-user-certificate", action="store_true",
                       help="the Secret is provided (e.g. by cert-manager): read it, never "
                       "create or renew it")
    group.add_argument("--webhook-extra-host", action="append", default=[],
                       help="additional DNS name or IP for the serving certificate "
                       "(e.g. 127.0.0.1 when the API server calls a URL); repeatable")
    group.add_argument("--webhook-cert-check-seconds", type=float, default=300.0,
                       help="how often to re-check the certificate and the CRD's caBundle")
    group.add_argument("--no-storage-migration", action="store_true",
                       help="do not re-store objects in v1 / trim storedVersions at start")


def settings_from_args(args: argparse.Namespace) -> ConversionSettings | None:
    if not args.webhook_port:
        return None
    namespace, service = args.webhook_namespace, args.webhook_service
    hosts = [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local",
             *args.webhook_extra_host]
    return ConversionSettings(
        certificates=CertificateSettings(
            namespace=namespace, secret_name=args.webhook_secret, hosts=hosts,
            managed=not args.webhook_user_certificate,
        ),
        host=args.webhook_host,
        port=args.webhook_port,
        check_seconds=args.webhook_cert_check_seconds,
        migrate=not args.no_storage_migration,
    )


def _api_order(value: Any) -> Any:
    """Maps with sorted keys, as the API server serves them (Go encodes maps sorted)."""
    if isinstance(value, dict):
        return {key: _api_order(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_api_order(item) for item in value]
    return value


def builder_spec(cr: Obj) -> Obj:
    """The `spec` of a ThumbnailService (either version) in the layout `spec.py` parses,
    exactly as a v1alpha1 read would give it: the v1 preset list becomes a map in name
    order, so the rendered THUMBNAIL_PRESETS and the config hash stay what they were before
    the upgrade (a different hash would roll every server and worker)."""
    spec = to_v1alpha1(cr).get("spec") if cr.get("apiVersion") == V1 else cr.get("spec")
    ordered: Obj = _api_order(spec or {})
    return ordered


def _status(status: Obj, source: str) -> Obj:
    side: Side = "alpha" if source == V1ALPHA1 else "v1"
    converted, _ = convert_body({"status": status}, side, Extras(), STATUS_MOVES)
    result: Obj = converted.get("status") or {}
    return result


def builder_status(cr: Obj) -> Obj:
    """The `status` of a ThumbnailService (either version) in the v1alpha1 layout."""
    status = cr.get("status") or {}
    return _status(status, V1) if cr.get("apiVersion") == V1 else dict(status)


def stored_status(status: Obj, api_version: str) -> Obj:
    """A status computed in the v1alpha1 layout, for an object of `api_version`."""
    return _status(status, V1ALPHA1) if api_version == V1 else status
