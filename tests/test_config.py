"""Loading the watcher's configuration: the documented example, defaults, environment
overrides, and the message each kind of mistake produces."""

from __future__ import annotations

import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from watcher._validation import FileError
from watcher.config import (
    DEFAULT_INTERVALS,
    ENV_OVERRIDES,
    Config,
    ConfigError,
    LogSinkConfig,
    from_mapping,
    load,
)
from watcher.config.events import queue_region
from watcher.model import ImageStatus

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "watcher.example.toml"
ARN = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-base/1.4.0/7"
OTHER_ARN = "arn:aws:imagebuilder:eu-west-1:123456789012:image/app/2.0.x"
PIPELINE = "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/web-base-nightly"
MINIMAL = f'[watch]\narns = ["{ARN}"]\n'


def write(tmp_path: Path, text: str, name: str = "watcher.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path, env={} if env is None else env)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "Traceback" not in message
    return message


# ---------------------------------------------------------------- the example file


def test_example_loads() -> None:
    config = load(EXAMPLE, env={})
    assert config.watch.arns == (ARN,)
    assert config.aws.region == "us-east-1"
    assert config.state.path == EXAMPLE.parent / "ibwatch-state.db"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _models_in(arg)]


def _undocumented(model: type[BaseModel], table: dict[str, Any], text: str, at: str) -> list[str]:
    missing = []
    for key, field in model.model_fields.items():
        path = f"{at}{key}"
        if key not in table:
            # A table of tables, empty by default, is shown as commented example tables.
            if re.search(rf"^\s*#\s*\[{re.escape(path)}\.", text, re.MULTILINE):
                continue
            # TOML has no null: a key whose default is "unset" is shown commented out.
            commented = re.search(rf"^\s*#\s*{key}\s*=", text, re.MULTILINE)
            # A sink's shared keys are documented once, commented, atop the sinks example.
            if not (commented and (field.default is None or at.startswith("sinks"))):
                missing.append(path)
            continue
        value = table[key]
        for sub in _models_in(field.annotation):
            if isinstance(value, dict):
                missing += _undocumented(sub, value, text, f"{path}.")
            elif isinstance(value, list):
                kind = sub.model_fields["type"].default if "type" in sub.model_fields else None
                entries = [v for v in value if kind is None or v.get("type") == kind]
                if not entries:
                    missing.append(f"{path}[type={kind}]")
                for entry in entries:
                    missing += _undocumented(sub, entry, text, f"{path}[].")
    return missing


SINKS_EXAMPLE = EXAMPLE.with_name("sinks.example.toml")
SINKS_ENV = {
    "IBWATCH_RELEASE_BOT_URL": "https://receiver.example/hooks/SECRET-RELEASE-BOT-PATH",
    "IBWATCH_RELEASE_BOT_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "IBWATCH_SLACK_URL": "https://hooks.slack.com/services/T000/B000/SECRET-SLACK-TOKEN",
    "IBWATCH_DISCORD_URL": "https://discord.com/api/webhooks/1/SECRET-DISCORD-TOKEN",
    "IBWATCH_GCHAT_URL": "https://chat.googleapis.com/v1/spaces/X/messages?key=K&token=SECRET-GCHAT",
}


def load_sinks_example(tmp_path: Path) -> Config:
    """The sinks example, with its variables set and its one file in place."""
    config = tmp_path / "watcher.toml"
    config.write_text(MINIMAL + SINKS_EXAMPLE.read_text())
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "teams-url").write_text("https://prod.example/workflows/SECRET-TEAMS\n")
    return load(config, env=SINKS_ENV)


def test_example_documents_every_field() -> None:
    text = EXAMPLE.read_text() + SINKS_EXAMPLE.read_text()
    document = {
        **tomllib.loads(EXAMPLE.read_text()),
        "sinks": tomllib.loads(SINKS_EXAMPLE.read_text())["sinks"],
    }
    assert _undocumented(Config, document, text, "") == []


def test_sinks_example_loads_with_its_secrets_from_env_and_file(tmp_path: Path) -> None:
    config = load_sinks_example(tmp_path)
    assert [s.type for s in config.sinks] == [
        "log",
        "webhook",
        "slack",
        "teams",
        "discord",
        "gchat",
    ]
    teams = config.sinks[3]
    assert teams.url == "https://prod.example/workflows/SECRET-TEAMS"


def test_redacted_config_shows_no_secret(tmp_path: Path) -> None:
    redacted = json.dumps(load_sinks_example(tmp_path).redacted(), ensure_ascii=False)
    for secret in [*SINKS_ENV.values(), "SECRET-TEAMS"]:
        assert secret not in redacted
    assert "https://hooks.slack.com/…" in redacted
    assert '"secret": "**********"' in redacted


def test_a_missing_secret_variable_is_named_without_a_value(tmp_path: Path) -> None:
    text = MINIMAL + '[[sinks]]\ntype = "slack"\nurl_env = "IBWATCH_NOT_SET_URL"\n'
    message = problems_of(write(tmp_path, text))
    assert (
        "sinks[0]: url_env: environment variable IBWATCH_NOT_SET_URL is not set or empty" in message
    )


def test_every_secret_problem_is_reported_by_one_run(tmp_path: Path) -> None:
    """A missing URL variable does not hide the sink's bad signing secret, nor the
    next sink's unreadable file: one run of check-config names them all."""
    text = MINIMAL + (
        '[[sinks]]\ntype = "webhook"\nurl_env = "NO_URL"\nsecret_env = "S"\n'
        '[[sinks]]\ntype = "webhook"\nname = "b"\nurl_env = "U"\nsecret_file = "no-such-file"\n'
        '[[sinks]]\ntype = "slack"\nurl_env = "FTP_URL"\n'
    )
    env = {"S": "hunter2-x", "U": "https://r.example/h", "FTP_URL": "ftp://r.example/x"}
    message = problems_of(write(tmp_path, text), env=env)
    assert "4 problem(s)" in message
    assert "sinks[0]: url_env: environment variable NO_URL is not set or empty" in message
    assert "sinks[0]: a webhook signing secret must look like whsec_<base64>" in message
    assert "sinks[1]: secret_file: cannot read" in message
    assert "sinks[2]: the url from environment variable FTP_URL must start with https://" in message
    assert "hunter2-x" not in message


def test_a_url_in_the_config_itself_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + '[[sinks]]\ntype = "slack"\nurl = "https://hooks.slack.com/services/X"\n'
    message = problems_of(write(tmp_path, text))
    assert "sinks[0].url: unknown key" in message
    assert "hooks.slack.com/services/X" not in message.split("unknown key")[0]


def test_a_malformed_signing_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    text = MINIMAL + ('[[sinks]]\ntype = "webhook"\nurl_env = "U"\nsecret_env = "S"\n')
    message = problems_of(write(tmp_path, text), env={"U": "https://r.example/h", "S": "hunter2-x"})
    assert "sinks[0]" in message
    assert "hunter2-x" not in message


def test_a_template_with_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + '[[sinks]]\ntype = "slack"\nurl_env = "U"\ntemplate = "$name is $colour"\n'
    message = problems_of(write(tmp_path, text), env={"U": "https://hooks.slack.com/x"})
    assert "colour" in message


def test_a_sink_filter_with_an_unknown_status_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + '[[sinks]]\ntype = "log"\nstatuses = ["AVAILBLE"]\n'
    message = problems_of(write(tmp_path, text))
    assert (
        "sinks[0].statuses: 'AVAILBLE' is not an image status (did you mean 'AVAILABLE'?)"
        in message
    )


def test_example_shows_every_builtin_interval_and_names_every_status() -> None:
    text = EXAMPLE.read_text()
    assert set(tomllib.loads(text)["watch"]["intervals"]) == set(DEFAULT_INTERVALS)
    for status in ImageStatus:
        assert status.value in text


def test_example_values_are_the_defaults() -> None:
    """What the example shows as a default is what an empty section gives."""
    example = load(EXAMPLE, env={}).redacted()
    minimal = from_mapping(
        {"aws": {"region": "us-east-1"}, "watch": {"arns": [ARN], "pipelines": [PIPELINE]}},
        base_dir=EXAMPLE.parent,
    ).redacted()
    assert example == minimal


def test_example_documents_every_environment_override() -> None:
    text = EXAMPLE.read_text()
    assert "IBWATCH_<SECTION>_<KEY>" in text
    assert "IBWATCH_WATCH_ARNS" in text


# ------------------------------------------------------------------------ defaults


def test_minimal_config_gets_the_defaults(tmp_path: Path) -> None:
    config = load(write(tmp_path, MINIMAL), env={})
    assert config.aws.region is None
    assert config.aws.endpoint_url is None
    assert (config.aws.connect_timeout, config.aws.read_timeout) == (5.0, 20.0)
    assert config.watch.concurrency == 16
    assert config.watch.max_tps == 10.0
    assert config.watch.jitter == 0.1
    assert config.watch.failed_recheck_interval == 600.0
    assert config.watch.failed_recheck_window == 6 * 3600.0
    assert (config.watch.retry.attempts, config.watch.retry.base, config.watch.retry.cap) == (
        5,
        1.0,
        20.0,
    )
    assert config.state.path == tmp_path / "ibwatch-state.db"
    assert config.sinks == (LogSinkConfig(type="log", name="log"),)


def test_durations_accept_seconds_and_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path, MINIMAL + 'failed_recheck_interval = 90\nfailed_recheck_window = "1h30m"\n'
    )
    config = load(path, env={})
    assert config.watch.failed_recheck_interval == 90.0
    assert config.watch.failed_recheck_window == 5400.0


def test_arns_are_normalised(tmp_path: Path) -> None:
    config = load(write(tmp_path, f'[watch]\narns = [" {ARN} ", "{OTHER_ARN}"]\n'), env={})
    assert config.watch.arns == (ARN, OTHER_ARN)


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(write(tmp_path, MINIMAL), env={})
    with pytest.raises(ValidationError):
        config.watch.concurrency = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.watch.intervals["BUILDING"] = 1.0  # type: ignore[index]


def test_redacted_is_plain_json_data(tmp_path: Path) -> None:
    redacted = load(write(tmp_path, MINIMAL), env={}).redacted()
    assert json.loads(json.dumps(redacted)) == redacted
    assert redacted["state"]["path"] == str(tmp_path / "ibwatch-state.db")
    assert redacted["watch"]["intervals"]["BUILDING"] == 60.0
    assert redacted["sinks"] == [
        {"type": "log", "name": "log", "statuses": [], "arns": [], "first_sighting": True}
    ]


# ----------------------------------------------------------------------- intervals


def test_interval_for_uses_builtin_per_status_values(tmp_path: Path) -> None:
    watch = load(write(tmp_path, MINIMAL), env={}).watch
    assert watch.interval_for(ImageStatus.BUILDING) == 60.0
    assert watch.interval_for(ImageStatus.AVAILABLE) == 300.0
    assert watch.interval_for(ImageStatus.CREATING) == 30.0


def test_interval_for_uses_configured_values(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[watch.intervals]\ndefault = "45s"\nBUILDING = "2m"\n')
    watch = load(path, env={}).watch
    assert watch.interval_for(ImageStatus.BUILDING) == 120.0
    assert watch.interval_for(ImageStatus.INTEGRATING) == 45.0
    assert watch.interval_for(ImageStatus.TESTING) == 45.0, "a default replaces the built-ins"


def test_per_status_keys_without_a_default_replace_only_their_built_ins(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[watch.intervals]\nBUILDING = "2m"\n')
    watch = load(path, env={}).watch
    assert watch.interval_for(ImageStatus.BUILDING) == 120.0
    assert watch.interval_for(ImageStatus.TESTING) == 60.0
    assert watch.interval_for(ImageStatus.INTEGRATING) == 30.0


def test_interval_for_an_unknown_status_is_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[watch.intervals]\ndefault = "40s"\n')
    watch = load(path, env={}).watch
    assert watch.interval_for(ImageStatus("NEW_THING")) == 40.0


# ------------------------------------------------------------------------- mistakes


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[aws]\nregoin = "us-east-1"\n')
    message = problems_of(path)
    assert "aws.regoin: unknown key (did you mean 'region'?); expected one of region," in message


def test_unknown_top_level_section_is_named(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + "[sink]\ntype = 'log'\n"))
    assert "  sink: unknown key (did you mean 'sinks'?)" in message


def test_typo_in_interval_status_suggests_the_status(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[watch.intervals]\nBUILDNG = "60s"\n'))
    assert (
        "watch.intervals.BUILDNG: 'BUILDNG' is not an image status (did you mean 'BUILDING'?)"
        in (message)
    )
    assert "expected 'default' or one of PENDING, CREATING, BUILDING," in message


def test_invalid_arn_uses_the_arn_explanation(tmp_path: Path) -> None:
    component = "arn:aws:imagebuilder:us-east-1:123456789012:component/x/1.0.0/1"
    message = problems_of(write(tmp_path, f'[watch]\narns = ["{ARN}", "{component}"]\n'))
    assert f"watch.arns[1]: '{component}' names a component, not an image" in message


def test_duplicate_arn_names_both_indexes(tmp_path: Path) -> None:
    path = write(tmp_path, f'[watch]\narns = ["{ARN}", "{OTHER_ARN}", " {ARN}"]\n')
    message = problems_of(path)
    assert f"watch.arns[2]: '{ARN}' is already listed at watch.arns[0]" in message


def test_empty_arn_list_is_rejected(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "[watch]\narns = []\n"))
    assert "watch.arns: list at least one image ARN, or a pipeline in watch.pipelines" in message


def test_missing_arns_are_named(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "[aws]\n"))
    assert "watch.arns: list at least one image ARN, or a pipeline in watch.pipelines" in message


def test_negative_duration_is_rejected(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[aws]\nread_timeout = "-5s"\n'))
    assert "aws.read_timeout: a duration cannot be negative, got '-5s'" in message


def test_unparseable_duration_is_rejected(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[watch.retry]\ncap = "soon"\n'))
    assert "watch.retry.cap: expected a duration such as 30, '90s'" in message


def test_zero_interval_is_rejected(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + "[watch.intervals]\nBUILDING = 0\n"))
    assert "watch.intervals.BUILDING: expected a duration longer than zero" in message


def test_retry_cap_below_base_is_rejected(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[watch.retry]\nbase = "30s"\ncap = "20s"\n'))
    assert "watch.retry.cap: must be at least base (30s), got 20s" in message


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("concurrency = 0", "watch.concurrency: Input should be greater than or equal to 1"),
        ("concurrency = 1025", "watch.concurrency: Input should be less than or equal to 1024"),
        ("max_tps = 0", "watch.max_tps: Input should be greater than or equal to 0.01"),
        ("jitter = 0.6", "watch.jitter: Input should be less than or equal to 0.5"),
    ],
)
def test_numbers_out_of_range_are_rejected(tmp_path: Path, setting: str, expected: str) -> None:
    assert expected in problems_of(write(tmp_path, MINIMAL + setting + "\n"))


def test_unknown_sink_type_lists_the_known_types(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[[sinks]]\ntype = "slack-ish"\n'))
    assert (
        "sinks[0].type: unknown sink type 'slack-ish' (did you mean 'slack'?); expected one "
        "of log, webhook, slack, teams, discord, gchat"
    ) in message


def test_sink_without_type_is_rejected(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[[sinks]]\nname = "x"\n'))
    assert "sinks[0].type: required: one of log, webhook, slack, teams, discord, gchat" in message


def test_sink_name_defaults_to_its_type(tmp_path: Path) -> None:
    path = write(
        tmp_path, MINIMAL + '[[sinks]]\ntype = "log"\n[[sinks]]\ntype = "log"\nname = "audit"\n'
    )
    assert [sink.name for sink in load(path, env={}).sinks] == ["log", "audit"]


def test_duplicate_sink_names_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + '[[sinks]]\ntype = "log"\n[[sinks]]\ntype = "log"\n')
    message = problems_of(path)
    assert "sinks[1].name: 'log' is already the name of sinks[0]" in message


def test_section_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, 'watch = "all of them"\n'))
    assert "  watch: expected a table with keys arns, pipelines, discovery_interval," in message
    assert "got a string" in message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, "[watch\narns = 1\n"))
    assert "not valid TOML" in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    message = problems_of(tmp_path / "absent.toml")
    assert "file not found" in message


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[aws]\nregion = "mars"\n[watch]\narns = ["nope"]\nconcurrency = 0\n'
        '[watch.intervals]\nBILDING = 1\n[[sinks]]\ntype = "pager"\n',
    )
    message = problems_of(path)
    assert message.startswith(f"{path}: 5 problem(s):")
    for field in (
        "aws.region",
        "watch.arns[0]",
        "watch.concurrency",
        "watch.intervals.BILDING",
        "sinks[0].type",
    ):
        assert f"\n  {field}: " in message


def test_config_error_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(FileError) as caught:
        load(write(tmp_path, "[watch]\n"), env={})
    assert isinstance(caught.value, ConfigError)
    assert caught.value.path == tmp_path / "watcher.toml"
    assert caught.value.problems == [
        "watch.arns: list at least one image ARN, or a pipeline in watch.pipelines"
    ]


def test_from_mapping_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^inline: 1 problem\(s\):\n  watch.arns: list at"):
        from_mapping({}, source="inline")


# --------------------------------------------------------------------- environment


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {
        "IBWATCH_AWS_REGION": "eu-west-1",
        "IBWATCH_AWS_READ_TIMEOUT": "1m",
        "IBWATCH_WATCH_MAX_TPS": "2.5",
        "IBWATCH_WATCH_CONCURRENCY": "4",
        "IBWATCH_WATCH_ARNS": f"{ARN}, {OTHER_ARN},",
    }
    config = load(write(tmp_path, MINIMAL + "max_tps = 50\n"), env=env)
    assert config.aws.region == "eu-west-1"
    assert config.aws.read_timeout == 60.0
    assert config.watch.max_tps == 2.5
    assert config.watch.concurrency == 4
    assert config.watch.arns == (ARN, OTHER_ARN)


def test_environment_alone_can_supply_the_arns(tmp_path: Path) -> None:
    config = load(write(tmp_path, ""), env={"IBWATCH_WATCH_ARNS": ARN})
    assert config.watch.arns == (ARN,)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL), env={"IBWATCH_WATCH_MAX_TPS": "-1"})
    assert (
        "watch.max_tps (from IBWATCH_WATCH_MAX_TPS): Input should be greater than or equal to 0.01"
        in message
    )


def test_bad_arn_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL), env={"IBWATCH_WATCH_ARNS": f"{ARN},nope"})
    assert "watch.arns[1] (from IBWATCH_WATCH_ARNS): 'nope' is not an ARN" in message


def test_unknown_override_variable_is_an_error(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL), env={"IBWATCH_WATCH_MAXTPS": "5"})
    assert (
        "IBWATCH_WATCH_MAXTPS (environment): not a setting (did you mean 'IBWATCH_WATCH_MAX_TPS'?)"
        in message
    )
    assert "IBWATCH_STATE_PATH" in message, "lists the variables that exist"


def test_nested_tables_cannot_be_overridden(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL), env={"IBWATCH_WATCH_RETRY_ATTEMPTS": "3"})
    assert "IBWATCH_WATCH_RETRY_ATTEMPTS (environment): not a setting; only scalar keys" in message


def test_other_variables_are_ignored(tmp_path: Path) -> None:
    env = {"IBWATCH_CONFIG": "elsewhere.toml", "PATH": "/bin", "AWS_REGION": "eu-west-1"}
    assert load(write(tmp_path, MINIMAL), env=env).aws.region is None


def test_the_failover_is_set_by_its_variable_and_a_wrong_one_names_it(tmp_path: Path) -> None:
    assert load(write(tmp_path, MINIMAL), env={"IBWATCH_HA_FAILOVER": "30s"}).ha.failover == 30.0
    message = problems_of(write(tmp_path, MINIMAL), env={"IBWATCH_HA_FAILOVER": "soon"})
    assert "IBWATCH_HA_FAILOVER" in message


def test_env_none_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IBWATCH_WATCH_JITTER", "0.25")
    assert load(write(tmp_path, MINIMAL)).watch.jitter == 0.25


def test_override_variables_cover_the_scalar_keys() -> None:
    assert sorted(ENV_OVERRIDES) == sorted(
        [
            "IBWATCH_AWS_REGION",
            "IBWATCH_AWS_ENDPOINT_URL",
            "IBWATCH_AWS_CONNECT_TIMEOUT",
            "IBWATCH_AWS_READ_TIMEOUT",
            "IBWATCH_WATCH_ARNS",
            "IBWATCH_WATCH_PIPELINES",
            "IBWATCH_WATCH_DISCOVERY_INTERVAL",
            "IBWATCH_WATCH_NOT_FOUND_GRACE",
            "IBWATCH_WATCH_PAUSED_RETRY_CAP",
            "IBWATCH_WATCH_CONCURRENCY",
            "IBWATCH_WATCH_MAX_TPS",
            "IBWATCH_WATCH_JITTER",
            "IBWATCH_WATCH_FAILED_RECHECK_INTERVAL",
            "IBWATCH_WATCH_FAILED_RECHECK_WINDOW",
            "IBWATCH_STATE_PATH",
            "IBWATCH_STATE_URL",
            "IBWATCH_STATE_URL_ENV",
            "IBWATCH_STATE_URL_FILE",
            "IBWATCH_STATE_KEEP_EVENTS",
            "IBWATCH_DIAGNOSTICS_PROGRESS_SHARE",
            "IBWATCH_DIAGNOSTICS_LOG_LINES",
            "IBWATCH_EVENTS_QUEUE_URL",
            "IBWATCH_EVENTS_FOLLOW_ALL",
            "IBWATCH_EVENTS_SAFETY_INTERVAL",
            "IBWATCH_EVENTS_WAIT_TIME",
            "IBWATCH_EVENTS_MALFORMED",
            "IBWATCH_EVENTS_VISIBILITY_TIMEOUT",
            "IBWATCH_HA_FAILOVER",
        ]
    )


# --------------------------------------------------------------------------- events


def test_events_take_an_sqs_queue_url_and_name_a_wrong_one(tmp_path: Path) -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/ibwatch-events"
    env = {"IBWATCH_EVENTS_QUEUE_URL": url}
    events = load(write(tmp_path, MINIMAL), env=env).events
    assert (events.queue_url, events.safety_interval, events.wait_time) == (url, 600.0, 20)
    assert queue_region(url) == "eu-west-1"
    assert queue_region("http://127.0.0.1:5000/123456789012/q") is None
    message = problems_of(
        write(tmp_path, MINIMAL + '[events]\nqueue_url = "ibwatch-events"\nwait_time = 30\n')
    )
    assert "events.queue_url: 'ibwatch-events' is not an SQS queue URL" in message
    assert "events.wait_time" in message


# --------------------------------------------------------------------------- diagnostics


def test_diagnostics_defaults_and_bounds(tmp_path: Path) -> None:
    defaults = load(write(tmp_path, MINIMAL)).diagnostics
    assert (defaults.progress_share, defaults.log_lines) == (0.2, 0)
    message = problems_of(
        write(tmp_path, MINIMAL + "[diagnostics]\nprogress_share = 0.6\nlog_lines = 5000\n")
    )
    assert "diagnostics.progress_share" in message
    assert "diagnostics.log_lines" in message
    env = {"IBWATCH_DIAGNOSTICS_LOG_LINES": "20"}
    assert load(write(tmp_path, MINIMAL), env=env).diagnostics.log_lines == 20


# --------------------------------------------------------------------------- state


def test_keep_events_outlasts_a_day_and_the_failed_recheck_window(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[state]\nkeep_events = "12h"\n'))
    assert "state.keep_events: must be at least 86400s (1 day, and no less than" in message
    longer = MINIMAL.replace("[watch]\n", '[watch]\nfailed_recheck_window = "3d"\n')
    message = problems_of(write(tmp_path, longer + '[state]\nkeep_events = "2d"\n'))
    assert "state.keep_events: must be at least 259200s" in message
    config = load(write(tmp_path, longer + '[state]\nkeep_events = "3d"\n'), env={})
    assert config.state.keep_events == 3 * 86400


def test_relative_state_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", MINIMAL + '[state]\npath = "data/state.db"\n')
    assert load(Path("etc/watcher.toml"), env={}).state.path == path.parent / "data/state.db"


def test_absolute_state_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "state.db"
    config = load(write(tmp_path, MINIMAL + f'[state]\npath = "{target}"\n'), env={})
    assert config.state.path == target


def test_relative_state_path_from_the_environment_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    path = write(tmp_path / "etc", MINIMAL)
    config = load(path, env={"IBWATCH_STATE_PATH": "state.db"})
    assert config.state.path == tmp_path / "run" / "state.db"


def test_empty_state_path_is_rejected(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, MINIMAL + '[state]\npath = ""\n'))
    assert "state.path: expected a file path" in message


def test_pipelines_alone_are_something_to_watch(tmp_path: Path) -> None:
    config = load(write(tmp_path, f'[watch]\npipelines = ["{PIPELINE}"]\n'), env={})
    assert config.watch.pipelines == (PIPELINE,)
    assert config.watch.arns == ()


def test_a_pipeline_wildcard_is_accepted(tmp_path: Path) -> None:
    every = PIPELINE.rsplit("/", 1)[0] + "/*"
    config = load(write(tmp_path, f'[watch]\npipelines = ["{every}"]\n'), env={})
    assert config.watch.pipelines == (every,)


def test_an_image_arn_among_pipelines_is_named(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, f'[watch]\npipelines = ["{ARN}"]\n'))
    assert "watch.pipelines[0]: " in message
    assert "names an image, not an image pipeline; expected one like" in message
    assert "use `ibwatch wait-until-available`" in message


def test_a_pipeline_listed_twice_is_named(tmp_path: Path) -> None:
    message = problems_of(write(tmp_path, f'[watch]\npipelines = ["{PIPELINE}", "{PIPELINE}"]\n'))
    assert "is already listed at watch.pipelines[0]; list it once" in message


def test_version_and_build_arns_are_told_apart() -> None:
    config = from_mapping({"watch": {"arns": [ARN, OTHER_ARN]}})
    assert config.watch.build_arns == (ARN,)
    assert config.watch.version_arns == (OTHER_ARN,)


def test_pipelines_come_from_the_environment_as_a_list(tmp_path: Path) -> None:
    other = PIPELINE.replace("web-base-nightly", "api-runtime")
    config = load(write(tmp_path, ""), env={"IBWATCH_WATCH_PIPELINES": f"{PIPELINE}, {other}"})
    assert config.watch.pipelines == (PIPELINE, other)
