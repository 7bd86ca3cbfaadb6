"""PostgreSQL URLs as `[state] url` takes them, and their redacted form: the only form
any message, log line or `check-config` output ever shows. Pure string work; never
imports psycopg.

A URL is split here exactly as libpq splits it (`conninfo_uri_parse_options` and
`conninfo_uri_parse_params` in libpq's fe-connect.c), not as `urllib` does: libpq
ends the user part at the first `@` that comes before any `/`, so a `?` or `#` in a
password is the password's, and it knows no fragment, so a `#` in a parameter is the
parameter's. `urlsplit` cuts both there, and would show the rest of the password.
`split`, and so `redact`, `has_password` and `secrets`, must never disagree with
libpq about where a password is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from watcher.redaction import MARK

SCHEMES = ("postgresql", "postgres")
MASK = MARK

# libpq's connection parameters that hold a secret (libpq's "Parameter Key Words").
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})
# libpq refuses a '%' that is not followed by two hex digits ("invalid percent-encoded
# token"), and quotes the token, a password perhaps, in its error.
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class DatabaseUrl:
    """A URL cut where libpq cuts it; every part as written (still percent-encoded)."""

    scheme: str
    user: str | None
    """The user part before `:`; None: the URL has no `user@`."""
    password: str | None
    """After the user's `:`, up to the `@`; None: no `:` in the user part."""
    hosts: str
    """`host[:port][,...]`, an IPv6 address in brackets."""
    path: str
    """`/dbname`, or empty."""
    query: str | None
    """After the first `?` that follows the hosts; None: no `?`."""

    @property
    def parameters(self) -> list[tuple[str, str, str | None]]:
        """Each query parameter as (key decoded, key as written, value as written or
        None without an `=`). libpq decodes a key before it looks it up:
        `pass%77ord` is `password`."""
        found: list[tuple[str, str, str | None]] = []
        for piece in (self.query or "").split("&"):
            if piece:
                key, equals, value = piece.partition("=")
                found.append((unquote(key), key, value if equals else None))
        return found


def split(url: str) -> DatabaseUrl:
    """`url` (which starts with `scheme://`) cut into its parts as libpq cuts it."""
    scheme, _, rest = url.partition("://")
    user = password = None
    # The user part is everything before the first '@', if one comes before any '/'.
    end = next((i for i, char in enumerate(rest) if char in "@/"), len(rest))
    if rest[end : end + 1] == "@":
        userinfo, rest = rest[:end], rest[end + 1 :]
        user, colon, after = userinfo.partition(":")
        password = after if colon else None
    # The hosts end at the first '/' or '?' outside an IPv6 address's brackets.
    i = 0
    while i < len(rest) and rest[i] not in "/?":
        if rest[i] == "[":
            closing = rest.find("]", i)
            i = len(rest) if closing < 0 else closing
        i += 1
    hosts, rest = rest[:i], rest[i:]
    path, mark, query = rest.partition("?")
    return DatabaseUrl(scheme, user, password, hosts, path, query if mark else None)


def url_problem(url: str) -> str | None:
    """Why `url` is not a PostgreSQL URL the store can use; None when it is one.
    Never quotes the URL (it may carry a password)."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in SCHEMES:
        return "must start with postgresql:// or postgres:// (a libpq connection URL)"
    parts = split(url)
    if "@" in parts.hosts:
        return (
            "has an '@' after its user part: libpq ends user and password at the first "
            "'@', so write an '@' in the password or user name as %40"
        )
    if parts.user is not None and "?" in parts.user:
        return (
            "has a '?' before its '@': libpq reads everything before the first '@' as "
            "user and password, so write an '@' in a parameter as %40"
        )
    if parts.hosts.count("[") != parts.hosts.count("]"):
        return "is not a valid URL: an IPv6 host's '[' has no ']'"
    written = [parts.user, parts.password, parts.hosts, parts.path, parts.query]
    if any(_STRAY_PERCENT.search(part) for part in written if part):
        return (
            "has a '%' that does not start a percent-encoded byte: write a '%' in the "
            "password (or any part) as %25"
        )
    for _, key, value in parts.parameters:
        if not key or value is None or "=" in value:
            return (
                "has a parameter that is not key=value: write an '=' or '&' in a "
                "value as %3D or %26"
            )
    return None


def has_password(url: str) -> bool:
    """Whether `url` carries a password, in its user part or as a query parameter."""
    parts = split(url)
    return parts.password is not None or any(
        key in _SECRET_PARAMETERS for key, _, _ in parts.parameters
    )


def secrets(url: str) -> list[str]:
    """The password(s) in `url`, as written and decoded: what to scrub from any text
    that might quote them (a driver's error message)."""
    parts = split(url)
    found = [parts.password or ""]
    found += [value or "" for key, _, value in parts.parameters if key in _SECRET_PARAMETERS]
    return [
        variant
        for secret in found
        if secret
        for variant in dict.fromkeys((secret, unquote(secret)))
    ]


def redact(url: str) -> str:
    """`url` with its password (user part, `password=`, `sslpassword=`) masked; user,
    hosts, port, database and other parameters kept as written, for messages that must
    say which database they mean."""
    if "://" not in url:
        return "(not a database URL)"
    parts = split(url)
    # Two mistakes `url_problem` refuses, and still shown masked: a query (a password
    # in it perhaps) read as the user part, which leaves the rest of that password as
    # the host; an unencoded '@' in the password, which leaves its rest in the hosts.
    if parts.user is not None and "?" in parts.user:
        userinfo, hosts = "", MASK
    else:
        userinfo = ""
        if parts.user is not None:
            userinfo = parts.user + (f":{MASK}" if parts.password is not None else "") + "@"
        hosts = parts.hosts
        if "@" in hosts:
            hosts = f"{MASK}@{hosts.rpartition('@')[2]}"
    shown = f"{parts.scheme}://{userinfo}{hosts}{parts.path}"
    if parts.query is None:
        return shown
    query = "&".join(
        f"{written}={MASK}"
        if key in _SECRET_PARAMETERS
        else written + ("" if value is None else f"={value}")
        for key, written, value in parts.parameters
    )
    return f"{shown}?{query}"
