"""The reconcile side of the operator: kopf handlers, the work queue, one pass per resource,
status, drift and rollout gating."""
