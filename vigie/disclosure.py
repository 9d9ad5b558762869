"""What an error body must not show: stack traces, source paths, SQL errors (shared by hardening and fuzzing)."""
from __future__ import annotations

import re

# a database's own complaint: also the sign that a payload reached a query unescaped
SQL_PATTERNS = [re.compile(p) for p in (
    r"(?i)\bSQL(STATE| syntax)\b", r"(?i)psycopg2?\.|sqlalchemy\.exc|sqlite3\.\w+Error", r"(?i)ORA-\d{5}",
    r"(?i)\bsyntax error at or near\b", r"(?i)you have an error in your sql syntax",
    r"(?i)unterminated quoted string")]
PATTERNS = [re.compile(p) for p in (
    r"Traceback \(most recent call last\)", r"\bat [\w$.]+\([\w]+\.java:\d+\)", r"File \"[^\"]+\", line \d+",
    r"(?i)stack ?trace")] + SQL_PATTERNS


def disclosed(text: str, patterns=PATTERNS) -> str | None:
    """The first internal detail found in `text`, or None."""
    for pattern in patterns:
        found = pattern.search(text)
        if found:
            return found.group(0)
    return None


def sql_error(text: str) -> str | None:
    return disclosed(text, SQL_PATTERNS)
