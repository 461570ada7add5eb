"""How a sink says a send did not work, so that the dispatcher can decide what happens next."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """A send that did not reach its receiver.

    ``permanent`` means trying again cannot help (a deleted channel, a revoked token, a 4xx):
    the delivery goes dead at once. Otherwise it is retried, not before ``retry_after`` seconds
    when the receiver asked for that.
    """

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
