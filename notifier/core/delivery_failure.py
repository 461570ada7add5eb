"""How a sink says a send did not work, so that the dispatcher can decide what happens next."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """A send that did not reach its receiver.

    ``permanent`` means trying again cannot help (a deleted channel, a revoked token, a 4xx):
    the delivery goes dead at once. Otherwise it is retried, not before ``retry_after`` seconds
    when the receiver asked for that.

    ``gone`` (a webhook's 410) also means the receiver asks us never to call again: the
    subscription is disabled until an operator enables it.
    """

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        gone: bool = False,
    ):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent or gone
        self.retry_after = retry_after
        self.gone = gone
