"""Kubernetes operator that reconciles ThumbnailService resources into the whole stack."""
