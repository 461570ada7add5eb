"""Our signatures verify with the reference ``standardwebhooks`` package, also during rotation,
and ``check_request`` tells a receiver which part of a request is wrong."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from notifier.core.clock import utc_now
from notifier.notify.signing import check_request, parse_raw_request, standard_headers

OLD = "whsec_" + base64.b64encode(b"old-secret-old-secret-old-secret").decode()
NEW = "whsec_" + base64.b64encode(b"new-secret-new-secret-new-secret!!").decode()
OTHER = "whsec_" + base64.b64encode(b"someone-else-someone-else-123456").decode()
BODY = json.dumps({"type": "imageversion.failed", "label": "ünïcode"}, ensure_ascii=False).encode()


def _now() -> datetime:
    return utc_now().replace(microsecond=0)


def test_one_secret_signature_verifies_with_standardwebhooks() -> None:
    headers = standard_headers("evt_1", _now(), BODY, [OLD])

    assert headers["webhook-signature"].startswith("v1,")
    assert " " not in headers["webhook-signature"]
    assert standardwebhooks.Webhook(OLD).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER).verify(BODY, headers)


def test_during_rotation_receivers_on_either_secret_verify() -> None:
    headers = standard_headers("evt_1", _now(), BODY, [OLD, NEW])

    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (OLD, NEW):
        assert standardwebhooks.Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(OTHER).verify(BODY, headers)


@pytest.mark.parametrize(
    "secret",
    [OLD, NEW, "whsec_" + base64.b64encode(b"unpadded-secret-1").decode().rstrip("="), "c2VjcmV0"],
    ids=["padded", "longer", "unpadded", "without-prefix"],
)
def test_signature_is_byte_for_byte_the_reference_librarys(secret: str) -> None:
    sent = datetime(2026, 11, 28, 18, 4, 5, 999999, tzinfo=UTC)
    for _ in range(2):  # the second time from the cached key
        headers = standard_headers("evt_01JDEMO", sent, BODY, [secret])
        reference = standardwebhooks.Webhook(secret).sign("evt_01JDEMO", sent, BODY.decode())
        assert headers["webhook-signature"] == reference


def test_no_secret_means_no_signature_header() -> None:
    headers = standard_headers("evt_1", _now(), BODY, [])
    assert set(headers) == {"webhook-id", "webhook-timestamp"}


def test_timestamp_is_whole_unix_seconds_of_a_non_utc_clock() -> None:
    sent = datetime(2026, 11, 28, 18, 4, 5, tzinfo=UTC).astimezone()
    headers = standard_headers("evt_1", sent, BODY, [OLD])
    assert headers["webhook-timestamp"] == str(int(sent.timestamp()))


def test_check_request_accepts_a_good_request_naming_the_matching_signature() -> None:
    now = _now()
    headers = standard_headers("evt_1", now, BODY, [OLD, NEW])

    check = check_request(headers, BODY, NEW, now + timedelta(seconds=3))

    assert check.ok
    assert check.findings[0] == "signature: matches (2 of 2 offered)"
    assert "3 s old" in check.findings[1]


def test_check_request_blames_the_secret_or_body_and_shows_the_expected_signature() -> None:
    now = _now()
    headers = standard_headers("evt_1", now, BODY, [OLD])
    expected = standard_headers("evt_1", now, BODY + b" ", [OLD])["webhook-signature"]

    check = check_request(headers, BODY + b" ", OLD, now)

    assert not check.ok
    assert "none of the 1 offered matches" in check.findings[0]
    assert expected in check.findings[0]


def test_check_request_blames_an_old_timestamp_even_when_the_signature_matches() -> None:
    sent = _now() - timedelta(hours=2)
    headers = standard_headers("evt_1", sent, BODY, [OLD])

    check = check_request(headers, BODY, OLD, _now())

    assert not check.ok
    assert check.findings[0].startswith("signature: matches")
    assert "receivers reject more than 5 minutes off" in check.findings[1]


@pytest.mark.parametrize(
    ("headers", "secret", "finding"),
    [
        ({"webhook-id": "e"}, OLD, "missing header(s): webhook-timestamp, webhook-signature"),
        (
            {"webhook-id": "e", "webhook-timestamp": "yesterday", "webhook-signature": "v1,x"},
            OLD,
            "webhook-timestamp 'yesterday' is not Unix seconds",
        ),
        (
            {"webhook-id": "e", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
            "whsec_not*base64",
            "the secret is not whsec_<base64>",
        ),
    ],
)
def test_check_request_names_what_is_unusable(
    headers: dict[str, str], secret: str, finding: str
) -> None:
    check = check_request(headers, BODY, secret, _now())
    assert not check.ok
    assert check.findings == (finding,)


def test_raw_request_parsing_skips_the_request_line_and_honours_content_length() -> None:
    raw = b'POST /hook HTTP/1.1\r\nHost: x\r\nWebhook-Id: evt_1\r\nContent-Length: 4\r\n\r\n{"a"\n'
    headers, body = parse_raw_request(raw)
    assert headers["webhook-id"] == "evt_1"
    assert headers["host"] == "x"
    assert body == b'{"a"'


def test_raw_request_without_a_blank_line_is_refused() -> None:
    with pytest.raises(ValueError, match="no blank line"):
        parse_raw_request(b"webhook-id: x\n")


def test_check_request_spots_a_trailing_newline_the_sender_did_not_sign() -> None:
    now = _now()
    headers = standard_headers("evt_1", now, BODY, [OLD])

    check = check_request(headers, BODY + b"\n", OLD, now)

    assert not check.ok
    assert check.findings[0].startswith(
        "signature: matches only without the body's trailing newline"
    )
