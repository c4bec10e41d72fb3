"""The ThumbnailService API: the typed v1 model (the hub), its schemas, the CRD and the
pure conversion from and to the deprecated v1alpha1."""
