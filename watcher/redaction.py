"""Hide secrets-looking strings in text: the lines of a build's log that an event or
a result carries, and every value of the watcher's own log lines (`watcher.logs`).

Best effort, by shape. It hides:

- the value of a pair whose key looks secret (`password=...`, `DB_PASSWORD: ...`,
  `"client_secret": "..."`, `--api-key ...`, `aws_secret_access_key ...`): the key
  stays, the value becomes `[REDACTED]` (an `Authorization: Bearer ...` keeps its
  scheme);
- `Bearer` tokens, AWS access key ids (AKIA/ASIA), GitHub (`ghp_`, `github_pat_`),
  Slack (`xoxb-`) and Standard Webhooks (`whsec_`) secrets, JWTs, the password of a
  URL (`https://user:pass@host`), the token path of Slack and Discord webhook URLs;
- the body of a PEM private key block, also when the text starts or ends inside one
  (a log tail cut in the middle of a key).

It does not catch a secret with no key and no known shape (a password alone on a
line, `mysql -phunter2`), one under a key it does not know, one split across two
strings, nor an encoded one (base64, URL-encoded). Within an unquoted value it stops
at whitespace, a quote and `&` (a URL's next parameter), so the rest of a password
holding those shows. It keeps false positives low by judging whole key names
(`token_count`, `password_file`, `nextToken` and `secret_arn` are not secrets) and
by requiring the length and alphabet of each token shape.

It must never raise on any string, and redacting twice changes nothing more than
once (tests/test_redaction.py checks both with hypothesis).
"""

from __future__ import annotations

import re

__all__ = ["MARK", "redact", "secret_name"]

MARK = "[REDACTED]"

# ----------------------------------------------------------------- key names

# The last word of a key that names a secret on its own (`DB_PASS`, `MYSQL_PWD`), and
# endings that do even glued to another word (`PGPASSWORD`, `mytoken`, `apikey`).
_SECRET_WORDS = frozenset({"pass", "pwd", "sig", "signature"})
_SECRET_ENDINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "authorization",
)
# `X_key` is a secret for these X only: `key`, `cache_key` or `sort_key` are not.
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "private", "secret", "signing", "encryption", "master", "client"}
)
# Tokens that are not secrets: pagination and idempotency tokens.
_HARMLESS_TOKENS = frozenset(
    {"next", "page", "continuation", "pagination", "client", "idempotency"}
)
# The shell's working directory, in every environment dump.
_NOT_SECRET = frozenset({"PWD", "OLDPWD"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def secret_name(name: str) -> bool:
    """Whether a key called `name` holds a secret, judged by its last words:
    `DB_PASSWORD`, `clientSecret`, `x-api-key`, `aws_secret_access_key`, `SessionToken`
    do; `password_file`, `secret_env`, `token_count`, `nextToken`, `cache_key` do not."""
    if name in _NOT_SECRET:
        return False
    words = [w.lower() for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORD.findall(part)]
    if not words:
        return False
    last = words[-1]
    before = words[-2] if len(words) > 1 else ""
    if last == "token" and before in _HARMLESS_TOKENS:
        return False
    if last == "key":
        return before in _KEY_QUALIFIERS
    return last in _SECRET_WORDS or last.endswith(_SECRET_ENDINGS)


# ------------------------------------------------------------------- shapes

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # AWS access key ids: AKIA (long-term) or ASIA (temporary) and 16 more.
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), rf"\1{MARK}"),
    # GitHub: classic tokens (ghp_, gho_, ghu_, ghs_, ghr_ and 36 characters) and
    # fine-grained personal access tokens.
    (re.compile(r"\b(gh[pousr])_[A-Za-z0-9]{36,}\b"), rf"\1_{MARK}"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), f"github_pat_{MARK}"),
    # Slack tokens: bot, user, app-level, refresh, ...
    (re.compile(r"\b(xox[abprs])-[A-Za-z0-9-]{10,}"), rf"\1-{MARK}"),
    # Standard Webhooks signing secrets.
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{4,}"), f"whsec_{MARK}"),
    # JSON Web Tokens (an OIDC token in a CI log): header.payload.signature.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MARK),
    # Webhook URLs whose path is the credential.
    (
        re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+"),
        rf"\1{MARK}",
    ),
    (re.compile(r"(discord(?:app)?\.com/api/webhooks/)[0-9]+/[A-Za-z0-9_-]+"), rf"\1{MARK}"),
    # A bearer token without a key before it: RFC 6750's b64token, long enough not to
    # be a word ("Bearer authentication").
    (re.compile(r"\b(Bearer[ \t]+)[A-Za-z0-9._~+/-]{16,}=*", re.IGNORECASE), rf"\1{MARK}"),
    # The password of a URL's userinfo; the user stays.
    # (A scheme's length is bounded, and it starts a word: else a long word is
    # scanned from each of its letters, in quadratic time.)
    (
        re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s/:@]*):[^\s/@]+@"),
        rf"\1:{MARK}@",
    ),
)

# ---------------------------------------------------------------- key=value

# A key and its separator. Not after `:` or `/`, so the `secret:` of a Secrets
# Manager ARN or a URL path is no key; `--` marks a command-line flag, the one
# place a plain space separates a key from its value.
_PAIR = re.compile(
    r"(?<![\w.:/-])(?P<flag>--)?(?P<key>[A-Za-z_][\w.-]{0,79})(?P<quote>[\"']?)"
    r"(?P<sep>[ \t]*(?::=|=>|[:=])[ \t]*|[ \t]+)"
)
_VALUE = re.compile(
    r"(?P<scheme>(?i:bearer|basic|digest|token|negotiate|aws4-hmac-sha256)[ \t]+(?=[^\s\"']))?"
    # An unquoted value ends before a separator that follows it (`password=x, user=y`,
    # `{password: x}`).
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"?|'[^'\n]*'?|[^\s\"'&]*[^\s\"'&,;)}])"
)
_NOT_A_VALUE = frozenset({"null", "none", "true", "false"})
# An AWS secret access key: 40 characters of base64's alphabet.
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")


def _pairs(text: str) -> str:
    """Each value whose key looks secret, redacted. Only keys are matched in a row, so
    a key inside another pair's value (`opts=password=x`) is still found."""
    out: list[str] = []
    done = 0  # text before this is in `out`
    for pair in _PAIR.finditer(text):
        if pair.start() < done or not secret_name(pair["key"]):
            continue
        spaced = not pair["sep"].strip()
        found = _VALUE.match(text, pair.end())
        if found is None or found["value"].lower() in _NOT_A_VALUE:
            continue
        value = found["value"]
        if spaced and not pair["flag"] and not _AWS_SECRET.fullmatch(value):
            continue  # `password is wrong`: prose, not a pair
        start = found.start("value")
        out.append(text[done:start])
        out.append(_masked(value))
        done = found.end()
    out.append(text[done:])
    return "".join(out)


def _masked(value: str) -> str:
    """A value's quotes stay around the mark, so JSON still reads as JSON."""
    quote = value[0] if value[0] in "\"'" else ""
    closed = quote and len(value) > 1 and value.endswith(quote)
    return f"{quote}{MARK}{quote if closed else ''}"


# ------------------------------------------------------------- PEM key blocks

_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_ARMOUR = re.compile(r"(-----(?:BEGIN|END) [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)")


def _pem(text: str) -> str:
    """Private key bodies masked, the BEGIN and END lines kept. A BEGIN without its END
    masks the rest of the text; an END before any BEGIN, what came before it (a log
    tail that starts inside a key)."""
    if "PRIVATE KEY" not in text:
        return text
    out: list[str] = []
    begin, end = _BEGIN.search(text), _END.search(text)
    position = 0
    if end is not None and (begin is None or end.start() < begin.start()):
        out += [_mask_body(text[: end.start()]), end.group()]
        position = end.end()
    while (begin := _BEGIN.search(text, position)) is not None:
        out.append(text[position : begin.end()])
        end = _END.search(text, begin.end())
        if end is None:
            out.append(_mask_body(text[begin.end() :]))
            return "".join(out)
        out += [_mask_body(text[begin.end() : end.start()]), end.group()]
        position = end.end()
    out.append(text[position:])
    return "".join(out)


def _mask_body(body: str) -> str:
    """The mark in place of a key's body, with the line breaks around it kept."""
    if not body.strip():
        return body
    lead = body[: len(body) - len(body.lstrip())]
    trail = body[len(body.rstrip()) :]
    return f"{lead}{MARK}{trail}"


# -------------------------------------------------------------------- entry


def redact(text: str) -> str:
    """`text` with every secrets-looking substring it recognises replaced by `MARK`."""
    # The other rules run between a key's BEGIN and END lines, never across them: a
    # token shape or a value that swallowed a BEGIN would leave an END that a second
    # pass reads as a key cut at the start, and redacting twice must change nothing.
    pieces = _ARMOUR.split(_pem(text))
    pieces[::2] = [_pairs(_shapes(piece)) for piece in pieces[::2]]
    return "".join(pieces)


def _shapes(text: str) -> str:
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text
