"""`[state] url`, `url_env`, `url_file`: a PostgreSQL database in place of the SQLite
file, its URL checked when the config loads and its password never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pg_support import PASSWORD
from watcher.config import Config, ConfigError, load
from watcher.store import database_url

ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
URL = f"postgresql://ibwatch:{PASSWORD}@db.internal:5432/ibwatch?sslmode=require"
SHOWN = "postgresql://ibwatch:[REDACTED]@db.internal:5432/ibwatch?sslmode=require"


def config_with(tmp_path: Path, state: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[watch]\narns = ["{ARN}"]\n[state]\n{state}\n')
    return load(path, env=env or {})


def problems(tmp_path: Path, state: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, state, env)
    message = str(caught.value)
    assert PASSWORD not in message
    return message


def test_the_sqlite_file_stays_the_default(tmp_path: Path) -> None:
    config = config_with(tmp_path, "")
    assert config.state.database_url is None
    assert config.state.path == tmp_path / "ibwatch-state.db"


def test_a_url_without_a_password_may_be_written_in_the_file(tmp_path: Path) -> None:
    config = config_with(tmp_path, 'url = "postgres://ibwatch@db.internal/ibwatch"')
    assert config.state.database_url == "postgres://ibwatch@db.internal/ibwatch"


def test_the_url_comes_from_url_env_and_is_shown_only_redacted(tmp_path: Path) -> None:
    config = config_with(tmp_path, 'url_env = "DATABASE_URL"', env={"DATABASE_URL": URL})

    assert config.state.database_url == URL
    shown = config.redacted()["state"]
    assert shown["url"] == SHOWN
    assert "path" not in shown, "the unused file path is not shown"
    assert PASSWORD not in json.dumps(config.redacted())
    assert PASSWORD not in repr(config)


def test_the_url_comes_from_url_file(tmp_path: Path) -> None:
    (tmp_path / "database-url").write_text(URL + "\n")
    config = config_with(tmp_path, 'url_file = "database-url"')
    assert config.state.database_url == URL


def test_ibwatch_state_url_may_carry_the_password(tmp_path: Path) -> None:
    """The environment is where secrets come from: the override needs no url_env."""
    config = config_with(tmp_path, "", env={"IBWATCH_STATE_URL": URL})
    assert config.state.database_url == URL
    assert config.redacted()["state"]["url"] == SHOWN


def test_a_password_written_in_the_file_is_refused(tmp_path: Path) -> None:
    message = problems(tmp_path, f'url = "{URL}"')
    assert "state.url: carries a password, a secret that is never written in the config" in (
        message
    )
    assert "url_env" in message


def test_a_path_and_a_url_together_are_refused(tmp_path: Path) -> None:
    message = problems(tmp_path, 'path = "state.db"\nurl = "postgresql://db/ibwatch"')
    assert "state.path: give path (an SQLite file) or url (a PostgreSQL database), not both" in (
        message
    )


def test_a_path_from_the_environment_beside_a_url_names_the_variable(tmp_path: Path) -> None:
    message = problems(
        tmp_path, 'url = "postgresql://db/ibwatch"', env={"IBWATCH_STATE_PATH": "state.db"}
    )
    assert "state.path (from IBWATCH_STATE_PATH): give path (an SQLite file) or url" in message


def test_two_ways_of_giving_the_url_are_refused(tmp_path: Path) -> None:
    message = problems(
        tmp_path, 'url = "postgresql://db/x"\nurl_env = "DATABASE_URL"', env={"DATABASE_URL": URL}
    )
    assert "state.url_env: give one of url, url_env or url_file, not url and url_env" in message


@pytest.mark.parametrize(
    "url", ["mysql://db/ibwatch", "db.internal:5432", "host=db dbname=ibwatch", "http://db/x"]
)
def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path, url: str) -> None:
    message = problems(tmp_path, f'url = "{url}"')
    assert "state.url: must start with postgresql:// or postgres://" in message


def test_a_url_env_naming_a_missing_variable_is_refused(tmp_path: Path) -> None:
    message = problems(tmp_path, 'url_env = "DATABASE_URL"')
    assert "state.url_env: environment variable DATABASE_URL is not set or empty" in message


def test_a_url_env_holding_something_else_is_refused_without_quoting_it(tmp_path: Path) -> None:
    message = problems(
        tmp_path, 'url_env = "DATABASE_URL"', env={"DATABASE_URL": f"mysql://u:{PASSWORD}@db/x"}
    )
    assert (
        "state.url_env: the URL in environment variable DATABASE_URL must start with "
        "postgresql:// or postgres://"
    ) in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://db/x", "postgresql://db/x"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("postgresql://u:p%40ss@db:5432/x", "postgresql://u:[REDACTED]@db:5432/x"),
        ("postgresql://u:p@h1:5432,h2:5433/x", "postgresql://u:[REDACTED]@h1:5432,h2:5433/x"),
        (
            "postgresql:///x?host=/run/pg&password=p&sslpassword=q&sslmode=verify-full",
            "postgresql:///x?host=/run/pg&password=[REDACTED]&sslpassword=[REDACTED]&sslmode=verify-full",
        ),
    ],
)
def test_a_database_url_is_redacted_to_everything_but_its_passwords(url: str, shown: str) -> None:
    assert database_url.redact(url) == shown
    assert database_url.has_password(url) == ("[REDACTED]" in shown)


@pytest.mark.parametrize("character", ["?", "#", ":", "%40"])
def test_a_password_holding_a_url_delimiter_is_never_shown(tmp_path: Path, character: str) -> None:
    """libpq ends a password at the first '@' only: a '?' or '#' in it is the password's."""
    url = f"postgresql://ibwatch:Xy{character}9{PASSWORD}@db.internal:5432/ibwatch"
    config = config_with(tmp_path, 'url_env = "DATABASE_URL"', env={"DATABASE_URL": url})

    assert config.state.database_url == url
    assert config.redacted()["state"]["url"] == (
        "postgresql://ibwatch:[REDACTED]@db.internal:5432/ibwatch"
    )
    assert PASSWORD not in json.dumps(config.redacted()) + repr(config) + str(config)


def test_a_password_with_a_hash_written_in_the_file_is_refused(tmp_path: Path) -> None:
    message = problems(tmp_path, f'url = "postgresql://ibwatch:Xy#9{PASSWORD}@db/ibwatch"')
    assert "state.url: carries a password" in message


def test_repr_and_str_never_show_the_password_of_ibwatch_state_url(tmp_path: Path) -> None:
    config = config_with(tmp_path, "", env={"IBWATCH_STATE_URL": URL})
    assert config.state.database_url == URL
    for shown in (repr(config), str(config), repr(config.state), str(config.state)):
        assert PASSWORD not in shown


@pytest.mark.parametrize("files_key", ['url_file = "database-url"', 'url_env = "DATABASE_URL"'])
def test_ibwatch_state_url_replaces_where_the_file_gets_the_url(
    tmp_path: Path, files_key: str
) -> None:
    """An environment override says where the database is, whichever URL key the file
    used: the file's url_env or url_file is not read."""
    config = config_with(tmp_path, files_key, env={"IBWATCH_STATE_URL": URL})
    assert config.state.database_url == URL
    assert (config.state.url_env, config.state.url_file) == (None, None)


def test_ibwatch_state_url_file_replaces_the_files_url(tmp_path: Path) -> None:
    (tmp_path / "database-url").write_text(URL + "\n")
    config = config_with(
        tmp_path,
        'url = "postgresql://elsewhere/ibwatch"',
        env={"IBWATCH_STATE_URL_FILE": str(tmp_path / "database-url")},
    )
    assert config.state.database_url == URL


def test_two_url_variables_together_are_refused_naming_both(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        "",
        env={
            "IBWATCH_STATE_URL": URL,
            "IBWATCH_STATE_URL_ENV": "DATABASE_URL",
            "DATABASE_URL": URL,
        },
    )
    assert (
        "give one of url, url_env or url_file, not url (IBWATCH_STATE_URL) and "
        "url_env (IBWATCH_STATE_URL_ENV)"
    ) in message


def test_ibwatch_state_url_beside_a_files_path_names_the_variable(tmp_path: Path) -> None:
    """Which kind of store to use is not guessed: a file's path and the environment's
    URL are a conflict, as the environment's path and a file's URL are."""
    message = problems(tmp_path, 'path = "state.db"', env={"IBWATCH_STATE_URL": URL})
    assert (
        "state.path: give path (an SQLite file) or url (IBWATCH_STATE_URL) "
        "(a PostgreSQL database), not both"
    ) in message
