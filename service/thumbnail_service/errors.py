"""Service-level errors shared by the API and the worker (imaging has its own)."""

from __future__ import annotations


class DependencyUnavailable(Exception):
    """PostgreSQL, Redis or MinIO cannot be reached: the API answers 503, the worker retries."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency} unavailable: {detail}")
        self.dependency = dependency
        self.detail = detail
