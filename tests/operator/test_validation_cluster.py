"""The API server itself rejects invalid ThumbnailServices, with a message that says what to fix.

Admission catches what would fail later: for every spec field, what the API server refuses
in the child it feeds (a StatefulSet's claim template, a container's resources or secretKeyRef,
a pod's image) or what fails at runtime (an image name no runtime parses, a PostgreSQL role
name initdb refuses) is refused on the ThumbnailService itself, in both served versions. The
good edge values are accepted, and so are the children and pods rendered from them.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.support import (
    InProcessOperator,
    expect_api_error,
    sample,
    wait_for,
)
from thumbnail_operator import constants as c
from thumbnail_operator.api.conversion import to_v1alpha1
from thumbnail_operator.api.v1 import NOT_CREATED_MESSAGE, parse_spec
from thumbnail_operator.builders import Owner, build_desired_state
from thumbnail_operator.builders.credentials import ensure_credentials
from thumbnail_operator.kube import (
    STATEFUL_SET,
    THUMBNAIL_SERVICE,
    THUMBNAIL_SERVICE_V1ALPHA1,
    ApiError,
    Kind,
    KubeClient,
    kind_of,
)

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
KINDS = {"v1": THUMBNAIL_SERVICE, "v1alpha1": THUMBNAIL_SERVICE_V1ALPHA1}


def dry_run_create(
    admin: KubeClient, namespace: str, body: Obj, kind: Kind = THUMBNAIL_SERVICE_V1ALPHA1
) -> Obj:
    return admin.request("POST", kind.path(namespace), body=body, query={"dryRun": "All"})


def with_spec(spec: Obj, name: str = "invalid") -> Obj:
    body = sample(name)
    body["spec"] = copy.deepcopy(spec)
    return body


def v1_body(spec: Obj, name: str = "edge") -> Obj:
    return {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": {"name": name},
            "spec": copy.deepcopy(spec)}


def in_version(spec: Obj, version: str, name: str = "edge") -> Obj:
    """A v1 spec as a ThumbnailService of `version` (v1alpha1 through the pure conversion)."""
    body = v1_body(spec, name)
    return body if version == "v1" else to_v1alpha1(body)


# -- what the schema refused before this issue (v1alpha1 spellings) -------------------------

INVALID: list[tuple[str, Obj, str]] = [
    ("external postgres without connection", {"postgresql": {"enabled": False}},
     "postgresql.external (host and secretRef) is required when postgresql.enabled is false"),
    ("external postgres without secretRef",
     {"postgresql": {"enabled": False, "external": {"host": "db.example.com"}}},
     "spec.postgresql.external.secretRef: Required value"),
    ("external s3 without secretRef",
     {"minio": {"enabled": False, "external": {"endpoint": "s3.example.com:443"}}},
     "spec.minio.external.secretRef: Required value"),
    ("node port below range",
     {"server": {"service": {"nodePort": {"enabled": True, "port": 29999}}}},
     "the API: nodePort.port must be within 30000-32767"),
    ("console node port above range",
     {"minio": {"console": {"nodePort": {"enabled": True, "port": 40000}}}},
     "the MinIO console: nodePort.port must be within 30000-32767"),
    ("same node port twice",
     {"server": {"service": {"nodePort": {"enabled": True, "port": 30100}}},
      "minio": {"console": {"nodePort": {"enabled": True, "port": 30100}}}},
     "the API and MinIO console node ports must differ"),
    ("bucket with uppercase", {"minio": {"buckets": {"originals": "Raw_Images"}}},
     "bucket names use lowercase letters, digits, dots and hyphens"),
    ("bucket with two dots", {"minio": {"buckets": {"originals": "raw..images"}}},
     "bucket names must not contain two adjacent dots"),
    ("bucket shaped like an IP", {"minio": {"buckets": {"thumbnails": "192.168.10.1"}}},
     "bucket names must not be formatted as an IP address"),
    ("bucket too short", {"minio": {"buckets": {"thumbnails": "ab"}}},
     "should be at least 3 chars long"),
    ("same bucket twice", {"minio": {"buckets": {"originals": "images", "thumbnails": "images"}}},
     "buckets.originals and buckets.thumbnails must be different buckets"),
    ("limits below requests",
     {"worker": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}},
     "resources.limits.cpu must be >= resources.requests.cpu"),
    ("negative replicas", {"worker": {"replicas": -1}},
     "spec.worker.replicas: Invalid value: -1: spec.worker.replicas in body should be greater "
     "than or equal to 0"),
    ("bad preset name", {"thumbnails": {"presets": {"Huge!": {"width": 10, "height": 10}}}},
     "preset names are 1-32 lowercase letters, digits, '-' or '_'"),
    ("preset too large", {"thumbnails": {"presets": {"huge": {"width": 10000, "height": 10}}}},
     "should be less than or equal to 8192"),
    ("unknown log level", {"thumbnails": {"logLevel": "LOUD"}}, 'Unsupported value: "LOUD"'),
    ("bad quantity", {"postgresql": {"storage": {"size": "ten gigs"}}},
     "spec.postgresql.storage.size in body should match"),
]


@pytest.mark.parametrize(("spec", "message"), [(s, m) for _, s, m in INVALID],
                         ids=[case for case, _, _ in INVALID])
def test_invalid_spec_is_rejected_with_its_message(
    admin: KubeClient, crd: Any, namespace: str, spec: Obj, message: str
) -> None:
    err = expect_api_error(lambda: dry_run_create(admin, namespace, with_spec(spec)))
    assert err.status == 422
    assert message in err.message


# -- what a child would refuse, or what would fail at runtime (issue 12) --------------------
#
# (case, v1 spec, message, the child kind whose own API validation refuses what the builders
# render from that spec, or None when the failure comes later: kubelet, runtime, the image)

MANAGED_PG = "postgresql"
STORAGE_MESSAGE = "storage size must be at least 1Gi"
REPOSITORY_MESSAGE = "image repository must look like postgres or registry.example.com:5000"
EXTERNAL_PG = {"mode": "External", "external": {"host": "db.example.com",
                                                  "secretRef": {"name": "db"}}}
EXTERNAL_S3 = {"mode": "External", "external": {"endpoint": "s3.example.com",
                                                  "secretRef": {"name": "s3"}}}


def _resources(component: str, resources: Obj) -> Obj:
    where = {
        "server": lambda r: {"server": {"resources": r}},
        "workers": lambda r: {"workers": {"resources": r}},
        "postgresql": lambda r: {"postgresql": {"managed": {"resources": r}}},
        "redis": lambda r: {"redis": {"managed": {"resources": r}}},
        "objectStorage": lambda r: {"objectStorage": {"managed": {"resources": r}}},
    }
    return where[component](resources)


def _api_peers(*peers: Obj) -> Obj:
    return {"networkPolicy": {"apiPeers": list(peers)}}


def _scheduling(component: str, scheduling: Obj) -> Obj:
    where = {
        "server": lambda s: {"server": {"scheduling": s}},
        "workers": lambda s: {"workers": {"scheduling": s}},
        "postgresql": lambda s: {"postgresql": {"managed": {"scheduling": s}}},
        "redis": lambda s: {"redis": {"managed": {"scheduling": s}}},
        "objectStorage": lambda s: {"objectStorage": {"managed": {"scheduling": s}}},
    }
    return where[component](scheduling)


def _spread(**constraint: Any) -> Obj:
    return {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule", **constraint}


REFUSED: list[tuple[str, Obj, str, str | None]] = [
    # Claim templates: the API server refuses a claim of 0; below 1Gi nothing fits.
    ("postgresql storage 0", {"postgresql": {"managed": {"storage": {"size": "0"}}}},
     STORAGE_MESSAGE, "StatefulSet"),
    ("postgresql storage 1m (milli-bytes)",
     {"postgresql": {"managed": {"storage": {"size": "1m"}}}}, STORAGE_MESSAGE, None),
    ("postgresql storage 500Mi", {"postgresql": {"managed": {"storage": {"size": "500Mi"}}}},
     STORAGE_MESSAGE, None),
    ("minio storage 0", {"objectStorage": {"managed": {"storage": {"size": "0"}}}},
     STORAGE_MESSAGE, "StatefulSet"),
    ("minio storage 1023Mi", {"objectStorage": {"managed": {"storage": {"size": "1023Mi"}}}},
     STORAGE_MESSAGE, None),
    ("storage size with a space", {"postgresql": {"managed": {"storage": {"size": "10 Gi"}}}},
     "storage.size in body should match", None),
    ("storageClassName not a DNS name", {"persistence": {"storageClassName": "Fast_SSD"}},
     "a StorageClass name is lowercase letters", "StatefulSet"),
    # Container resources: requests <= limits for every resource, whole bytes, real limits.
    ("memory limits below requests",
     _resources("server", {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}),
     "resources.limits.memory must be >= resources.requests.memory", "Deployment"),
    ("ephemeral-storage limits below requests",
     _resources("redis", {"requests": {"ephemeral-storage": "2Gi"},
                          "limits": {"ephemeral-storage": "1Gi"}}),
     "resources.limits.ephemeral-storage must be >= resources.requests.ephemeral-storage",
     "Deployment"),
    ("cpu limits below requests in a StatefulSet",
     _resources("postgresql", {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
     "resources.limits.cpu must be >= resources.requests.cpu", "StatefulSet"),
    ("memory in milli-bytes", _resources("workers", {"requests": {"memory": "512m"}}),
     "memory is a number of bytes and must be whole", None),
    ("ephemeral-storage in milli-bytes",
     _resources("objectStorage", {"limits": {"ephemeral-storage": "1.5"}}),
     "ephemeral-storage is a number of bytes and must be whole", None),
    ("memory limit 0", _resources("redis", {"limits": {"memory": "0"}}),
     "a memory limit must be at least 6Mi", None),
    ("memory limit 1Mi", _resources("workers", {"limits": {"memory": "1Mi"}}),
     "a memory limit must be at least 6Mi", None),
    ("cpu limit 0", _resources("server", {"limits": {"cpu": "0"}}),
     "a limit of cpu must be greater than 0", None),
    ("ephemeral-storage limit 0", _resources("workers", {"limits": {"ephemeral-storage": "0"}}),
     "a limit of ephemeral-storage must be greater than 0", None),
    # Images: the API server only refuses surrounding whitespace (and only in pods); every
    # other malformed reference fails at the kubelet (InvalidImageName).
    ("repository with uppercase", {"server": {"image": {"repository": "Thumbnail-Server"}}},
     REPOSITORY_MESSAGE, None),
    ("repository with a tag", {"postgresql": {"managed": {"image": {"repository": "postgres:16"}}}},
     REPOSITORY_MESSAGE, None),
    ("repository with a digest",
     {"redis": {"managed": {"image": {"repository": "redis@sha256:" + "a" * 64}}}},
     REPOSITORY_MESSAGE, None),
    ("repository with a leading space", {"workers": {"image": {"repository": " worker"}}},
     REPOSITORY_MESSAGE, "Pod"),
    ("repository with an empty path part",
     {"dependencyWait": {"image": {"repository": "library//busybox"}}}, REPOSITORY_MESSAGE, None),
    ("repository with a scheme",
     {"objectStorage": {"bucketInit": {"image": {"repository": "https://quay.io/minio/mc"}}}},
     REPOSITORY_MESSAGE, None),
    # env[].valueFrom.secretKeyRef: a Secret name (DNS-1123 subdomain) and a key.
    ("secret name with two dots",
     {"postgresql": {**EXTERNAL_PG, "external": {"host": "db", "secretRef": {"name": "db..x"}}}},
     "a Secret name is lowercase letters, digits", "Deployment"),
    ("secret name ending in a dot part with a dash",
     {"objectStorage": {**EXTERNAL_S3, "external": {
         "endpoint": "s3.example.com", "secretRef": {"name": "s3-.keys"}}}},
     "a Secret name is lowercase letters, digits", "Deployment"),
    ("secret key '..'",
     {"postgresql": {**EXTERNAL_PG, "external": {
         "host": "db", "secretRef": {"name": "db", "key": ".."}}}},
     "a Secret key must not be '.' nor start with '..'", "Deployment"),
    ("secret key '..hidden'",
     {"objectStorage": {**EXTERNAL_S3, "external": {
         "endpoint": "s3.example.com", "secretRef": {"name": "s3", "accessKeyKey": "..a"}}}},
     "a Secret key must not be '.' nor start with '..'", "Deployment"),
    ("redis secret key '.'",
     {"redis": {"mode": "External", "external": {
         "host": "redis", "secretRef": {"name": "redis", "key": "."}}}},
     "a Secret key must not be '.' nor start with '..'", "Deployment"),
    # Runtime: connections and the PostgreSQL image's initialisation.
    ("s3 endpoint port above 65535",
     {"objectStorage": {**EXTERNAL_S3, "external": {
         "endpoint": "s3.example.com:70000", "secretRef": {"name": "s3"}}}},
     "the port of the S3 endpoint must be within 1-65535", None),
    ("s3 endpoint port 0",
     {"objectStorage": {**EXTERNAL_S3, "external": {
         "endpoint": "s3.example.com:0", "secretRef": {"name": "s3"}}}},
     "the port of the S3 endpoint must be within 1-65535", None),
    ("template database", {"postgresql": {"database": "template1"}},
     "template0 and template1 are PostgreSQL's template databases", None),
    ("reserved role name", {"postgresql": {"user": "pg_admin"}},
     "PostgreSQL reserves role names starting with pg_", None),
    # Scheduling (issue 15): what a pod template's validation refuses, refused here first.
    ("toleration Exists with a value",
     _scheduling("server", {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}),
     "a toleration with operator Exists must have no value", "Deployment"),
    ("toleration without key and operator Equal",
     _scheduling("workers", {"tolerations": [{"operator": "Equal", "value": "v"}]}),
     "a toleration without key must have operator Exists", "Deployment"),
    ("tolerationSeconds without NoExecute",
     _scheduling("postgresql", {"tolerations": [
         {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]}),
     "tolerationSeconds needs effect NoExecute", "StatefulSet"),
    ("toleration effect unknown",
     _scheduling("redis", {"tolerations": [{"key": "k", "operator": "Exists",
                                            "effect": "NoEvict"}]}),
     'Unsupported value: "NoEvict"', "Deployment"),
    ("toleration operator unknown",
     _scheduling("objectStorage", {"tolerations": [{"key": "k", "operator": "Equals",
                                                    "value": "v"}]}),
     'Unsupported value: "Equals"', "StatefulSet"),
    ("toleration key with a space",
     _scheduling("server", {"tolerations": [{"key": "bad key", "operator": "Exists"}]}),
     "tolerations key: not a label key", "Deployment"),
    ("33 tolerations", _scheduling("workers", {"tolerations": [{"operator": "Exists"}] * 33}),
     "must have at most 32 items", None),
    ("spread maxSkew 0",
     _scheduling("workers", {"topologySpreadConstraints": [_spread(maxSkew=0)]}),
     "maxSkew in body should be greater than or equal to 1", "Deployment"),
    ("spread without topologyKey",
     _scheduling("server", {"topologySpreadConstraints": [
         {"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}]}),
     "topologyKey: Required value", "Deployment"),
    ("spread whenUnsatisfiable unknown",
     _scheduling("workers", {"topologySpreadConstraints": [
         _spread(whenUnsatisfiable="Sometimes")]}),
     'Unsupported value: "Sometimes"', "Deployment"),
    ("two spreads on the same key and mode",
     _scheduling("workers", {"topologySpreadConstraints": [_spread(), _spread(maxSkew=2)]}),
     "Duplicate value", "Deployment"),
    ("spread minDomains with ScheduleAnyway",
     _scheduling("server", {"topologySpreadConstraints": [
         _spread(whenUnsatisfiable="ScheduleAnyway", minDomains=2)]}),
     "minDomains needs whenUnsatisfiable DoNotSchedule", "Deployment"),
    ("spread matchLabelKeys also in labelSelector",
     _scheduling("workers", {"topologySpreadConstraints": [_spread(
         labelSelector={"matchLabels": {c.LABEL_PART_OF: c.PART_OF}},
         matchLabelKeys=[c.LABEL_PART_OF])]}),
     "a key of matchLabelKeys must not be in labelSelector too", "Pod"),
    ("spread matchLabelKeys naming the component's selector",
     _scheduling("redis", {"topologySpreadConstraints": [_spread(
         matchLabelKeys=[c.LABEL_INSTANCE])]}),
     "without labelSelector (the component's selector", "Pod"),
    ("spread selector In without values",
     _scheduling("objectStorage", {"topologySpreadConstraints": [_spread(
         labelSelector={"matchExpressions": [{"key": "tier", "operator": "In"}]})]}),
     "In and NotIn need values, Exists and DoesNotExist none", "StatefulSet"),
    # (accepted by the API server, but no node has such a label: pods would stay pending)
    ("spread topologyKey with a space",
     _scheduling("server", {"topologySpreadConstraints": [_spread(topologyKey="node name")]}),
     "topologyKey: not a label key", None),
    ("nodeSelector key with a space", _scheduling("redis", {"nodeSelector": {"disk type": "ssd"}}),
     "nodeSelector keys: not a label key", "Deployment"),
    ("nodeSelector value with a '!'",
     _scheduling("objectStorage", {"nodeSelector": {"disktype": "ssd!"}}),
     "nodeSelector values: not a label value", "StatefulSet"),
    ("priorityClassName with uppercase", _scheduling("server", {"priorityClassName": "High"}),
     "priorityClassName must be a PriorityClass name", "Deployment"),
    ("API peer with nothing in it", _api_peers({}),
     "an apiPeers entry needs podSelector, namespaceSelector or ipBlock", "NetworkPolicy"),
    ("API peer with ipBlock and podSelector",
     _api_peers({"ipBlock": {"cidr": "192.0.2.0/24"}, "podSelector": {}}),
     "ipBlock cannot be combined with podSelector", "NetworkPolicy"),
    ("API peer CIDR with a /33", _api_peers({"ipBlock": {"cidr": "192.0.2.0/33"}}),
     "ipBlock.cidr: not a CIDR", "NetworkPolicy"),
    ("API peer exception outside the CIDR",
     _api_peers({"ipBlock": {"cidr": "192.0.2.0/24", "except": ["198.51.100.0/25"]}}),
     "ipBlock.except must lie strictly inside ipBlock.cidr", "NetworkPolicy"),
    ("API peer exception equal to the CIDR",
     _api_peers({"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.0/24"]}}),
     "ipBlock.except must lie strictly inside ipBlock.cidr", "NetworkPolicy"),
    ("autoscaling minimum above its maximum",
     {"workers": {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}},
     "autoscaling.minReplicas must not exceed autoscaling.maxReplicas", None),
    ("autoscaling without a maximum", {"workers": {"autoscaling": {"minReplicas": 1}}},
     "autoscaling.maxReplicas: Required value", None),
    ("autoscaling to a zero-second target",
     {"workers": {"autoscaling": {"maxReplicas": 2, "targetQueueSeconds": 0}}},
     "targetQueueSeconds: Invalid value: 0", None),
]


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
@pytest.mark.parametrize(("spec", "message"), [(s, m) for _, s, m, _ in REFUSED],
                         ids=[case for case, *_ in REFUSED])
def test_what_a_child_would_refuse_is_refused_on_the_resource(
    admin: KubeClient, crd: Any, namespace: str, version: str, spec: Obj, message: str
) -> None:
    body = in_version(spec, version)
    err = expect_api_error(lambda: dry_run_create(admin, namespace, body, KINDS[version]))
    assert err.status == 422, err.message
    assert message in err.message, err.message


# -- the children the builders render, as the API server sees them -------------------------


def pod_of(workload: Obj) -> Obj:
    """The pod a Deployment, StatefulSet or Job would create (pod-only checks: images)."""
    template = copy.deepcopy(workload["spec"]["template"])
    spec = template["spec"]
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        spec["volumes"] = [*spec["volumes"], {"name": claim["metadata"]["name"],
                                              "persistentVolumeClaim": {
                                                  "claimName": claim["metadata"]["name"]}}]
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec, "metadata": {
        "name": f"{workload['metadata']['name']}-probe",
        "namespace": workload["metadata"]["namespace"],
        "labels": template["metadata"].get("labels", {}),
    }}


def rendered(spec: Obj, namespace: str) -> Iterator[Obj]:
    """Every child of a v1 spec (defaults applied by the typed model), then their pods."""
    model = parse_spec(spec)
    owner = Owner("edge", namespace, str(uuid.uuid4()))
    external = {"db": {"password": "p"}, "redis": {"password": "p"},
                "s3": {"accessKey": "a", "secretKey": "s"}}
    children = build_desired_state(owner, model, ensure_credentials(model, None), external)
    yield from children.children
    for child in children.children:
        if child["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield pod_of(child)


def dry_run_child(admin: KubeClient, child: Obj) -> None:
    path = (f"/api/v1/namespaces/{child['metadata']['namespace']}/pods"
            if child["kind"] == "Pod" else kind_of(child).path(child["metadata"]["namespace"]))
    admin.request("POST", path, body=child, query={"dryRun": "All"})


def child_errors(admin: KubeClient, spec: Obj, namespace: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    for child in rendered(spec, namespace):
        try:
            dry_run_child(admin, child)
        except ApiError as err:
            errors[f"{child['kind']}/{child['metadata']['name']}"] = err.message
    return errors


@pytest.mark.parametrize(
    ("spec", "kind"), [(s, k) for _, s, _, k in REFUSED if k is not None],
    ids=[case for case, _, _, k in REFUSED if k is not None],
)
def test_the_rule_mirrors_the_childs_own_validation(
    admin: KubeClient, crd: Any, namespace: str, spec: Obj, kind: str
) -> None:
    """Without the rule, the builders would render a child the API server refuses: the
    StatefulSet or Deployment would never apply, or its pods never be created."""
    errors = child_errors(admin, spec, namespace)
    assert any(name.startswith(f"{kind}/") for name in errors), errors


ACCEPTED: list[tuple[str, Obj]] = [
    ("autoscaling from zero", {"workers": {"autoscaling": {
        "minReplicas": 0, "maxReplicas": 1000, "targetQueueSeconds": 1,
        "scaleDownDelaySeconds": 0}}}),
    ("API peers of every kind", {"networkPolicy": {"apiPeers": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}},
         "podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                                               "values": ["nginx"]}]}},
        {"podSelector": {}},
        {"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}},
        {"ipBlock": {"cidr": "2001:db8::/32"}},
    ]}}),
    ("no NetworkPolicies", {"networkPolicy": {"enabled": False}}),
    ("smallest storage", {"postgresql": {"managed": {"storage": {"size": "1Gi"}}},
                          "objectStorage": {"managed": {"storage": {"size": "1024Mi"}}}}),
    ("fractional storage in whole bytes",
     {"postgresql": {"managed": {"storage": {"size": "1.5Gi"}}},
      "objectStorage": {"managed": {"storage": {"size": "2G"}}}}),
    ("smallest limits, equal to the requests",
     _resources("server", {"requests": {"cpu": "1m", "memory": "6Mi", "ephemeral-storage": "1"},
                           "limits": {"cpu": "1m", "memory": "6Mi", "ephemeral-storage": "1"}})),
    ("zero requests, no limits",
     _resources("workers", {"requests": {"cpu": "0", "memory": "0", "ephemeral-storage": "0"}})),
    ("limits only", _resources("postgresql", {"limits": {"cpu": "0.5", "memory": "1.5Gi"}})),
    ("registry with a port and nested path",
     {"server": {"image": {"repository": "registry.example.com:5000/team/thumbnail-server"}},
      "workers": {"image": {"repository": "localhost/thumbnail-service-worker"}},
      "postgresql": {"managed": {"image": {"repository": "docker.io/library/postgres"}}},
      "redis": {"managed": {"image": {"repository": "ghcr.io/org/redis__mirror"}}},
      "objectStorage": {"managed": {"image": {"repository": "quay.io/minio/minio"}},
                        "bucketInit": {"image": {"repository": "my-registry:443/mc.client"}}},
      "dependencyWait": {"image": {"repository": "busybox"}}}),
    ("external stores with dotted secret names and keys",
     {"postgresql": {**EXTERNAL_PG, "external": {
         "host": "db", "secretRef": {"name": "db.creds-1", "key": "pass.word_1"}}},
      "redis": {"mode": "External", "external": {
          "host": "redis", "secretRef": {"name": "r", "key": ".dotfile"}}},
      "objectStorage": {**EXTERNAL_S3, "external": {
          "endpoint": "s3.example.com:65535",
          "secretRef": {"name": "s3", "accessKeyKey": "a..b", "secretKeyKey": "-"}}}}),
    ("s3 endpoint on port 1", {"objectStorage": {**EXTERNAL_S3, "external": {
        "endpoint": "10.0.0.1:1", "secretRef": {"name": "s3"}}}}),
    ("postgres defaults of the image", {"postgresql": {"database": "postgres",
                                                       "user": "postgres"}}),
    ("no storage class", {"persistence": {"storageClassName": ""}}),
    ("dotted storage class", {"persistence": {"storageClassName": "fast-ssd.example.com"}}),
    ("scheduling at its edges", {
        "server": {"scheduling": {"topologySpreadConstraints": []}},  # no default spread
        "workers": {"scheduling": {
            "nodeSelector": {"example.com/" + "k" * 63: "v" * 63, "empty": ""},
            "tolerations": [
                {"operator": "Exists"},  # every taint
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 0},
                {"key": "dedicated", "value": "media", "effect": "NoSchedule"},
                *({"key": f"k{i}", "operator": "Equal", "value": ""} for i in range(29)),
            ],
            "topologySpreadConstraints": [
                _spread(whenUnsatisfiable="ScheduleAnyway", matchLabelKeys=["pod-template-hash"]),
                _spread(maxSkew=2**31 - 1, topologyKey="topology.kubernetes.io/zone",
                        minDomains=1, nodeAffinityPolicy="Ignore", nodeTaintsPolicy="Honor",
                        labelSelector={
                            "matchLabels": {c.LABEL_COMPONENT: "worker"},
                            "matchExpressions": [
                                {"key": "tier", "operator": "NotIn", "values": ["batch"]},
                                {"key": "x", "operator": "DoesNotExist"}]},
                        matchLabelKeys=["pod-template-hash"]),
            ],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In",
                                               "values": ["linux"]}]}]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "preference": {"matchExpressions": [
                            {"key": "disktype", "operator": "Exists"}]}}],
                },
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {c.LABEL_COMPONENT: "worker"}}}}]},
                "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "topology.kubernetes.io/zone", "namespaceSelector": {},
                     "labelSelector": {"matchLabels": {c.LABEL_COMPONENT: "server"}}}]},
            },
        }},
        "postgresql": {"managed": {"scheduling": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "db", "operator": "Equal", "value": "",
                             "effect": "PreferNoSchedule"}]}}},
        "redis": {"managed": {"scheduling": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {
                "matchFields": [{"key": "metadata.name", "operator": "In",
                                 "values": ["node-1"]}]}}]}}}}},
        "objectStorage": {"managed": {"scheduling": {"topologySpreadConstraints": [_spread()]}}},
    }),
]


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
@pytest.mark.parametrize("spec", [s for _, s in ACCEPTED], ids=[case for case, _ in ACCEPTED])
def test_good_edge_values_are_accepted(
    admin: KubeClient, crd: Any, namespace: str, version: str, spec: Obj
) -> None:
    dry_run_create(admin, namespace, in_version(spec, version), KINDS[version])


@pytest.mark.parametrize("spec", [s for _, s in ACCEPTED], ids=[case for case, _ in ACCEPTED])
def test_good_edge_values_render_children_the_api_server_accepts(
    admin: KubeClient, crd: Any, namespace: str, spec: Obj
) -> None:
    assert child_errors(admin, spec, namespace) == {}


@pytest.fixture
def priority_class(admin: KubeClient) -> Iterator[str]:
    """A PriorityClass to name (pods naming a missing one are refused at admission)."""
    name = f"thumbnails-edge-{uuid.uuid4().hex[:8]}.example.com"
    path = "/apis/scheduling.k8s.io/v1/priorityclasses"
    admin.request("POST", path, body={"apiVersion": "scheduling.k8s.io/v1",
                                      "kind": "PriorityClass", "metadata": {"name": name},
                                      "value": 1000})
    yield name
    admin.request("DELETE", f"{path}/{name}")


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
def test_a_priority_class_is_accepted_and_its_pods_too(
    admin: KubeClient, crd: Any, namespace: str, version: str, priority_class: str
) -> None:
    spec = {**_scheduling("workers", {"priorityClassName": priority_class}),
            **_scheduling("redis", {"priorityClassName": priority_class})}
    dry_run_create(admin, namespace, in_version(spec, version), KINDS[version])
    assert child_errors(admin, spec, namespace) == {}


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
def test_a_misspelt_affinity_field_is_refused_by_strict_clients(
    admin: KubeClient, crd: Any, namespace: str, version: str
) -> None:
    """The affinity kinds' content is kept as given, but their names are schema: kubectl
    (strict field validation by default) is told about a misspelt one instead of losing it."""
    body = in_version(_scheduling("server", {"affinity": {"nodeAfinity": {}}}), version)
    err = expect_api_error(lambda: admin.request(
        "POST", KINDS[version].path(namespace), body=body,
        query={"dryRun": "All", "fieldValidation": "Strict"}))
    assert 'unknown field "spec.server.scheduling.affinity.nodeAfinity"' in err.message, (
        err.message)


def test_valid_external_dependencies_are_accepted(
    admin: KubeClient, crd: Any, namespace: str
) -> None:
    spec = {
        "postgresql": {"enabled": False, "external": {
            "host": "db.example.com", "secretRef": {"name": "db"}}},
        "redis": {"enabled": False, "external": {"host": "redis.example.com"}},
        "minio": {"enabled": False, "external": {
            "endpoint": "s3.example.com:443", "secretRef": {"name": "s3"}}},
    }
    created = dry_run_create(admin, namespace, with_spec(spec))
    assert created["spec"]["postgresql"]["external"]["secretRef"]["key"] == "password"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 41, "may not be more than 40"),
        ("1st-service", "metadata.name must start with a letter"),
    ],
)
def test_invalid_names_are_rejected(
    admin: KubeClient, crd: Any, namespace: str, name: str, message: str
) -> None:
    err = expect_api_error(lambda: dry_run_create(admin, namespace, sample(name)))
    assert err.status == 422
    assert message in err.message


def test_the_longest_name_renders_children_the_api_server_accepts(
    admin: KubeClient, crd: Any, namespace: str
) -> None:
    """40 characters: `NAME-bucket-init-<10>` is 63, StatefulSet revision labels fit."""
    spec = {"server": {"service": {"nodePort": {"enabled": True, "port": 32767}}},
            "objectStorage": {"managed": {"console": {"nodePort": {"enabled": True,
                                                                   "port": 32766}}}}}
    name = "a" * 40
    dry_run_create(admin, namespace, v1_body(spec, name), THUMBNAIL_SERVICE)
    model = parse_spec(spec)
    owner = Owner(name, namespace, str(uuid.uuid4()))
    desired = build_desired_state(owner, model, ensure_credentials(model, None), {})
    for child in desired.children:
        dry_run_child(admin, child)
        if child["kind"] in ("Deployment", "StatefulSet", "Job"):
            dry_run_child(admin, pod_of(child))


# -- immutable fields may change while the StatefulSet they feed does not exist --------------

# Where each version keeps the fields (v1 first) and the status of the component they feed.
PATHS = {
    "v1": {
        "postgresql size": ("postgresql", "managed", "storage", "size"),
        "minio size": ("objectStorage", "managed", "storage", "size"),
        "database": ("postgresql", "database"),
        "persistence": ("persistence", "enabled"),
        "storage class": ("persistence", "storageClassName"),
        "worker replicas": ("workers", "replicas"),
        "postgresql status": "postgresql",
        "minio status": "objectStorage",
    },
    "v1alpha1": {
        "postgresql size": ("postgresql", "storage", "size"),
        "minio size": ("minio", "storage", "size"),
        "database": ("postgresql", "database"),
        "persistence": ("persistence", "enabled"),
        "storage class": ("persistence", "storageClassName"),
        "worker replicas": ("worker", "replicas"),
        "postgresql status": "postgresql",
        "minio status": "minio",
    },
}


def nested(path: tuple[str, ...], value: Any) -> Obj:
    body: Any = value
    for key in reversed(path):
        body = {key: body}
    return dict(body)


class Resource:
    """One ThumbnailService written in `version`; spec patches and reconciler-like status."""

    def __init__(self, admin: KubeClient, namespace: str, version: str, name: str) -> None:
        self.admin, self.namespace, self.version, self.name = admin, namespace, version, name
        self.kind = KINDS[version]
        self.paths = PATHS[version]
        body = v1_body({"persistence": {"enabled": True}}, name)
        # Paused: an operator left running by another test module must not write the status
        # this test plays the reconciler's part in.
        body["metadata"]["annotations"] = {c.PAUSE_ANNOTATION: "true"}
        body = body if version == "v1" else to_v1alpha1(body)
        admin.request("POST", self.kind.path(namespace), body=body)

    def set(self, field: str, value: Any) -> Obj:
        path = self.paths[field]
        assert isinstance(path, tuple)
        return self.admin.request(
            "PATCH", self.kind.path(self.namespace, self.name), body={"spec": nested(path, value)},
            content_type="application/merge-patch+json",
        )

    def get(self, field: str) -> Any:
        node: Any = self.admin.get(self.kind, self.namespace, self.name)
        assert node is not None
        for key in ("spec", *self.paths[field]):
            node = node.get(key)
        return node

    def refused(self, field: str, value: Any) -> str:
        err = expect_api_error(lambda: self.set(field, value))
        assert err.status == 422, err.message
        return err.message

    def report(self, postgresql: str, minio: str) -> None:
        """What the reconciler writes: a component's message, `not created yet` while its
        StatefulSet does not exist."""
        def component(message: str) -> Obj:
            ready = message != NOT_CREATED_MESSAGE
            return {"ready": ready, "replicas": int(ready), "readyReplicas": int(ready),
                    "message": message}

        components = {self.paths["postgresql status"]: component(postgresql),
                      self.paths["minio status"]: component(minio)}
        self.admin.patch_status(self.kind, self.namespace, self.name, {"components": components})


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
def test_immutable_fields_change_only_while_their_statefulset_does_not_exist(
    admin: KubeClient, crd: Any, namespace: str, version: str
) -> None:
    tns = Resource(admin, namespace, version, "frozen")
    # Never reconciled (no status): nothing was created, everything may still change.
    tns.set("postgresql size", "20Gi")
    tns.set("database", "jobs")
    # The reconciler reports both StatefulSets missing (e.g. the API server refused them).
    tns.report(postgresql=NOT_CREATED_MESSAGE, minio=NOT_CREATED_MESSAGE)
    tns.set("postgresql size", "30Gi")
    tns.set("minio size", "40Gi")
    tns.set("persistence", False)
    tns.set("persistence", True)
    tns.set("storage class", "fast")
    # PostgreSQL's StatefulSet exists now, MinIO's still does not.
    tns.report(postgresql="1/1 ready", minio=NOT_CREATED_MESSAGE)
    assert "storage size is immutable once the PostgreSQL StatefulSet exists" in tns.refused(
        "postgresql size", "50Gi")
    assert "postgresql.database is immutable" in tns.refused("database", "other")
    assert "persistence.enabled is immutable" in tns.refused("persistence", False)
    assert "persistence.storageClassName is immutable" in tns.refused("storage class", "slow")
    assert "persistence.storageClassName is immutable" in tns.refused("storage class", None)
    tns.set("minio size", "60Gi")
    # Both exist: nothing that feeds them changes any more; everything else still may.
    tns.report(postgresql="1/1 ready", minio="rolling out: 0/1 updated, 0/1 ready")
    message = tns.refused("minio size", "70Gi")
    assert "storage size is immutable once the MinIO StatefulSet exists" in message
    assert f"may change only while status.components.{PATHS[version]['minio status']}" \
           f".message is '{NOT_CREATED_MESSAGE}'" in message
    tns.set("postgresql size", "30Gi")  # unchanged: fine
    tns.set("worker replicas", 3)
    assert [tns.get(f) for f in ("postgresql size", "minio size", "database", "storage class")] \
        == ["30Gi", "60Gi", "jobs", "fast"]


# -- the same with the real reconciler: a StatefulSet refused, fixed, then created ------------


def test_a_storage_size_is_fixable_until_the_statefulset_is_created(
    admin: KubeClient, operator: InProcessOperator, namespace: str
) -> None:
    """The issue's story end to end: the StatefulSet cannot be created (here a quota refuses
    it), the reconciler says `not created yet`, the size can still be corrected; once the
    StatefulSet exists with it, the size is frozen."""
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": {"name": "no-statefulsets", "namespace": namespace},
             "spec": {"hard": {"count/statefulsets.apps": "0"}}}
    admin.request("POST", f"/api/v1/namespaces/{namespace}/resourcequotas", body=quota)
    body = v1_body({"persistence": {"enabled": True}}, "blocked")
    admin.request("POST", THUMBNAIL_SERVICE.path(namespace), body=body)

    def component(name: str) -> Obj | None:
        cr = admin.get(THUMBNAIL_SERVICE, namespace, "blocked") or {}
        return ((cr.get("status") or {}).get("components") or {}).get(name)

    def postgresql_missing() -> bool:
        state = component("postgresql")
        return state is not None and state["message"] == NOT_CREATED_MESSAGE

    wait_for(postgresql_missing, timeout=60, what="the reconciler reports no StatefulSet")
    size = ("spec", "postgresql", "managed", "storage", "size")
    fix = nested(size[1:], "2Gi")
    admin.request("PATCH", THUMBNAIL_SERVICE.path(namespace, "blocked"), body={"spec": fix},
                  content_type="application/merge-patch+json")
    admin.request("DELETE", f"/api/v1/namespaces/{namespace}/resourcequotas/no-statefulsets")

    def created() -> Obj | None:
        # Each write to the resource triggers a pass; the retry backoff may be long.
        admin.request("PATCH", THUMBNAIL_SERVICE.path(namespace, "blocked"),
                      body={"metadata": {"annotations": {"test/poke": uuid.uuid4().hex}}},
                      content_type="application/merge-patch+json")
        sts = admin.get(STATEFUL_SET, namespace, "blocked-postgresql")
        state = component("postgresql")
        if sts is None or state is None or state["message"] == NOT_CREATED_MESSAGE:
            return None
        return sts

    sts = wait_for(created, timeout=90, interval=2.0, what="the StatefulSet created")
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert claim == "2Gi"
    err = expect_api_error(lambda: admin.request(
        "PATCH", THUMBNAIL_SERVICE.path(namespace, "blocked"),
        body={"spec": nested(size[1:], "3Gi")}, content_type="application/merge-patch+json"))
    assert err.status == 422
    assert "storage size is immutable once the PostgreSQL StatefulSet exists" in err.message


# -- deletion protection (api/policy.py: a ValidatingAdmissionPolicy) -------------------------


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
def test_protected_resource_refuses_delete_until_protection_is_off(
    admin: KubeClient, crd: Any, namespace: str, version: str
) -> None:
    kind, name = KINDS[version], f"kept-{version}"
    admin.request("POST", kind.path(namespace),
                  body=in_version({"deletionProtection": True}, version, name))
    refused = expect_api_error(lambda: admin.request("DELETE", kind.path(namespace, name)))
    assert refused.status == 403, refused.message
    # The message says what to run, and the command it gives works as written.
    assert f"ThumbnailService {namespace}/{name} has spec.deletionProtection: true" in (
        refused.message)
    command = refused.message.split("first run: ", 1)[1]
    assert command == (f"kubectl patch thumbnailservice {name} -n {namespace} --type merge "
                       """-p '{"spec":{"deletionProtection":false}}'"""), command
    # A collection delete (`kubectl delete tns --all`) is refused item by item too.
    expect_api_error(lambda: admin.request("DELETE", kind.path(namespace)))
    assert admin.get(kind, namespace, name) is not None

    admin.request("PATCH", kind.path(namespace, name),
                  body={"spec": {"deletionProtection": False}},
                  content_type="application/merge-patch+json")
    admin.request("DELETE", kind.path(namespace, name))
    wait_for(lambda: admin.get(kind, namespace, name) is None, timeout=30,
             what="the unprotected resource gone")


# -- the size of autoscaled workers (controller/autoscaling.py) -------------------------------


@pytest.mark.parametrize("version", ["v1", "v1alpha1"])
def test_kubectl_scale_works_by_hand_and_is_refused_while_autoscaled(
    admin: KubeClient, crd: Any, namespace: str, version: str
) -> None:
    kind, name = KINDS[version], f"scaled-{version}"
    workers = "workers" if version == "v1" else "worker"
    scale = f"{kind.path(namespace, name)}/scale"
    admin.request("POST", kind.path(namespace), body=in_version({}, version, name))

    def scale_to(replicas: int) -> Obj:
        return admin.request("PATCH", scale, body={"spec": {"replicas": replicas}},
                             content_type="application/merge-patch+json")

    scale_to(5)  # what `kubectl scale --replicas 5` sends
    assert admin.get(kind, namespace, name)["spec"][workers]["replicas"] == 5
    admin.request("PATCH", kind.path(namespace, name),
                  body={"spec": {workers: {"autoscaling": {"maxReplicas": 4}}}},
                  content_type="application/merge-patch+json")
    refused = expect_api_error(lambda: scale_to(2))
    assert refused.status == 422, refused.message
    assert "replicas cannot change while autoscaling is set" in refused.message
    # Other edits of the workers pass, and dropping autoscaling frees the size again.
    admin.request("PATCH", kind.path(namespace, name),
                  body={"spec": {workers: {"autoscaling": None, "replicas": 1}}},
                  content_type="application/merge-patch+json")
    scale_to(3)
    assert admin.get(kind, namespace, name)["spec"][workers]["replicas"] == 3
