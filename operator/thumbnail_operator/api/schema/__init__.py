"""The CustomResourceDefinition, generated from Python so versions can share definitions."""
