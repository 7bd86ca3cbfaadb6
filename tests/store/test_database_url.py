"""`watcher.store.database_url` finds a URL's password exactly where libpq finds it, so
that no character in a password (`?`, `#`, `:`, an encoded `@`) shows any of it in
the redacted URL. libpq itself (psycopg's `conninfo_to_dict`) is the judge."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from watcher.store import database_url

MASK = "[REDACTED]"

# (url, what `redact` shows); each password contains "Secret" so no shown text hides it.
URLS = [
    (
        "postgresql://ibwatch:Xy?9Secret@db:5432/ibwatch",
        "postgresql://ibwatch:[REDACTED]@db:5432/ibwatch",
    ),
    ("postgresql://ibwatch:Xy#9Secret@db/ibwatch", "postgresql://ibwatch:[REDACTED]@db/ibwatch"),
    ("postgresql://ibwatch:a%40bSecret@db/ibwatch", "postgresql://ibwatch:[REDACTED]@db/ibwatch"),
    ("postgresql://ibwatch:Xy:9Secret@db/ibwatch", "postgresql://ibwatch:[REDACTED]@db/ibwatch"),
    (
        "postgresql://ibwatch@db/ibwatch?sslmode=require",
        "postgresql://ibwatch@db/ibwatch?sslmode=require",
    ),
    ("postgresql://db/ibwatch", "postgresql://db/ibwatch"),
    (
        "postgresql://ibwatch:Xy?9Secret@/ibwatch?host=/run/postgresql",
        "postgresql://ibwatch:[REDACTED]@/ibwatch?host=/run/postgresql",
    ),
    (
        "postgresql:///ibwatch?host=/run/postgresql&password=Xy#9Secret&sslmode=disable",
        "postgresql:///ibwatch?host=/run/postgresql&password=[REDACTED]&sslmode=disable",
    ),
    (
        "postgres://[::1]:5432/x?pass%77ord=Xy9Secret",
        "postgres://[::1]:5432/x?pass%77ord=[REDACTED]",
    ),
]


@pytest.mark.parametrize(("url", "shown"), URLS)
def test_a_password_is_found_where_libpq_finds_it_and_never_shown(url: str, shown: str) -> None:
    password = conninfo_to_dict(url).get("password")

    assert database_url.url_problem(url) is None
    assert database_url.redact(url) == shown
    assert database_url.has_password(url) == (password is not None)
    if password is not None:
        assert "Secret" not in database_url.redact(url)
        assert password in database_url.secrets(url), "scrubbed from a driver's messages"
    else:
        assert database_url.secrets(url) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        # libpq reads the password "a" and the host "bSecret@db": the rest would show.
        ("postgresql://ibwatch:a@bSecret@db/x", "write an '@' in the password or user name as %40"),
        # libpq reads "db?password=a" as the user name.
        ("postgresql://db?password=a@bSecret/x", "write an '@' in a parameter as %40"),
        (
            "postgresql://ibwatch:100%Secret@db/x",
            "write a '%' in the password (or any part) as %25",
        ),
        ("postgresql://db/x?password=a=Secret", "write an '=' or '&' in a value as %3D or %26"),
        ("postgresql://ibwatch:Secret@[::1/x", "an IPv6 host's '[' has no ']'"),
    ],
)
def test_a_url_libpq_would_read_otherwise_than_meant_is_refused_unquoted(
    url: str, problem: str
) -> None:
    found = database_url.url_problem(url)
    assert found is not None
    assert problem in found
    assert "Secret" not in found
    assert "Secret" not in database_url.redact(url), "even a refused URL is shown masked"
