"""Secrets never shown: an upstream that echoes the credentials, in any encoding and cut at any
length, leaves no run of 8 characters of them in what the service keeps or shows."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import aiohttp
import pytest

from notifier.clanforge.client import ClanforgeClient
from notifier.cli import main
from notifier.config import parse_config
from notifier.core.secret_scrub import MIN_RUN, Scrubber
from notifier.core.upstream_errors import UpstreamError
from notifier.logs import configure_logging
from notifier.testing.fake_clanforge import FakeClanforge, FakeReply, status_reply
from tests.support import config_files as toml

ASID, IVID = 1234, 567890
ACCESS_KEY = "AKIAEXAMPLEACCESS7F3A"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
BASIC = base64.b64encode(f"{ACCESS_KEY}:{SECRET_KEY}".encode()).decode()
FORMS = {
    "raw": f"Authorization: Basic {BASIC} access={ACCESS_KEY} secret={SECRET_KEY}",
    "url-encoded": f"GET /x?key={quote(ACCESS_KEY)}&secret={quote(SECRET_KEY, safe='')}",
    "json-escaped": json.dumps({"echo": {"secret": SECRET_KEY.replace("/", "\\/")}})[1:-1],
    "basic-only": f"Authorization: Basic {BASIC}",
}


def leaked_runs(text: str) -> list[str]:
    """Every run of MIN_RUN characters of any secret (any form) that is still in ``text``."""
    forms = {ACCESS_KEY, SECRET_KEY, BASIC, quote(SECRET_KEY, safe=""), quote(ACCESS_KEY)}
    forms.add(json.dumps(SECRET_KEY)[1:-1])
    return [
        form[i : i + MIN_RUN]
        for form in forms
        for i in range(len(form) - MIN_RUN + 1)
        if form[i : i + MIN_RUN] in text
    ]


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("cut", [0, 7, 31, 150, 193, 196, 199])
def test_no_piece_of_a_secret_survives_a_scrub_before_or_after_a_cut(form: str, cut: int) -> None:
    scrubber = Scrubber((ACCESS_KEY, SECRET_KEY, BASIC))
    text = "x" * cut + FORMS[form]
    # Scrubbing a text already cut mid-secret still removes what is left of it.
    for shown in (scrubber.scrub(text)[:200], scrubber.scrub(text[:200])):
        assert leaked_runs(shown) == []


def test_text_without_secrets_is_left_alone() -> None:
    scrubber = Scrubber((ACCESS_KEY, SECRET_KEY))
    text = "Image locked by diffid 42 (state Failed, 80%)"
    assert scrubber.scrub(text) == text


@pytest.fixture
async def fake() -> AsyncIterator[FakeClanforge]:
    async with FakeClanforge(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeClanforge) -> AsyncIterator[ClanforgeClient]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        yield ClanforgeClient(session, fake.base_url, ACCESS_KEY, SECRET_KEY)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("padding", [0, 150, 165, 180])
@pytest.mark.parametrize("status", [401, 403, 500, 502])
async def test_an_upstream_error_echoing_the_credentials_leaks_none_of_them(
    fake: FakeClanforge, client: ClanforgeClient, form: str, padding: int, status: int
) -> None:
    # The padding puts the echoed header across the 200-character cut of upstream texts.
    echo = "p" * padding + FORMS[form]
    fake.set_status(ASID, IVID, FakeReply.json(status, {"error": echo}))
    with pytest.raises(UpstreamError) as caught:
        await client.fetch_status(ASID, IVID)
    assert leaked_runs(caught.value.message) == []
    if padding <= 150:  # the echo starts well inside what is shown: it is there, masked
        assert "***" in caught.value.message


async def test_a_job_error_echoing_the_credentials_leaks_none_of_them(
    fake: FakeClanforge, client: ClanforgeClient
) -> None:
    error = "x" * 1990 + FORMS["raw"]
    fake.set_status(ASID, IVID, status_reply(6, 40, error=error, failed=1))
    fetched = await client.fetch_status(ASID, IVID)
    assert fetched.status is not None
    assert fetched.status.error is not None
    assert leaked_runs(fetched.status.error) == []


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_log_masks_every_configured_secret_whatever_quotes_it(
    fmt: Literal["text", "json"], capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    settings = parse_config(
        f'[clanforge]\naccess_key = "{ACCESS_KEY}"\nsecret_key = "{SECRET_KEY}"\n'
        '[server]\nadmin_token = "adm-7a7c1e2f9b3d4e5f"\n',
        {},
    )
    configure_logging("INFO", fmt, settings.secret_values())
    log = logging.getLogger("notifier.test")
    for text in FORMS.values():
        log.warning("upstream said: %s", text)
    log.warning("token adm-7a7c1e2f9b3d4e5f was refused")
    try:
        raise RuntimeError(f"boom {SECRET_KEY[:20]}")
    except RuntimeError:
        log.exception("failed")
    err = capsys.readouterr().err
    assert "upstream said" in err
    assert leaked_runs(err) == []
    assert "adm-7a7c" not in err


def test_check_config_masks_user_info_in_base_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = toml.write_config(
        tmp_path / "notifier.toml",
        toml.clanforge(
            "https://svc-user:Pr0xyPassw0rd@clanforge.proxy.example/", ACCESS_KEY, SECRET_KEY
        ),
        toml.table("slack", base_url="https://bot:SlackProxyPass99@slack.proxy.example/api/"),
    )
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "clanforge.proxy.example" in out
    for secret in ("Pr0xyPassw0rd", "svc-user", "SlackProxyPass99", ACCESS_KEY, SECRET_KEY):
        assert secret not in out
