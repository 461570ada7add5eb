"""Several credentials on one Clanforge session: each watch goes out with its own credential,
and a 429 or a refusal touches that credential alone."""

from __future__ import annotations

import asyncio
import base64

import pytest

from notifier.clanforge.accounts import open_clanforge_accounts
from notifier.config import parse_config
from notifier.core.upstream_errors import CREDENTIALS_REJECTED, RATE_LIMITED, UpstreamError
from notifier.testing.fake_clanforge import FakeClanforge, status_reply
from tests.support import config_files as toml
from tests.support.narrow import parsed


def accounts_config(url: str) -> str:
    """The default credential at 10 requests/s, and us-fleet's (account service 2222) at 4."""
    return toml.clanforge(url, "ak", "sk", requests_per_second=10, burst=10) + toml.account(
        "us-fleet", "us-ak", "us-sk", [2222], requests_per_second=4
    )


async def test_a_single_credential_rides_on_the_session_and_each_header_goes_once() -> None:
    async with FakeClanforge() as fake:
        fake.set_status(1234, 1, status_reply(4, 10))
        config = toml.clanforge(fake.base_url, "ak", "sk", requests_per_second=10, burst=10)
        settings = parse_config(config, {})
        async with open_clanforge_accounts(settings.clanforge.options()) as accounts:
            assert parsed(await accounts.fetch_status(1234, 1)).state == "Running"
    [request] = fake.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"ak:sk").decode()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    for name in ("Authorization", "Content-Type", "Accept", "User-Agent"):
        assert request.header_names.count(name) == 1, request.header_names


async def test_each_account_service_is_polled_with_its_own_credential_and_limit() -> None:
    async with FakeClanforge(rate_limit=3, retry_after="1") as fake:
        fake.add_credentials("us-ak", "us-sk", [2222])
        fake.set_status(1234, 1, status_reply(4, 10))
        fake.set_status(2222, 2, status_reply(3))
        settings = parse_config(accounts_config(fake.base_url), {})
        async with open_clanforge_accounts(settings.clanforge.options()) as accounts:
            assert parsed(await accounts.fetch_status(2222, 2)).state == "Queued"
            assert parsed(await accounts.fetch_status(1234, 1)).state == "Running"
            for _ in range(2):
                await accounts.fetch_status(1234, 1)
            with pytest.raises(UpstreamError) as limited:
                await accounts.fetch_status(1234, 1)
            assert limited.value.reason == RATE_LIMITED
            assert limited.value.credential == "default"
            # The default credential slowed down; us-fleet did not, and is not limited upstream.
            assert accounts.bucket("default").rate < 10
            assert accounts.bucket("us-fleet").rate == 4
            assert parsed(await accounts.fetch_status(2222, 2)).state == "Queued"
        us_requests = [r for r in fake.requests if r.query.get("accountserviceid") == "2222"]
        assert len(us_requests) == 2


async def test_a_refused_credential_fails_the_rest_of_its_round_without_asking_again() -> None:
    async with FakeClanforge() as fake:
        fake.set_status(2222, 2, status_reply(3))
        fake.set_status(2222, 3, status_reply(3))
        settings = parse_config(accounts_config(fake.base_url), {})
        async with open_clanforge_accounts(settings.clanforge.options()) as accounts:
            for ivid in (2, 3):
                with pytest.raises(UpstreamError) as refused:
                    await accounts.fetch_status(2222, ivid)
                assert refused.value.reason == CREDENTIALS_REJECTED
                assert "[credential 'us-fleet']" in refused.value.message
                assert "us-sk" not in refused.value.message
            assert fake.polls(2222, 2) == 1
            assert fake.polls(2222, 3) == 0
            accounts.new_round()
            fake.add_credentials("us-ak", "us-sk", [2222])
            assert parsed(await accounts.fetch_status(2222, 3)).state == "Queued"


async def test_the_configured_rate_draws_no_429_from_a_clanforge_allowing_a_fifth_more() -> None:
    """Issue 24: 5 requests a second configured, a Clanforge allowing 6 in any second; many
    polls wanted at once. No start-up burst above the rate, so no 429, and the whole budget."""
    requests = 25
    async with FakeClanforge(rate_limit=6, retry_after="1") as fake:
        for ivid in range(requests):
            fake.set_status(1234, ivid, status_reply(4, 10))
        settings = parse_config(
            toml.clanforge(fake.base_url, "ak", "sk", requests_per_second=5), {}
        )
        async with open_clanforge_accounts(settings.clanforge.options()) as accounts:
            started = asyncio.get_running_loop().time()
            await asyncio.gather(*(accounts.fetch_status(1234, i) for i in range(requests)))
            took = asyncio.get_running_loop().time() - started
    assert fake.limited_at == []
    # One every 0.2 s: the last of 25 goes 4.8 s in; 95 % of the budget or better.
    assert 4.7 <= took <= 4.8 / 0.95 + 0.3
