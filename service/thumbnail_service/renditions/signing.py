"""URL signatures, the way imgproxy computes them, so its client libraries sign ours too.

signature = base64url(HMAC-SHA256(key, salt + path)) without padding, where `path` is
everything after the signature segment ("/OPTIONS/JOB_ID"), and key and salt are given in
hex. Several pairs verify at once, so a new pair is added before the old one is dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SigningPair:
    key: bytes
    salt: bytes

    @classmethod
    def from_hex(cls, key: str, salt: str) -> SigningPair:
        return cls(bytes.fromhex(key), bytes.fromhex(salt))


def sign(pair: SigningPair, path: str) -> str:
    digest = hmac.new(pair.key, pair.salt + path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(signature: str, path: str, pairs: Sequence[SigningPair]) -> bool:
    """True if any pair signs `path` as `signature` (each compared in constant time)."""
    offered = signature.encode()
    return any([hmac.compare_digest(offered, sign(p, path).encode()) for p in pairs])


def signed_path(pair: SigningPair, options: str, job_id: str) -> str:
    """The path a client requests: /r/SIGNATURE/OPTIONS/JOB_ID."""
    path = f"/{options}/{job_id}"
    return f"/r/{sign(pair, path)}{path}"
