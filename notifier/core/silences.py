"""Silences, in Alertmanager's sense: "we know about this, stop telling us until then".

A silence names what it holds (an image version, an account service, a label glob; several
matchers must all agree) and until when. An event detected while a silence matching its watch is
active is recorded with that silence and not sent; when the silence ends, each Slack live message
it held is brought up to date once. The rules here are pure: which silence holds a watch at a
moment, what a silence's end does to the deliveries it held (:func:`release_held`), and how a
duration or an end time typed by a person is read (strictly, with a bound, so a typo cannot
silence a fleet for a year).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Final

from notifier.core.clock import as_utc
from notifier.core.status import FAILED
from notifier.core.subscriptions import SubscriptionKind

MAX_SILENCE: Final = timedelta(days=30)
"""The longest a silence may last: longer is a watch to remove, not a silence."""
MIN_SILENCE: Final = timedelta(minutes=1)
REASON_LIMIT: Final = 500
CREATED_BY_LIMIT: Final = 120
LABEL_GLOB_LIMIT: Final = 200
MUTE_BUTTON: Final = timedelta(hours=1)
"""What the "Mute 1 h" button on a live message silences its image version for."""

_DURATION: Final = re.compile(r"([1-9][0-9]{0,5})([mhd])")
_UNIT_SECONDS: Final = {"m": 60, "h": 3600, "d": 86400}


class BadSilence(ValueError):
    """What was wrong with a silence as given, in one line for the person who gave it."""


@dataclass(frozen=True, slots=True)
class Matchers:
    """What a silence holds; every matcher set must agree, at least one must be set."""

    image_version_id: int | None = None
    account_service_id: int | None = None
    label_glob: str | None = None
    """Shell-style, case-sensitive, over the watch label (as subscriptions' ``label_glob``)."""

    def __post_init__(self) -> None:
        if (
            self.image_version_id is None
            and self.account_service_id is None
            and not (self.label_glob)
        ):
            raise BadSilence(
                "a silence needs a matcher: an image version, an account service or a label glob"
            )
        if self.label_glob is not None and len(self.label_glob) > LABEL_GLOB_LIMIT:
            raise BadSilence(f"the label glob is longer than {LABEL_GLOB_LIMIT} characters")

    def matches(self, account_service_id: int, image_version_id: int, label: str) -> bool:
        return (
            (self.image_version_id is None or self.image_version_id == image_version_id)
            and (self.account_service_id is None or self.account_service_id == account_service_id)
            and (self.label_glob is None or fnmatchcase(label, self.label_glob))
        )

    def describe(self) -> str:
        """``image version 567890, label "EU*"``: how lists and status pages name it."""
        parts = []
        if self.image_version_id is not None:
            parts.append(f"image version {self.image_version_id}")
        if self.account_service_id is not None:
            parts.append(f"account service {self.account_service_id}")
        if self.label_glob is not None:
            parts.append(f'label "{self.label_glob}"')
        return ", ".join(parts)

    @property
    def only_image_version(self) -> bool:
        """Held nothing but one image version: what the Slack buttons may lift."""
        return (
            self.image_version_id is not None
            and self.account_service_id is None
            and self.label_glob is None
        )


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: Matchers
    starts_at: datetime
    ends_at: datetime
    reason: str = ""
    created_by: str = ""
    source: str = "cli"
    """Where it was made: cli, api, slack (``created_by`` is then a verified ``<@U…>``)."""

    def active_at(self, moment: datetime) -> bool:
        return as_utc(self.starts_at) <= as_utc(moment) < as_utc(self.ends_at)

    def holds(
        self, account_service_id: int, image_version_id: int, label: str, moment: datetime
    ) -> bool:
        return self.active_at(moment) and self.matchers.matches(
            account_service_id, image_version_id, label
        )


def holding_silence(
    silences: Iterable[Silence],
    account_service_id: int,
    image_version_id: int,
    label: str,
    moment: datetime,
) -> Silence | None:
    """The silence that holds this watch at ``moment``, or None.

    With several, the one ending last (then the oldest): that is the one whose end releases
    what is held, so it is the one the record and the live message name.
    """
    holding = [s for s in silences if s.holds(account_service_id, image_version_id, label, moment)]
    if not holding:
        return None
    return max(holding, key=lambda s: (as_utc(s.ends_at), -s.id))


@dataclass(frozen=True, slots=True)
class HeldDelivery:
    """A delivery a silence held back, with what its release depends on."""

    id: int
    subscription_id: int
    subscription_kind: SubscriptionKind
    watch_id: int
    account_service_id: int
    image_version_id: int
    label: str
    state_id: int | None
    """The state the held event found the job in."""
    previous_state_id: int | None
    """The state before it (None: the first sighting)."""

    @property
    def failed_here(self) -> bool:
        """The event is the job going to Failed (not a later event of a job that had failed)."""
        return self.state_id == FAILED and self.previous_state_id != FAILED


@dataclass(frozen=True, slots=True)
class Release:
    """What the end of silences does to the deliveries they held."""

    resume: tuple[int, ...] = ()
    """Sent after all, as the live message's one update ("resume"): one per Slack channel
    subscription and watch."""
    silence: tuple[int, ...] = ()
    """Never sent."""
    resumed: frozenset[tuple[int, int]] = frozenset()
    """The (subscription, watch) pairs given a resume, whose live message needs no other
    refresh."""


def release_held(held: Iterable[HeldDelivery], active: Sequence[Silence], now: datetime) -> Release:
    """Release the held deliveries no ``active`` silence holds at ``now`` (an overlapping silence
    keeps holding): per Slack channel subscription and watch, the one to resume is the last
    failure, else the last; every other one, and every one of another kind (a webhook got the
    event recorded, not sent), is silenced for good."""
    by_pair: dict[tuple[int, int], list[HeldDelivery]] = {}
    for delivery in sorted(held, key=lambda d: d.id):
        if (
            holding_silence(
                active,
                delivery.account_service_id,
                delivery.image_version_id,
                delivery.label,
                now,
            )
            is None
        ):
            by_pair.setdefault((delivery.subscription_id, delivery.watch_id), []).append(delivery)
    resume: list[int] = []
    silence: list[int] = []
    resumed: set[tuple[int, int]] = set()
    for pair, group in by_pair.items():
        if group[0].subscription_kind != "slack_channel":
            silence.extend(d.id for d in group)
            continue
        chosen = ([d for d in group if d.failed_here] or group)[-1]
        resume.append(chosen.id)
        silence.extend(d.id for d in group if d.id != chosen.id)
        resumed.add(pair)
    return Release(tuple(resume), tuple(silence), frozenset(resumed))


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``: a whole number and one unit, from a minute up to 30 days."""
    cleaned = text.strip()
    match = _DURATION.fullmatch(cleaned)
    if match is None:
        shown = cleaned if len(cleaned) <= 20 else cleaned[:20] + "…"
        raise BadSilence(
            f"duration {shown!r} is not a whole number of minutes, hours or days "
            "(write 30m, 2h or 1d)"
        )
    amount = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if amount > MAX_SILENCE:
        raise BadSilence(f"duration {cleaned} is longer than the most a silence may last, 30d")
    return amount


def silence_end(now: datetime, *, duration: timedelta | None, until: datetime | None) -> datetime:
    """When a silence starting ``now`` ends: after ``duration`` or at ``until`` (exactly one)."""
    if (duration is None) == (until is None):
        raise BadSilence("give how long (for, e.g. 2h) or until when (an RFC 3339 time), not both")
    if duration is not None:
        if duration < MIN_SILENCE or duration > MAX_SILENCE:
            raise BadSilence("a silence lasts from 1 minute to 30 days")
        return now + duration
    assert until is not None
    if until.tzinfo is None:
        raise BadSilence("until needs a time zone (2026-12-01T18:00:00Z or +01:00)")
    end = as_utc(until)
    if end - now < MIN_SILENCE:
        raise BadSilence("until must be at least a minute in the future")
    if end - now > MAX_SILENCE:
        raise BadSilence("until is more than 30 days away, the most a silence may last")
    return end


def parse_until(text: str) -> datetime:
    """An RFC 3339 time with its zone (``2026-12-01T18:00:00Z``)."""
    cleaned = text.strip()
    try:
        moment = datetime.fromisoformat(cleaned.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        shown = cleaned if len(cleaned) <= 40 else cleaned[:40] + "…"
        raise BadSilence(
            f"until {shown!r} is not an RFC 3339 time (write 2026-12-01T18:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise BadSilence("until needs a time zone (2026-12-01T18:00:00Z or +01:00)")
    return moment


def check_text(what: str, text: str, limit: int) -> str:
    """A reason or an author: one line, bounded; control characters are refused."""
    if len(text) > limit:
        raise BadSilence(f"{what} is longer than {limit} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadSilence(f"{what} must be one line of text without control characters")
    return text.strip()


@dataclass(frozen=True, slots=True)
class NewSilence:
    """A silence as asked for (CLI, API), checked: what the store writes."""

    matchers: Matchers
    ends_at: datetime
    reason: str
    created_by: str


def new_silence(
    now: datetime,
    matchers: Matchers,
    *,
    duration: str | None,
    until: str | None,
    reason: str,
    created_by: str,
    names: tuple[str, str] = ("reason", "created_by"),
) -> NewSilence:
    """Read a silence as a person gave it; :class:`BadSilence` names the first problem.
    ``names`` are how the caller spells the reason and author (``--reason`` on the CLI)."""
    return NewSilence(
        matchers=matchers,
        ends_at=silence_end(
            now,
            duration=None if duration is None else parse_duration(duration),
            until=None if until is None else parse_until(until),
        ),
        reason=check_text(names[0], reason, REASON_LIMIT),
        created_by=check_text(names[1], created_by, CREATED_BY_LIMIT),
    )


@dataclass(frozen=True, slots=True)
class MuteShown:
    """What a live message says of the silence holding its image version."""

    silence_id: int
    ends_at: datetime
    created_by: str
    by_slack_user: bool
    """``created_by`` is a Slack user id Slack verified (``<@U…>``): shown as a mention."""
    reason: str = ""
    liftable: bool = True
    """Held by an image-version silence, which the Unmute button may end."""

    @classmethod
    def of(cls, silence: Silence) -> MuteShown:
        return cls(
            silence_id=silence.id,
            ends_at=silence.ends_at,
            created_by=silence.created_by,
            by_slack_user=silence.source == "slack",
            reason=silence.reason,
            liftable=silence.matchers.only_image_version,
        )
