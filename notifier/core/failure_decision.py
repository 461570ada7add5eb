"""What a failed send means: try again when, dead why, or disable the subscription.

Pure, over the failure the sink raised and the delivery's own facts, so that every branch is
tested without a database or a receiver. The dispatcher carries the decision out: it records
the outcome, logs it for the operator and holds the receiver back when it asked to slow down.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.core.delivery_failure import DeliveryFailed
from notifier.core.retry import GiveUp, RetryPolicy


@dataclass(frozen=True, slots=True)
class RetryLater:
    at: datetime
    error: str
    """What the delivery's ``last_error`` says until the next attempt."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """Dead at once: the receiver's answer means trying again cannot help."""

    error: str


@dataclass(frozen=True, slots=True)
class GaveUp:
    """Dead after retries: too many attempts, or the next one would come too late."""

    error: str
    """The last failure with why no attempt follows, as ``deliveries list`` shows it."""
    last_failure: str
    why: str


@dataclass(frozen=True, slots=True)
class DisableSubscription:
    """The receiver asked never to be called again (a webhook's 410): the delivery is dead and
    the subscription disabled until an operator enables it."""

    error: str


FailureDecision = RetryLater | Rejected | GaveUp | DisableSubscription


def decide_failure(
    failure: DeliveryFailed,
    *,
    attempts: int,
    now: datetime,
    created_at: datetime,
    policy: RetryPolicy,
    rand: Callable[[], float] = random.random,
) -> FailureDecision:
    """The decision after ``attempts`` failed tries (this one included) of a delivery queued at
    ``created_at``; a ``Retry-After`` is a floor for the next try (see :class:`RetryPolicy`)."""
    if failure.gone:
        return DisableSubscription(failure.reason)
    if failure.permanent:
        return Rejected(failure.reason)
    decision = policy.decide(attempts, now, created_at, retry_after=failure.retry_after, rand=rand)
    if not isinstance(decision, GiveUp):
        return RetryLater(decision.at, failure.reason)
    return GaveUp(f"{failure.reason} ({decision.why})", failure.reason, decision.why)


def receiver_hold(failure: DeliveryFailed, now: datetime) -> datetime | None:
    """Until when nothing more goes to this receiver: a rate limit (``Retry-After``) is the
    receiver's (Slack's per channel, a webhook endpoint's), not one image version's."""
    if failure.retry_after is None or failure.permanent:
        return None
    return now + timedelta(seconds=failure.retry_after)
