"""A broken AWS configuration is a clear one-line error within seconds, exit 2
(configuration) or 4 (credentials), never a retry until the timeout. In-process
(`tests/cli/in_thread.py`): what is checked is the exit code and the output."""

from __future__ import annotations

import anyio
import pytest

from tests.cli.in_thread import Ran, ibwatch
from tests.support import WEB_BASE, scenario
from watcher.simulator import Simulator


async def wait(env: dict[str, str], *args: str) -> Ran:
    with anyio.fail_after(20):  # the timeout below is an hour: only a quick exit passes
        return await ibwatch("wait-until-available", "--timeout", "1h", *args, WEB_BASE, env=env)


async def test_a_profile_that_does_not_exist_exits_2_naming_it() -> None:
    async with Simulator(scenario()) as url:
        done = await wait({"AWS_PROFILE": "nosuch"}, "--endpoint-url", url)
    assert done.returncode == 2, done.stderr
    assert "The config profile (nosuch) could not be found" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("endpoint", ["ftp://127.0.0.1:9", "notaurl"])
async def test_an_endpoint_from_the_environment_that_is_no_http_url_exits_2(endpoint: str) -> None:
    done = await wait(
        {
            "AWS_ENDPOINT_URL_IMAGEBUILDER": endpoint,
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "not-a-secret",
        }
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stdout.splitlines()) == 1


@pytest.mark.parametrize("endpoint", ["ftp://127.0.0.1:9", "notaurl"])
async def test_an_endpoint_option_that_is_no_http_url_is_refused_at_parse_time(
    endpoint: str,
) -> None:
    done = await wait({}, "--endpoint-url", endpoint)
    assert done.returncode == 2
    assert "argument --endpoint-url: expected an http(s) URL" in done.stderr


async def test_partial_credentials_exit_4() -> None:
    async with Simulator(scenario()) as url:
        env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": ""}
        done = await wait(env, "--endpoint-url", url)
    assert done.returncode == 4, done.stdout
    assert "Traceback" not in done.stderr
