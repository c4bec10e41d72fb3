"""The signature on every delivery, Stripe's scheme: `Webhook-Signature: t=TIMESTAMP,
v1=HEX[,v1=HEX]`, where HEX = HMAC-SHA256(secret, f"{TIMESTAMP}.{BODY}"), one v1 per
configured secret (during a rotation a receiver may know only one of them). The timestamp is
signed too, so a receiver rejects replays older than it tolerates.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SIGNATURE_HEADER = "Webhook-Signature"


def signature_header(secrets: Sequence[bytes], timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    parts += [f"v1={hmac.new(s, signed, hashlib.sha256).hexdigest()}" for s in secrets]
    return ",".join(parts)


def verify(header: str, secret: bytes, body: bytes, now: int, tolerance_seconds: int = 300
           ) -> bool:
    """What a receiver does (and the tests): a v1 that matches, a timestamp not too old."""
    fields = [part.partition("=") for part in header.split(",")]
    stamps = [value for name, _, value in fields if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, _, value in fields if name == "v1")
