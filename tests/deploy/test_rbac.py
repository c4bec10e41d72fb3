"""The operator's shipped RBAC (manifests/rbac) is exactly operator/rbac.yaml, grants every
verb the operator's code uses, and nothing it must not have.

Complements tests/operator (which runs the operator with a real token of the ServiceAccount
from operator/rbac.yaml, proving the rules are *sufficient* for its flows): here the shipped
install manifests are applied to the real control plane and the ServiceAccount is
impersonated to prove each needed permission one by one, and that dangerous ones are denied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.deploy.conftest import ShippedRbac
from tests.deploy.support import (
    OPERATOR_RBAC,
    Kubectl,
    Obj,
    crd_name,
    load_documents,
    the_one,
)
from thumbnail_operator import constants as c
from thumbnail_operator.kube import CHILD_KINDS, EVENT, THUMBNAIL_SERVICE_V1ALPHA1, Kind

Triple = tuple[str, str, str]  # (apiGroup, resource, verb)
CHILD_VERBS = ("get", "list", "watch", "create", "patch", "delete")


def _triples(role: Obj) -> set[Triple]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule.get("apiGroups", [""])
        for resource in rule.get("resources", [])
        for verb in rule["verbs"]
    }


def _operator_file(kind: str) -> Obj:
    (doc,) = [d for d in load_documents(OPERATOR_RBAC) if d["kind"] == kind]
    return doc


def _group(kind: Kind) -> str:
    return kind.api_version.rpartition("/")[0]


# -- static ------------------------------------------------------------------------------


def test_shipped_rules_equal_operator_rbac_file() -> None:
    shipped, source = _triples(the_one("ClusterRole")), _triples(_operator_file("ClusterRole"))
    assert shipped == source, (
        f"manifests/rbac differs from operator/rbac.yaml: only shipped {sorted(shipped - source)}"
        f", only in operator/ {sorted(source - shipped)}"
    )
    assert not [r for r in the_one("ClusterRole")["rules"] if r.get("nonResourceURLs")]


def test_shipped_identity_equals_operator_rbac_file() -> None:
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
        shipped, source = the_one(kind)["metadata"], _operator_file(kind)["metadata"]
        assert (shipped["name"], shipped.get("namespace")) == (
            source["name"], source.get("namespace")
        ), kind
    shipped_b, source_b = the_one("ClusterRoleBinding"), _operator_file("ClusterRoleBinding")
    assert shipped_b["roleRef"] == source_b["roleRef"]
    assert shipped_b["subjects"] == source_b["subjects"]


def test_rules_have_no_wildcards_or_escalation_verbs() -> None:
    for group, resource, verb in _triples(the_one("ClusterRole")):
        assert "*" not in (group, resource, verb), (group, resource, verb)
        assert verb not in {"escalate", "bind", "impersonate", "deletecollection"}
        assert resource.split("/")[0] not in {
            "nodes", "namespaces", "clusterroles", "clusterrolebindings", "roles",
            "rolebindings", "serviceaccounts", "persistentvolumes",
        }, resource
        if resource.split("/")[0] == "pods":  # read-only: status explains stuck pods
            assert verb in {"get", "list", "watch"}, (resource, verb)
    for rule in the_one("ClusterRole")["rules"]:
        if "customresourcedefinitions" in rule.get("resources", []):
            # Only its own CRD (e.g. a conversion webhook's caBundle), never CRDs in general.
            assert set(rule.get("resourceNames", [])) == {crd_name()}, rule


# -- dynamic: impersonate the shipped ServiceAccount on the real API server ----------------


@dataclass(frozen=True)
class Account:
    namespace: str
    name: str
    api: client.ApiClient  # impersonating the ServiceAccount

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def can(
        self, verb: str, group: str, resource: str, namespace: str = "", name: str = ""
    ) -> bool:
        plural, _, sub = resource.partition("/")
        attributes = client.V1ResourceAttributes(
            verb=verb, group=group, resource=plural, subresource=sub, namespace=namespace,
            name=name,
        )
        review = client.AuthorizationV1Api(self.api).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
            )
        )
        return review.status is not None and bool(review.status.allowed)


@pytest.fixture(scope="module")
def account(kubectl: Kubectl, shipped_rbac: ShippedRbac) -> Iterator[Account]:
    """A client impersonating the shipped ServiceAccount (isolated copy, see conftest)."""
    api = config.new_client_from_config(config_file=str(kubectl.kubeconfig))  # type: ignore[no-untyped-call]
    api.set_default_header("Impersonate-User", shipped_rbac.user)
    try:
        yield Account(shipped_rbac.namespace, shipped_rbac.account, api)
    finally:
        api.close()


def _needed() -> list[tuple[str, str, str, str]]:
    """(verb, group, resource, namespace) the operator's code uses, from its own kind table."""
    needs: list[tuple[str, str, str, str]] = []
    for namespace in ("default", f"any-{uuid.uuid4().hex[:6]}"):
        for kind in CHILD_KINDS:
            needs += [(v, _group(kind), kind.plural, namespace) for v in CHILD_VERBS]
        needs += [(v, c.GROUP, c.PLURAL, namespace) for v in ("get", "list", "watch")]
        needs.append(("patch", c.GROUP, f"{THUMBNAIL_SERVICE_V1ALPHA1.plural}/status", namespace))
        needs += [(v, _group(EVENT), EVENT.plural, namespace) for v in ("create", "list")]
        needs += [(v, "", "pods", namespace) for v in ("get", "list", "watch")]
        needs.append(("get", "", "pods/log", namespace))
    # kopf watches cluster-wide (no -n flag): list/watch across all namespaces.
    for kind in (*CHILD_KINDS, THUMBNAIL_SERVICE_V1ALPHA1):
        needs += [(v, _group(kind), kind.plural, "") for v in ("list", "watch")]
    needs += [(v, "", "pods", "") for v in ("list", "watch")]
    return needs


@pytest.mark.cluster
def test_impersonated_operator_can_do_what_it_needs(account: Account) -> None:
    missing = [need for need in _needed() if not account.can(*need)]
    assert not missing, f"{account.user} lacks: {missing}"


FORBIDDEN: list[tuple[str, str, str, str]] = [
    ("delete", "", "nodes", ""),
    ("patch", "", "nodes", ""),
    ("create", "", "namespaces", ""),
    ("delete", "", "namespaces", ""),
    ("create", "", "pods", "default"),
    ("create", "", "pods/exec", "default"),
    ("create", "", "serviceaccounts/token", "default"),
    ("delete", "", "persistentvolumeclaims", "default"),
    ("delete", "", "persistentvolumes", ""),
    ("deletecollection", "", "secrets", "default"),
    ("create", c.GROUP, c.PLURAL, "default"),
    ("delete", c.GROUP, c.PLURAL, "default"),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("delete", "apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", ""),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", ""),
    ("create", "rbac.authorization.k8s.io", "rolebindings", "default"),
    ("impersonate", "", "users", ""),
    ("create", "admissionregistration.k8s.io", "validatingwebhookconfigurations", ""),
]


@pytest.mark.cluster
@pytest.mark.parametrize(
    "verb,group,resource,namespace", FORBIDDEN,
    ids=[f"{v}-{r}".replace("/", "-") for v, _, r, _ in FORBIDDEN],
)
def test_impersonated_operator_cannot(
    account: Account, verb: str, group: str, resource: str, namespace: str
) -> None:
    assert not account.can(verb, group, resource, namespace)


@pytest.mark.cluster
@pytest.mark.parametrize("verb", ["patch", "update", "delete"])
def test_impersonated_operator_cannot_touch_other_crds(account: Account, verb: str) -> None:
    for other in ("certificates.cert-manager.io", "kopfpeerings.kopf.dev", "widgets.example.com"):
        assert not account.can(verb, "apiextensions.k8s.io", "customresourcedefinitions",
                               name=other), other


@pytest.mark.cluster
def test_impersonated_requests_are_really_authorized(account: Account) -> None:
    """Real requests, not only access reviews (dry-run where they would change anything)."""
    core = client.CoreV1Api(account.api)
    core.list_config_map_for_all_namespaces(limit=1)  # allowed: cluster-wide watch of children
    core.list_namespaced_secret(account.namespace, limit=1)
    with pytest.raises(ApiException) as denied:
        core.delete_node("kwok-node-0", dry_run="All")
    assert denied.value.status == 403
    with pytest.raises(ApiException) as denied:
        core.list_namespace(limit=1)
    assert denied.value.status == 403
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="nope"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x.invalid/x:1")]),
    )
    with pytest.raises(ApiException) as denied:
        core.create_namespaced_pod(account.namespace, pod, dry_run="All")
    assert denied.value.status == 403
    crs = client.CustomObjectsApi(account.api)
    crs.list_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL, limit=1)
    with pytest.raises(ApiException) as denied:
        crs.create_namespaced_custom_object(
            c.GROUP, c.VERSION, account.namespace, c.PLURAL,
            {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": {"name": "x"}, "spec": {}},
            dry_run="All",
        )
    assert denied.value.status == 403
