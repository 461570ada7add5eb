"""How ``/imagewatch`` text is read, and what a person is told when it cannot be."""

from __future__ import annotations

import pytest

from notifier.api.imagewatch_command import (
    Add,
    BadCommand,
    Help,
    ListFollowed,
    Remove,
    Status,
    parse,
)


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("add 1234 567890", Add(1234, 567890, "")),
        ("add 1234 567890 EU fleet, build 1.4.2", Add(1234, 567890, "EU fleet, build 1.4.2")),
        ("  ADD   1234   567890  ", Add(1234, 567890, "")),
        ("remove 567890", Remove(567890)),
        ("list", ListFollowed()),
        ("status 567890", Status(567890)),
        ("help", Help()),
        ("", Help()),
    ],
)
def test_each_subcommand_is_understood(text: str, command: object) -> None:
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("add 1234", "add needs an account service id and an image version id"),
        ("add abc 567890", "the account service id must be a positive number, got `abc`"),
        ("add 1234 -5", "the image version id must be a positive number, got `-5`"),
        ("add 1234 0", "the image version id must be a positive number, got `0`"),
        ("add 1234 99999999999999999999", "the image version id 99999999999999999999 is too large"),
        ("add 1234 \uff15\uff16\uff17", "the image version id must be a positive number"),
        ("remove", "remove needs exactly one image version id"),
        ("status 1 2", "status needs exactly one image version id"),
        ("list everything", "list takes no arguments, got `everything`"),
        (
            "watch 1234",
            "unknown subcommand `watch`; use add, remove, list, status, mute, unmute or help",
        ),
        ("<!channel> hi", "unknown subcommand `&lt;!channel&gt;`"),
    ],
)
def test_malformed_text_gets_one_line_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(BadCommand) as caught:
        parse(text)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_overlong_label_is_refused_with_the_limit() -> None:
    with pytest.raises(BadCommand, match="the label is 201 characters long; at most 200"):
        parse("add 1 2 " + "x" * 201)
