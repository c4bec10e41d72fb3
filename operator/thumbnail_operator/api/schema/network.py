"""OpenAPI schema of `spec.networkPolicy` (builders/network.py), the same in both versions.

`apiPeers` are NetworkPolicy peers as Kubernetes defines them, fully typed here with the
API server's own checks (an ipBlock is alone in its peer; a CIDR parses; its exceptions lie
inside it), so a resource whose policy would be refused is refused itself.
"""

from __future__ import annotations

from thumbnail_operator.api.schema.openapi import array, boolean, obj, rule, string
from thumbnail_operator.api.schema.scheduling import label_selector
from thumbnail_operator.api.v1 import DEFAULTS

_IP_BLOCK = obj(
    "Addresses outside the cluster's pods (a networking/v1 IPBlock).",
    {
        "cidr": string("CIDR, e.g. 192.0.2.0/24.", max_length=64,
                       rules=[rule("isCIDR(self)", "ipBlock.cidr: not a CIDR such as "
                                   "192.0.2.0/24")]),
        "except": array("CIDRs inside `cidr` left out.",
                        string("CIDR.", max_length=64,
                               rules=[rule("isCIDR(self)", "ipBlock.except: not a CIDR")]),
                        max_items=32),
    },
    required=["cidr"],
    rules=[rule("!has(self.except) || self.except.all(e, cidr(self.cidr).containsCIDR(e) && "
                "cidr(e).prefixLength() > cidr(self.cidr).prefixLength())",
                "ipBlock.except must lie strictly inside ipBlock.cidr")],
)

_PEER = obj(
    "Who may connect (a networking/v1 NetworkPolicyPeer): pods by label, in this namespace or "
    "in the namespaces `namespaceSelector` matches, or addresses (`ipBlock`, alone).",
    {
        "podSelector": label_selector("Pods with these labels (a metav1.LabelSelector)."),
        "namespaceSelector": label_selector(
            "Namespaces with these labels (a metav1.LabelSelector; empty: every namespace)."),
        "ipBlock": _IP_BLOCK,
    },
    rules=[
        rule("has(self.podSelector) || has(self.namespaceSelector) || has(self.ipBlock)",
             "an apiPeers entry needs podSelector, namespaceSelector or ipBlock"),
        rule("!has(self.ipBlock) || !(has(self.podSelector) || has(self.namespaceSelector))",
             "ipBlock cannot be combined with podSelector or namespaceSelector in one entry"),
    ],
)

NETWORK_POLICY = obj(
    "NetworkPolicies (on by default): PostgreSQL, Redis and MinIO accept connections only "
    "from this service's own pods and open none; the API accepts them from `apiPeers`.",
    {
        "enabled": boolean("Create the NetworkPolicies (needs a network plugin that enforces "
                           "them; without one they change nothing).",
                           default=DEFAULTS.network_policy.enabled),
        "apiPeers": array("Who may reach the API port (NetworkPolicy peers, e.g. the ingress "
                          "controller's namespace); empty: anyone. Include the operator's "
                          "namespace: it asks the API for the worker count.",
                          _PEER, max_items=16, default=[]),
    },
    default={},
)
