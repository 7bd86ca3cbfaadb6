"""Secrets-looking strings are hidden, keys and everything else kept: what
`watcher.redaction` catches, what it leaves alone, and its properties (it never
raises, a second pass changes nothing, text without a trigger is untouched)."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from watcher.redaction import MARK, redact, secret_name

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=SECRET-DEMO-1", f"password={MARK}"),
        ("DB_PASSWORD: hunter2", f"DB_PASSWORD: {MARK}"),
        ("PGPASSWORD='a b c'", f"PGPASSWORD='{MARK}'"),
        (
            '{"client_secret": "s3cr3t", "user": "bob"}',
            f'{{"client_secret": "{MARK}", "user": "bob"}}',
        ),
        ('{"token": null, "password": "x"}', f'{{"token": null, "password": "{MARK}"}}'),
        ('"MYSQL_PWD": "q\\"w"', f'"MYSQL_PWD": "{MARK}"'),
        ("password=abc, user=bob", f"password={MARK}, user=bob"),
        (
            "https://api.example/?user=bob&token=abc123&page=2",
            f"https://api.example/?user=bob&token={MARK}&page=2",
        ),
        ("docker login --password hunter2 -u bob", f"docker login --password {MARK} -u bob"),
        ("--api-key=abcd1234", f"--api-key={MARK}"),
        ("x-api-key: abcd", f"x-api-key: {MARK}"),
        ("X-Amz-Security-Token: FwoGZX", f"X-Amz-Security-Token: {MARK}"),
        ("opts=password=x", f"opts=password={MARK}"),
        (
            f"aws configure set aws_secret_access_key {AWS_SECRET}",
            f"aws configure set aws_secret_access_key {MARK}",
        ),
        (f'"SecretAccessKey": "{AWS_SECRET}"', f'"SecretAccessKey": "{MARK}"'),
        ("Authorization: Bearer abc.def", f"Authorization: Bearer {MARK}"),
        ('-H "Authorization: Basic dXNlcjpwYXNz"', f'-H "Authorization: Basic {MARK}"'),
        ("sent with Bearer eyJ0eXAiOiJKV1QiLCJh", f"sent with Bearer {MARK}"),
        ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", f"export AWS_ACCESS_KEY_ID=AKIA{MARK}"),
        ("key ASIAY34FZKBOKMUTVV7A in use", f"key ASIA{MARK} in use"),
        (
            "git clone https://deploy:s3cr3t@git.example/r.git",
            f"git clone https://deploy:{MARK}@git.example/r.git",
        ),
        ("redis://:pw@cache:6379/0", f"redis://:{MARK}@cache:6379/0"),
        ("GH ghp_" + "a1" * 18, f"GH ghp_{MARK}"),
        ("github_pat_" + "A" * 22 + "_" + "b" * 59, f"github_pat_{MARK}"),
        ("slack xoxb-1234567890-abcdefghij", f"slack xoxb-{MARK}"),
        ("signing with whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", f"signing with whsec_{MARK}"),
        ("id eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvIn0.c2lnbmF0dXJl", f"id {MARK}"),
        ("https://hooks.slack.com/services/T0/B0/XYZ", f"https://hooks.slack.com/services/{MARK}"),
        (
            "https://discord.com/api/webhooks/123/abc-DEF",
            f"https://discord.com/api/webhooks/{MARK}",
        ),
    ],
)
def test_a_secret_is_replaced_and_its_key_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the password is wrong",
        "token_count=5 password_file=/run/secrets/db secret_env=SLACK_URL",
        "nextToken=eyJwYWdlIjoyfQ clientToken=4242 cache_key=abc",
        "PWD=/home/ec2-user OLDPWD=/",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-pass-AbCdEf",
        "Stderr: Test-AgentService: service 'ibagent' did not reach Running within 120s",
        "Image status: FAILED: Image testing failed: component 'agent-smoke-test'",
        "https://agents.corp.example:8443/path?region=eu-west-1",
        "Bearer authentication failed",
        "ami-0a1b2c3d4e5f60718 in us-east-1",
        "AKIDEXAMPLE",
        "bypass=1 passed=3 tokens=12",
    ],
)
def test_text_without_a_secret_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_a_private_key_block_keeps_its_armour_lines() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----"
    assert redact(f"before\n{key}\nafter") == (
        f"before\n-----BEGIN RSA PRIVATE KEY-----\n{MARK}\n-----END RSA PRIVATE KEY-----\nafter"
    )


def test_a_text_cut_inside_a_private_key_hides_the_part_it_holds() -> None:
    """A log tail can start or end in the middle of a key."""
    assert redact("MIIEow\nIBAAK\n-----END PRIVATE KEY-----\nnext") == (
        f"{MARK}\n-----END PRIVATE KEY-----\nnext"
    )
    assert redact("before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\nNzaC1") == (
        f"before\n-----BEGIN OPENSSH PRIVATE KEY-----\n{MARK}"
    )


def test_a_public_key_or_certificate_is_not_hidden() -> None:
    text = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----"
    assert redact(text) == text


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("DB_PASS", True),
        ("MYSQL_PWD", True),
        ("PGPASSWORD", True),
        ("clientSecret", True),
        ("aws_secret_access_key", True),
        ("SessionToken", True),
        ("x-api-key", True),
        ("APIKey", True),
        ("private_key", True),
        ("credentials", True),
        ("Authorization", True),
        ("X-Amz-Signature", True),
        ("password_file", False),
        ("secret_env", False),
        ("secret_arn", False),
        ("token_count", False),
        ("nextToken", False),
        ("client_token", False),
        ("cache_key", False),
        ("PWD", False),
        ("aws_access_key_id", False),
        ("", False),
    ],
)
def test_secret_names_are_judged_by_their_last_words(name: str, secret: bool) -> None:
    assert secret_name(name) is secret


# ------------------------------------------------------------------ properties

# Fragments that trigger the rules, mixed with plain words, so that generated texts
# hit the rules' edges and their interplay.
FRAGMENTS = st.sampled_from(
    [
        "password", "token", "secret", "api_key", "Authorization", "Bearer", "Basic",
        "=", ":", ": ", " ", "\n", '"', "'", "&", ",", "--", "-----", "@", "://", "/",
        "https", "user", "x", "abc", "[REDACTED]", "AKIA", "IOSFODNN7EXAMPLE", "ghp_",
        "xoxb-", "whsec_", "eyJ", "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----", "PRIVATE KEY", "null", AWS_SECRET,
    ]
)  # fmt: skip
TEXTS = st.lists(st.one_of(FRAGMENTS, st.text(max_size=6)), max_size=14).map("".join)
# Text that holds no trigger: no separator, no quote, none of the key words.
PLAIN = st.text(alphabet=string.ascii_lowercase.replace("k", "") + " .\n\t", max_size=80)


@given(TEXTS)
@example("password=-----BEGIN RSA PRIVATE KEY-----x-----END RSA PRIVATE KEY-----")
@example("https://u:password=x@h")
def test_redacting_twice_is_redacting_once(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@given(st.text())
def test_any_text_is_redacted_without_error(text: str) -> None:
    assert isinstance(redact(text), str)


@given(PLAIN)
def test_text_without_a_trigger_is_returned_as_it_is(text: str) -> None:
    assert redact(text) == text


SECRET_VALUES = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%*+-./?^_|~", min_size=6
).filter(lambda v: not v.startswith("-----"))  # a PEM armour line is `_pem`'s
KEYS = st.sampled_from(["password", "DB_PASSWORD", "api_key", "client_secret", "auth_token"])
SEPARATORS = st.sampled_from(["=", ": ", " = ", ":"])


@given(PLAIN, KEYS, SEPARATORS, SECRET_VALUES, PLAIN)
def test_the_value_of_a_secret_pair_never_survives(
    before: str, key: str, separator: str, value: str, after: str
) -> None:
    redacted = redact(f"{before} {key}{separator}{value} {after}")
    assert redacted == f"{before} {key}{separator}{MARK} {after}"


@given(st.lists(PLAIN.filter(lambda t: "\n" not in t), min_size=1, max_size=5))
def test_redacting_lines_alone_or_joined_is_the_same(lines: list[str]) -> None:
    """What gathers a log tail redacts joined lines; a line's own redaction must agree."""
    secret_lines = [f"{line} token={i}abcdef" for i, line in enumerate(lines)]
    assert redact("\n".join(secret_lines)).split("\n") == [redact(x) for x in secret_lines]
