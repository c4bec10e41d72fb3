"""Real test substrate: PostgreSQL, Redis, MinIO and a Kubernetes control plane as local processes.

Every component starts on free loopback ports in a temporary directory, waits until it
really answers, and is torn down with its whole process group. Used by the pytest
fixtures in ``tests/conftest.py`` and by ``thumbnail-substrate`` (``make dev``).
"""

from thumbnail_substrate.errors import SubstrateError

__all__ = ["SubstrateError"]
