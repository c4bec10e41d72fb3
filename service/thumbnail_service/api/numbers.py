"""The one parser for every number a request carries (form fields, query parameters,
headers): ASCII digits, nothing else.

Python's own tests disagree with each other and with HTTP: "²".isdigit() is True yet
int("²") raises (a 500), int("٣") is 3 and int(" +1_0 ") is 10 (silently accepted), and
pydantic's lax int takes "1_0", "+3" and "3.0". On the wire a number is [0-9]+.
"""

from __future__ import annotations

from pydantic import BeforeValidator

MAX_DIGITS = 18  # far beyond any limit we check, and int() of it is instant


def parse_ascii_int(text: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`text` (surrounding spaces and tabs ignored) as a whole number in ASCII digits within
    [minimum, maximum]; ValueError otherwise."""
    digits = text.strip(" \t")
    if not (0 < len(digits) <= MAX_DIGITS and digits.isascii() and digits.isdigit()):
        raise ValueError(f"{text!r} is not a whole number written in digits 0-9")
    value = int(digits)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{value} is outside {minimum}..{maximum}")
    return value


def _ascii_int(value: object) -> object:
    # Query and header values arrive as str; defaults (already int) pass through.
    return parse_ascii_int(value) if isinstance(value, str) else value


# For FastAPI parameters, after the Query()/Header() (which keeps minimum/maximum in the
# OpenAPI schema): Annotated[int, Query(ge=1, le=100), ASCII_INT].
ASCII_INT = BeforeValidator(_ascii_int)
