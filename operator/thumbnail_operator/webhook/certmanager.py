"""Keep the webhook's certificates in a Secret and the CRD's `caBundle` in sync with them.

Two sources, chosen by configuration:
- managed (default): the operator creates the Secret on first start and renews it before it
  expires (see certs.rotation_reason); several replicas share it through optimistic
  concurrency (create-or-read, update with resourceVersion), so they serve the same cert;
- user-provided (`managed=False`, e.g. cert-manager): the operator only reads `ca.crt`,
  `tls.crt`, `tls.key` from the Secret and publishes `ca.crt`; renewal is the provider's job.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thumbnail_operator import constants as c
from thumbnail_operator.kube import SECRET, ApiError, KubeClient
from thumbnail_operator.webhook import certs
from thumbnail_operator.webhook.certs import Bundle, CertificateError

log = logging.getLogger(__name__)

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD_NAME = f"{c.PLURAL}.{c.GROUP}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CertificateSettings:
    """What the manager needs; built by `OperatorSettings.certificates()` (defaults there)."""

    namespace: str
    secret_name: str
    hosts: list[str]
    managed: bool
    crd_name: str = CRD_NAME
    ca_validity: dt.timedelta = certs.CA_VALIDITY
    serving_validity: dt.timedelta = certs.SERVING_VALIDITY


def _decode(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def _encode(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def ca_bundle_of(crd: dict[str, Any]) -> str | None:
    webhook = ((crd.get("spec") or {}).get("conversion") or {}).get("webhook") or {}
    value = (webhook.get("clientConfig") or {}).get("caBundle")
    return str(value) if value else None


def uses_webhook(crd: dict[str, Any]) -> bool:
    return ((crd.get("spec") or {}).get("conversion") or {}).get("strategy") == "Webhook"


class CertificateManager:
    def __init__(
        self, kube: KubeClient, settings: CertificateSettings,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock

    # -- the Secret ------------------------------------------------------------------------

    def _secret(self, bundle: Bundle, resource_version: str | None = None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.settings.secret_name,
            "namespace": self.settings.namespace,
            "labels": {c.LABEL_MANAGED_BY: c.FIELD_MANAGER, c.LABEL_PART_OF: c.PART_OF,
                       c.LABEL_COMPONENT: "conversion-webhook"},
            "annotations": {
                f"{c.GROUP}/serving-not-after": certs.not_after(bundle.cert_pem).isoformat(),
            },
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata,
                "type": "kubernetes.io/tls", "data": _encode(bundle.secret_data())}

    def ensure_secret(self) -> Bundle:
        """The bundle to serve now, creating or renewing the Secret when it is ours."""
        s = self.settings
        for _ in range(5):  # lost races with another replica: read what it wrote
            current = self.kube.get(SECRET, s.namespace, s.secret_name)
            if current is None:
                if not s.managed:
                    raise CertificateError(
                        f"Secret {s.namespace}/{s.secret_name} with the webhook certificate "
                        "does not exist (it is user-provided: create it, e.g. with cert-manager)"
                    )
                bundle = certs.issue(s.hosts, self.clock(), ca_validity=s.ca_validity,
                                     serving_validity=s.serving_validity)
                try:
                    self.kube.create(self._secret(bundle))
                except ApiError as err:
                    if err.conflict:
                        continue
                    raise
                log.info("created webhook certificate Secret %s/%s", s.namespace, s.secret_name)
                return bundle
            bundle = Bundle.from_secret_data(_decode(current))
            reason = certs.rotation_reason(bundle, s.hosts, self.clock())
            if reason is None:
                return bundle
            if not s.managed:
                log.warning("user-provided webhook certificate needs renewal: %s", reason)
                return bundle
            renewed = certs.renew(bundle, certs.merged_hosts(s.hosts, bundle), self.clock(),
                                  ca_validity=s.ca_validity,
                                  serving_validity=s.serving_validity)
            try:
                # A merge patch carrying resourceVersion is a precondition: 409 if another
                # replica renewed first (then its certificate is read and used).
                self.kube.request(
                    "PATCH", SECRET.path(s.namespace, s.secret_name),
                    body=self._secret(renewed, current["metadata"]["resourceVersion"]),
                    content_type="application/merge-patch+json",
                )
            except ApiError as err:
                if err.conflict:
                    continue
                raise
            log.info("renewed webhook certificate (%s)", reason)
            return renewed
        raise CertificateError("could not settle the webhook certificate Secret (conflicts)")

    # -- the CRD ---------------------------------------------------------------------------

    def sync_ca_bundle(self, bundle: Bundle) -> bool:
        """Publish the CA in the CRD's conversion webhook; True when it had to be written."""
        path = f"{CRD_PATH}/{self.settings.crd_name}"
        try:
            crd = self.kube.request("GET", path)
        except ApiError as err:
            if err.not_found:
                log.warning("CRD %s not found; caBundle not published", self.settings.crd_name)
                return False
            raise
        if not uses_webhook(crd):
            log.info("CRD %s does not use webhook conversion; caBundle not needed",
                     self.settings.crd_name)
            return False
        wanted = base64.b64encode(bundle.ca_pem.encode()).decode()
        if ca_bundle_of(crd) == wanted:
            return False
        patch = {"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": wanted}}}}}
        self.kube.request("PATCH", path, body=patch,
                          content_type="application/merge-patch+json")
        log.info("published the webhook CA in CRD %s (caBundle)", self.settings.crd_name)
        return True

    def reconcile(self) -> Bundle:
        """One pass: settle the Secret, then the caBundle (CA first, so trust precedes use)."""
        bundle = self.ensure_secret()
        self.sync_ca_bundle(bundle)
        return bundle
