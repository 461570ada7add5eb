"""``Retry-After`` as seconds to wait: one reading for Clanforge, webhooks and Slack alike."""

from __future__ import annotations

import math
import re
from datetime import datetime
from email.utils import parsedate_to_datetime

from notifier.core.clock import as_utc, utc_now

# Delta-seconds; a fraction is tolerated. No exponent, no "inf": those are not HTTP.
_SECONDS = re.compile(r"[+-]?\d{1,20}(?:\.\d{1,20})?")


def parse_retry_after(
    value: str | None, now: datetime | None = None, *, cap: float = math.inf
) -> float | None:
    """Seconds to wait per ``Retry-After`` (delta-seconds or an HTTP date); None when unusable.

    A date in the past, or a negative number, means "now" (0), not "never". ``cap`` bounds what
    a caller is willing to take at face value (Clanforge: a day, so no watch is parked for
    months); a receiver's long wait is left whole for the retry policy to judge against its age
    limit.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = (as_utc(when) - (now if now is not None else utc_now())).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)
