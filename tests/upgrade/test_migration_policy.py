"""Schema migrations must be safe while old and new pods overlap (expand, then contract).

During a rolling upgrade the new server's init container migrates the database while old
server and worker pods still run against it. A migration is safe then only if the old code
keeps working on the new schema: add tables, nullable columns, columns with defaults,
indexes (concurrently or small), enum values; never drop, rename or retype what the old code
uses in the same release. Removing things is a later "contract" migration, shipped once no
pod of the previous release can still run; it must say so with a `-- contract:` comment.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

# Statements old pods may break on, with the reason shown to the author.
UNSAFE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bDROP\s+(TABLE|COLUMN|TYPE|VIEW|FUNCTION)\b", re.I),
     "drops something old pods may still use"),
    (re.compile(r"\bRENAME\b", re.I), "renames something old pods still use by name"),
    (re.compile(r"\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b", re.I),
     "changes a column type under old pods"),
    (re.compile(r"\bSET\s+NOT\s+NULL\b", re.I), "old pods may still insert NULLs"),
    (re.compile(r"\bADD\s+COLUMN\s+(?:(?!DEFAULT)[^,;])*\bNOT\s+NULL\b(?:(?!DEFAULT)[^,;])*[,;]",
                re.I),
     "a NOT NULL column without a default breaks old pods' INSERTs"),
]
CONTRACT = re.compile(r"^--\s*contract:", re.I | re.M)


def violations(sql: str) -> list[str]:
    """Why `sql` is unsafe with old and new pods overlapping (empty: safe)."""
    if CONTRACT.search(sql):
        return []
    code = re.sub(r"--[^\n]*", "", sql)
    return [reason for pattern, reason in UNSAFE if pattern.search(code)]


def shipped() -> list[tuple[str, str]]:
    files = resources.files("thumbnail_service.migrations").iterdir()
    return sorted((f.name, f.read_text()) for f in files if f.name.endswith(".sql"))


@pytest.mark.parametrize(("name", "sql"), shipped())
def test_shipped_migrations_are_safe_with_overlapping_pods(name: str, sql: str) -> None:
    assert violations(sql) == [], name


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE jobs DROP COLUMN error;",
        "ALTER TABLE jobs RENAME COLUMN error TO failure;",
        "ALTER TABLE jobs ALTER COLUMN attempts TYPE bigint;",
        "ALTER TABLE jobs ALTER COLUMN error SET NOT NULL;",
        "ALTER TABLE jobs ADD COLUMN owner text NOT NULL;",
        "DROP TABLE thumbnails;",
    ],
)
def test_the_checker_rejects_unsafe_statements(sql: str) -> None:
    assert violations(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "ALTER TABLE jobs ADD COLUMN owner text;",
        "ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;",
        "CREATE INDEX CONCURRENTLY jobs_owner_idx ON jobs (owner);",
        "ALTER TYPE job_status ADD VALUE 'cancelled';",
        "-- contract: 0007 stopped reading legacy_key (release 1.4)\n"
        "ALTER TABLE jobs DROP COLUMN legacy_key;",
        "-- DROP TABLE in a comment is fine\nCREATE TABLE t (id int);",
    ],
)
def test_the_checker_accepts_expand_steps_and_marked_contractions(sql: str) -> None:
    assert violations(sql) == []
