"""``/imagewatch`` as typed in Slack, parsed into a command: pure, so every wording is tested.

Parsing knows nothing of Slack's HTTP or the database; :mod:`notifier.api.slack_commands` verifies
the request, runs the command and answers. Errors are one line that says what was wrong and how
to write it instead, because the person who reads them is in the middle of typing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from notifier.core.mentions import from_slash_command
from notifier.core.silences import MUTE_BUTTON, BadSilence, parse_duration
from notifier.notify.render import escape_slack

LABEL_LIMIT: Final = 200  # the watches table's label column

USAGE: Final = (
    "*/imagewatch* follows Clanforge image builds in this channel:\n"
    "• `/imagewatch add ACCOUNT_SERVICE_ID IMAGE_VERSION_ID [label] [owner @someone …]`: watch "
    "it and post here; owners are mentioned when it fails\n"
    "• `/imagewatch remove IMAGE_VERSION_ID`: stop posting it here\n"
    "• `/imagewatch list`: what this channel follows\n"
    "• `/imagewatch status IMAGE_VERSION_ID`: its last known state\n"
    "• `/imagewatch mute IMAGE_VERSION_ID [2h]`: send nothing about it for a while "
    "(30m, 2h, 1d; default 1h)\n"
    "• `/imagewatch unmute IMAGE_VERSION_ID`: end its mute now\n"
    "• `/imagewatch help`: this text"
)


@dataclass(frozen=True, slots=True)
class Add:
    account_service_id: int
    image_version_id: int
    label: str
    owners: tuple[str, ...] = ()
    """Mentions as Slack wrote them into the verified request, stored as ``<@U…>``."""


@dataclass(frozen=True, slots=True)
class Remove:
    image_version_id: int


@dataclass(frozen=True, slots=True)
class ListFollowed:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    image_version_id: int


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Mute:
    image_version_id: int
    duration: timedelta


@dataclass(frozen=True, slots=True)
class Unmute:
    image_version_id: int


Command = Add | Remove | ListFollowed | Status | Help | Mute | Unmute


class BadCommand(ValueError):
    """What was wrong with the text, worded for the person who typed it."""


def parse(text: str) -> Command:
    words = text.split()
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    if verb == "help":
        return Help()
    if verb == "list":
        _no_more(verb, args)
        return ListFollowed()
    if verb == "add":
        if len(args) < 2:
            raise BadCommand(
                "add needs an account service id and an image version id: "
                "`/imagewatch add 1234 567890 [label]`"
            )
        rest, owners = _owner_clause(args[2:])
        label = " ".join(rest)
        if len(label) > LABEL_LIMIT:
            raise BadCommand(f"the label is {len(label)} characters long; at most {LABEL_LIMIT}")
        return Add(
            account_service_id=_id("account service id", args[0]),
            image_version_id=_id("image version id", args[1]),
            label=label,
            owners=owners,
        )
    if verb in ("remove", "status"):
        if len(args) != 1:
            raise BadCommand(
                f"{verb} needs exactly one image version id: `/imagewatch {verb} 567890`"
            )
        ivid = _id("image version id", args[0])
        return Remove(ivid) if verb == "remove" else Status(ivid)
    if verb == "mute":
        if len(args) not in (1, 2):
            raise BadCommand(
                "mute needs an image version id and how long: `/imagewatch mute 567890 2h`"
            )
        ivid = _id("image version id", args[0])
        try:
            duration = parse_duration(args[1]) if len(args) == 2 else MUTE_BUTTON
        except BadSilence as exc:
            raise BadCommand(escape_slack(str(exc))) from None
        return Mute(ivid, duration)
    if verb == "unmute":
        if len(args) != 1:
            raise BadCommand(
                "unmute needs exactly one image version id: `/imagewatch unmute 567890`"
            )
        return Unmute(_id("image version id", args[0]))
    raise BadCommand(
        f"unknown subcommand {_quoted(verb)}; use add, remove, list, status, mute, unmute or help"
    )


def _owner_clause(words: list[str]) -> tuple[list[str], tuple[str, ...]]:
    """The label's words and the owners after the last ``owner`` (or ``owners``) keyword.

    Only what Slack itself escaped (``<@U123|name>``, ``<!subteam^S1|@team>``) names an owner:
    that id comes from Slack, not from the typist. A bare ``@name`` means the app does not escape
    users, and is refused rather than guessed at; a label may still say "owner" in passing.
    """
    for at in range(len(words) - 1, -1, -1):
        if words[at].lower() not in ("owner", "owners"):
            continue
        after = words[at + 1 :]
        owners = [from_slash_command(word) for word in after]
        if after and all(owners):
            return words[:at], tuple(dict.fromkeys(o for o in owners if o))
        if any(word.startswith("@") for word in after):
            raise BadCommand(
                "owner needs people picked from Slack's list (type @ and choose them); if they "
                'still arrive as plain text, the operator must turn on "Escape channels, users, '
                'and links" for /imagewatch'
            )
        if after and after[0].startswith("<"):
            raise BadCommand(
                f"owner takes Slack users or user groups, got {_quoted(' '.join(after))}"
            )
    return words, ()


def _id(what: str, word: str) -> int:
    if not word.isascii() or not word.isdigit() or int(word) <= 0:
        raise BadCommand(f"the {what} must be a positive number, got {_quoted(word)}")
    value = int(word)
    if value >= 2**63:
        raise BadCommand(f"the {what} {word[:24]} is too large")
    return value


def _no_more(verb: str, args: list[str]) -> None:
    if args:
        raise BadCommand(f"{verb} takes no arguments, got {_quoted(' '.join(args))}")


def _quoted(word: str) -> str:
    """Echo what was typed, short and inert: Slack shows it back in the reply."""
    shown = word if len(word) <= 40 else word[:40] + "…"
    return "`" + escape_slack(shown.replace("`", "'")) + "`"
