"""Admission policies shipped with the CRD (manifests/policies/, the chart's policies.yaml).

Deletion protection is enforced by the API server itself, with a ValidatingAdmissionPolicy,
not by the operator: a finalizer would accept the `kubectl delete` and leave the resource
Terminating, while a policy refuses it at once with a message that says how to proceed, and
works whether or not the operator runs. Both served versions keep the field at
`spec.deletionProtection`, so one expression covers them.
"""

from __future__ import annotations

from typing import Any

from thumbnail_operator import constants as c

Obj = dict[str, Any]

DELETION_PROTECTION = f"{c.PLURAL}.{c.GROUP}-deletion-protection"
# The shell command in the message: single-quoted JSON inside a double-quoted CEL string.
_PATCH_IN_CEL = '{\\"spec\\":{\\"deletionProtection\\":false}}'


def deletion_protection_policy() -> Obj:
    name, namespace = "oldObject.metadata.name", "oldObject.metadata.namespace"
    message = (
        f"'ThumbnailService ' + {namespace} + '/' + {name} + ' has spec.deletionProtection: "
        "true, so it cannot be deleted (nor its namespace). To delete it, first run: kubectl "
        f"patch thumbnailservice ' + {name} + ' -n ' + {namespace} + \" --type merge -p "
        f"'{_PATCH_IN_CEL}'\""
    )
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": DELETION_PROTECTION, "labels": {c.LABEL_PART_OF: c.PART_OF}},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": [c.GROUP],
                    "apiVersions": ["*"],
                    "operations": ["DELETE"],
                    "resources": [c.PLURAL],
                }],
            },
            "validations": [{
                "expression": "!oldObject.?spec.?deletionProtection.orValue(false)",
                "messageExpression": message,
                "reason": "Forbidden",
            }],
        },
    }


def deletion_protection_binding() -> Obj:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": DELETION_PROTECTION, "labels": {c.LABEL_PART_OF: c.PART_OF}},
        "spec": {"policyName": DELETION_PROTECTION, "validationActions": ["Deny"]},
    }


def documents() -> list[Obj]:
    """Every admission object the install ships (manifests/policies/, the Helm chart)."""
    return [deletion_protection_policy(), deletion_protection_binding()]
