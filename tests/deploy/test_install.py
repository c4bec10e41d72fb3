"""The install files are generated from one source (operator/thumbnail_operator/install/) and
committed as generated: the kustomize trees (cluster-wide and namespaced), the Helm chart and
operator/rbac.yaml. These checks need no cluster: the files are current, and the namespaced
install is really confined (the API server side is in test_rbac.py and test_chart.py)."""

from __future__ import annotations

import copy

from tests.deploy.support import NAMESPACED, OPERATOR_NAMESPACE, ROOT, built, the_one
from thumbnail_operator.install import files, rbac
from thumbnail_operator.install.yamltext import Rule
from thumbnail_operator.settings import from_command_line
from thumbnail_operator.webhook.certmanager import CRD_NAME

Triple = tuple[str, str, str, str]  # (apiGroup, resource, verb, resourceName or "")


def _triples(rules: tuple[Rule, ...]) -> set[Triple]:
    return {
        (group, resource, verb, name)
        for rule in rules
        for group in rule.groups
        for resource in rule.resources
        for verb in rule.verbs
        for name in (rule.names or ("",))
    }


def test_generated_install_files_are_up_to_date() -> None:
    """Edit operator/thumbnail_operator/install/ (or crds/), then `make manifests`."""
    outdated = files.stale(ROOT)
    assert not outdated, (
        "generated install files differ from their source: run `make manifests` "
        f"(python -m thumbnail_operator.install) and commit the result: {outdated}"
    )


def test_namespaced_rules_are_a_subset_of_the_cluster_wide_ones() -> None:
    """The namespaced install only narrows where the rules apply, never what they allow."""
    cluster = _triples(rbac.CLUSTER_RULES)
    unnamed = {(g, r, v, "") for g, r, v, _ in cluster}
    for rules in (rbac.WATCHED_RULES, rbac.CRD_RULES, rbac.WEBHOOK_RULES):
        for group, resource, verb, name in _triples(rules):
            if resource == "kopfpeerings":  # kopf's namespaced peering object
                assert (group, "clusterkopfpeerings", verb, "") in cluster
                continue
            assert (group, resource, verb, name) in cluster or (
                group, resource, verb, "") in unnamed, (group, resource, verb, name)


def test_namespaced_install_has_one_cluster_scoped_permission() -> None:
    """Its only ClusterRole is limited by name to the CRD's own object (the caBundle)."""
    (role,) = built("ClusterRole", directory=NAMESPACED)
    for rule in role["rules"]:
        assert rule["resources"] == ["customresourcedefinitions"], rule
        assert rule["resourceNames"] == [CRD_NAME], rule
        assert set(rule["verbs"]) <= {"get", "patch"}, rule
    assert not built("ClusterRole", "thumbnail-operator", NAMESPACED)


def test_namespaced_deployment_watches_exactly_the_namespaces_its_roles_cover() -> None:
    (container,) = the_one("Deployment", NAMESPACED)["spec"]["template"]["spec"]["containers"]
    settings = from_command_line(container["args"])
    assert settings.namespace == list(files.WATCHED)
    account = the_one("ServiceAccount", NAMESPACED)["metadata"]
    subject = {"kind": "ServiceAccount", "name": account["name"], "namespace": OPERATOR_NAMESPACE}
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"])
             for r in built("Role", directory=NAMESPACED)}
    bindings = built("RoleBinding", directory=NAMESPACED)
    assert roles == {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings}
    assert all(b["subjects"] == [subject] for b in bindings)
    watched = {b["metadata"]["namespace"] for b in bindings
               if b["roleRef"]["name"] == account["name"]}
    assert watched == set(files.WATCHED)
    # The operator's own namespace: only the webhook's certificate Secret.
    assert {name for ns, name in roles if ns == OPERATOR_NAMESPACE} == {files.WEBHOOK_ROLE}


def test_both_installs_run_the_same_operator() -> None:
    """The Deployments differ only by the --namespace arguments of the watched namespaces."""
    cluster, namespaced = the_one("Deployment"), copy.deepcopy(the_one("Deployment", NAMESPACED))
    (a,) = cluster["spec"]["template"]["spec"]["containers"]
    (b,) = namespaced["spec"]["template"]["spec"]["containers"]
    assert [arg for arg in b["args"] if arg not in a["args"]] == [
        f"--namespace={ns}" for ns in files.WATCHED]
    b["args"] = a["args"]
    assert namespaced == cluster
