"""The operator's shipped RBAC, in both installs, grants every verb the operator's code uses
and nothing it must not have: cluster-wide (manifests/rbac, the same rules as
operator/rbac.yaml) and namespaced (manifests/namespaced: Roles in the watched namespace, a
ClusterRole limited to the CRD), where everything outside the watched namespace is denied.

Complements tests/operator (which runs the operator with a real token of the ServiceAccount,
cluster-wide from operator/rbac.yaml and namespaced in test_namespaced_cluster.py, proving the
rules are *sufficient* for its flows): here the shipped install manifests are applied to the
real control plane and the ServiceAccount is impersonated to prove each needed permission one
by one, and that dangerous ones are denied.
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
    MANIFESTS,
    NAMESPACED,
    OPERATOR_RBAC,
    Kubectl,
    Obj,
    built,
    crd_name,
    load_documents,
    the_one,
)
from thumbnail_operator import constants as c
from thumbnail_operator.kube import CHILD_KINDS, EVENT, THUMBNAIL_SERVICE_V1ALPHA1, Kind
from thumbnail_operator.settings import OperatorSettings

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


def _roles() -> list[Obj]:
    return [doc for directory in (MANIFESTS, NAMESPACED) for kind in ("ClusterRole", "Role")
            for doc in built(kind, directory=directory)]


@pytest.mark.parametrize(
    "role", _roles(),
    ids=[f"{d['kind']}-{d['metadata'].get('namespace', '')}-{d['metadata']['name']}"
         for d in _roles()],
)
def test_rules_have_no_wildcards_or_escalation_verbs(role: Obj) -> None:
    for group, resource, verb in _triples(role):
        assert "*" not in (group, resource, verb), (group, resource, verb)
        assert verb not in {"escalate", "bind", "impersonate", "deletecollection"}
        assert resource.split("/")[0] not in {
            "nodes", "namespaces", "clusterroles", "clusterrolebindings", "roles",
            "rolebindings", "serviceaccounts", "persistentvolumes",
        }, resource
        if resource.split("/")[0] == "pods":  # read-only: status explains stuck pods
            assert verb in {"get", "list", "watch"}, (resource, verb)
    assert not [r for r in role["rules"] if r.get("nonResourceURLs")]
    for rule in role["rules"]:
        if "customresourcedefinitions" in rule.get("resources", []):
            # Only its own CRD (e.g. a conversion webhook's caBundle), never CRDs in general.
            assert set(rule.get("resourceNames", [])) == {crd_name()}, rule


# -- dynamic: impersonate the shipped ServiceAccount on the real API server ----------------


@dataclass(frozen=True)
class Account:
    namespace: str
    name: str
    api: client.ApiClient  # impersonating the ServiceAccount
    watched: tuple[str, ...] = ()  # namespaced install: the only namespaces it may touch

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


def _impersonating(kubectl: Kubectl, rbac: ShippedRbac) -> Iterator[Account]:
    api = config.new_client_from_config(config_file=str(kubectl.kubeconfig))  # type: ignore[no-untyped-call]
    api.set_default_header("Impersonate-User", rbac.user)
    try:
        yield Account(rbac.namespace, rbac.account, api, rbac.watched)
    finally:
        api.close()


@pytest.fixture(scope="module", params=["cluster-wide", "namespaced"])
def account(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[Account]:
    """A client impersonating the shipped ServiceAccount of either install (isolated copies,
    see conftest)."""
    rbac = request.getfixturevalue(
        "shipped_rbac" if request.param == "cluster-wide" else "namespaced_rbac")
    yield from _impersonating(kubectl, rbac)


@pytest.fixture(scope="module")
def cluster_account(kubectl: Kubectl, shipped_rbac: ShippedRbac) -> Iterator[Account]:
    yield from _impersonating(kubectl, shipped_rbac)


@pytest.fixture(scope="module")
def namespaced_account(kubectl: Kubectl, namespaced_rbac: ShippedRbac) -> Iterator[Account]:
    yield from _impersonating(kubectl, namespaced_rbac)


Need = tuple[str, str, str, str, str]  # (verb, group, resource, namespace, name)


def _needed(account: Account) -> list[Need]:
    """What the operator's code uses, from its own kind table: in the namespaces it watches
    (any namespace, or the watched ones), plus its webhook's Secret and CRD."""
    needs: list[Need] = []
    namespaces = account.watched or ("default", f"any-{uuid.uuid4().hex[:6]}")
    for namespace in namespaces:
        for kind in CHILD_KINDS:
            needs += [(v, _group(kind), kind.plural, namespace, "") for v in CHILD_VERBS]
        needs += [(v, c.GROUP, c.PLURAL, namespace, "") for v in ("get", "list", "watch")]
        needs.append(("patch", c.GROUP, f"{THUMBNAIL_SERVICE_V1ALPHA1.plural}/status",
                      namespace, ""))
        needs += [(v, _group(EVENT), EVENT.plural, namespace, "") for v in ("create", "list")]
        needs += [(v, "", "pods", namespace, "") for v in ("get", "list", "watch")]
        needs.append(("get", "", "pods/log", namespace, ""))
    # The conversion webhook: its certificate Secret in its own namespace, the CRD's caBundle.
    secret = OperatorSettings.model_fields["webhook_secret"].default
    needs.append(("create", "", "secrets", account.namespace, ""))
    needs += [(v, "", "secrets", account.namespace, secret) for v in ("get", "patch")]
    needs += [(v, "apiextensions.k8s.io", "customresourcedefinitions", "", crd_name())
              for v in ("get", "patch")]
    if not account.watched:
        # kopf watches cluster-wide (no -n flag): list/watch across all namespaces.
        for kind in (*CHILD_KINDS, THUMBNAIL_SERVICE_V1ALPHA1):
            needs += [(v, _group(kind), kind.plural, "", "") for v in ("list", "watch")]
        needs += [(v, "", "pods", "", "") for v in ("list", "watch")]
        # The stored-version migration trims storedVersions (it sees every object).
        needs.append(("patch", "apiextensions.k8s.io", "customresourcedefinitions/status", "",
                      crd_name()))
    return needs


@pytest.mark.cluster
def test_impersonated_operator_can_do_what_it_needs(account: Account) -> None:
    missing = [need for need in _needed(account) if not account.can(*need)]
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
def test_impersonated_requests_are_really_authorized(cluster_account: Account) -> None:
    """Real requests, not only access reviews (dry-run where they would change anything)."""
    account = cluster_account
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


# -- the namespaced install: nothing outside the watched namespace ----------------------------

OUTSIDE: list[tuple[str, str, str, str]] = [
    ("get", "", "secrets", "kube-system"),
    ("list", "", "secrets", "kube-system"),
    ("list", "", "secrets", ""),
    ("watch", "", "configmaps", ""),
    ("list", c.GROUP, c.PLURAL, ""),
    ("watch", "", "pods", ""),
    ("create", "apps", "deployments", "kube-system"),
    ("patch", "apps", "deployments", "kube-system"),
    ("create", "batch", "jobs", "default"),
    ("get", "", "secrets", "default"),
    ("list", c.GROUP, c.PLURAL, "default"),
    ("create", "", "events", "default"),
    ("get", "", "pods/log", "kube-system"),
]


@pytest.mark.cluster
@pytest.mark.parametrize(
    "verb,group,resource,namespace", OUTSIDE,
    ids=[f"{v}-{r}-{n or 'all'}".replace("/", "-") for v, _, r, n in OUTSIDE],
)
def test_namespaced_operator_cannot_act_outside_its_namespaces(
    namespaced_account: Account, verb: str, group: str, resource: str, namespace: str
) -> None:
    assert not namespaced_account.can(verb, group, resource, namespace)


@pytest.mark.cluster
def test_namespaced_operator_reads_only_its_own_secret_in_its_namespace(
    namespaced_account: Account
) -> None:
    """Its own namespace holds the webhook's certificate Secret: that one by name, no other,
    and no listing (unless the namespace is also watched, which the shipped one is not)."""
    account = namespaced_account
    assert account.namespace not in account.watched
    assert not account.can("list", "", "secrets", account.namespace)
    assert not account.can("get", "", "secrets", account.namespace, "some-other-secret")
    assert not account.can("create", "apps", "deployments", account.namespace)
    # No storedVersions trim: it cannot see every ThumbnailService (webhook/migrate.py).
    assert not account.can("patch", "apiextensions.k8s.io", "customresourcedefinitions/status",
                           name=crd_name())


@pytest.mark.cluster
def test_namespaced_requests_are_really_authorized(namespaced_account: Account) -> None:
    """Real requests: allowed in the watched namespace, 403 everywhere else."""
    account = namespaced_account
    (watched,) = account.watched
    core = client.CoreV1Api(account.api)
    core.list_namespaced_secret(watched, limit=1)
    core.list_namespaced_config_map(watched, limit=1)
    client.CustomObjectsApi(account.api).list_namespaced_custom_object(
        c.GROUP, c.VERSION, watched, c.PLURAL, limit=1)
    for denied_call in (
        lambda: core.list_namespaced_secret("kube-system", limit=1),
        lambda: core.list_secret_for_all_namespaces(limit=1),
        lambda: core.list_config_map_for_all_namespaces(limit=1),
        lambda: client.CustomObjectsApi(account.api).list_cluster_custom_object(
            c.GROUP, c.VERSION, c.PLURAL, limit=1),
        lambda: client.AppsV1Api(account.api).create_namespaced_deployment(
            "kube-system", client.V1Deployment(
                metadata=client.V1ObjectMeta(name="nope"),
                spec=client.V1DeploymentSpec(
                    selector=client.V1LabelSelector(match_labels={"a": "b"}),
                    template=client.V1PodTemplateSpec(
                        metadata=client.V1ObjectMeta(labels={"a": "b"}),
                        spec=client.V1PodSpec(containers=[
                            client.V1Container(name="c", image="x.invalid/x:1")])))),
            dry_run="All"),
    ):
        with pytest.raises(ApiException) as denied:
            denied_call()
        assert denied.value.status == 403
