"""The operator's install, written once: `python -m thumbnail_operator.install` (`make
manifests`) generates the kustomize manifests (cluster-wide and namespaced), the Helm chart
and operator/rbac.yaml from `objects`, `rbac` and `values` (see `files`)."""
