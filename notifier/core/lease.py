"""A lease on claimed work: who holds it, from when, for how long.

Both stores lease what they claim (watches for a poll, deliveries for a send) and free it for
another owner once it has run out; one value says it for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Lease:
    """Work claimed at ``start`` is ``owner``'s (a replica id, ``host:pid:suffix``) until
    :attr:`until`; what another owner leased runs out for this claim when its own lease ended
    before ``start``."""

    owner: str
    start: datetime
    length: timedelta

    @property
    def until(self) -> datetime:
        return self.start + self.length
