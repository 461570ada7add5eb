"""The one URL redactor: where a URL points, never the credentials it may carry."""

from __future__ import annotations

import pytest

from notifier.core.urls import PathShown, redact_url

SECRET_BEARING = [
    "https://bot:s3cret@chat.example.com/hook",
    "https://chat.example.com/api/webhooks/123/s3cret",
    "https://chat.example.com/hook?token=s3cret",
    "https://chat.example.com/hook#s3cret",
    "https://s3cret@chat.example.com:8443/",
    "http://[::1]:9/hook?sig=s3cret",
]


@pytest.mark.parametrize("url", SECRET_BEARING)
@pytest.mark.parametrize("path", ["drop", "mark"])
def test_no_user_info_path_query_or_fragment_is_ever_shown(url: str, path: PathShown) -> None:
    assert "s3cret" not in redact_url(url, path=path)


@pytest.mark.parametrize(
    ("url", "path", "shown"),
    [
        ("https://bot:pw@chat.example.com:8443/hook?t=1", "drop", "https://chat.example.com:8443"),
        ("https://chat.example.com/hook", "mark", "https://chat.example.com/…"),
        ("https://chat.example.com/?token=x", "mark", "https://chat.example.com/…"),
        ("https://chat.example.com/", "mark", "https://chat.example.com"),
        ("http://[::1]:9/hook", "drop", "http://[::1]:9"),
        (
            "https://user:pw@api.example.com/cfp/v1/x?token=abc",
            "keep",
            "https://api.example.com/cfp/v1/x",
        ),
        ("/elsewhere?token=abc", "keep", "/elsewhere"),
        ("/elsewhere?token=abc", "drop", "(URL without a host)"),
        ("https://chat.example.com:99999/x", "drop", "(unparsable URL)"),
    ],
)
def test_what_is_shown(url: str, path: PathShown, shown: str) -> None:
    assert redact_url(url, path=path) == shown
