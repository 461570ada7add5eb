"""Several Clanforge credential pairs behind one status source, each with its own rate limit.

Every watch is polled with the credential bound to its account service (``[[clanforge.account]]``,
or the default pair under ``[clanforge]``). All credentials share the process's one Clanforge HTTP
session; each has its own :class:`TokenBucket`, since Clanforge limits requests per credential.

A 429 slows that credential's bucket. A 401 or 403 means the credential itself is refused: for the
rest of that poll round every other poll with it fails at once with the same reason and no request
is sent, so each of its watches is paused (see the poll plan) without hammering upstream with keys
it has just refused. The next round asks again (:meth:`ClanforgeAccounts.new_round`), so a watch
resumed after the keys or the access were fixed is really polled, and a watch of the credential
that was not due yet costs at most one refused request before it is paused too.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

from notifier.clanforge.client import ClanforgeClient, clanforge_session
from notifier.clanforge.limiter import TokenBucket
from notifier.clanforge.options import ClanforgeOptions, Credential
from notifier.clanforge.shared_budget import SharedTurns, credential_key
from notifier.core.pacing import PaceLedger
from notifier.core.status import FetchedStatus
from notifier.core.upstream_errors import (
    ACCESS_DENIED,
    CREDENTIALS_REJECTED,
    RATE_LIMITED,
    UpstreamError,
)

log = logging.getLogger(__name__)

CREDENTIAL_REASONS: Final = frozenset({CREDENTIALS_REJECTED, ACCESS_DENIED})


@dataclass(slots=True)
class _Account:
    credential: Credential
    client: ClanforgeClient
    bucket: TokenBucket
    turns: SharedTurns | None = None
    """The credential's turns shared with other replicas (None: this process alone)."""
    rejected: UpstreamError | None = None


class ClanforgeAccounts:
    """Routes each request to the credential bound to its account service, under its limit."""

    def __init__(
        self,
        accounts: list[tuple[Credential, ClanforgeClient]],
        *,
        now: Callable[[], float] = time.monotonic,
        ledger: PaceLedger | None = None,
    ) -> None:
        """``ledger``: where the credentials' turns are shared with other replicas (see
        :mod:`notifier.clanforge.shared_budget`); None leaves each process its own budget."""
        if not accounts:
            raise ValueError("at least one Clanforge credential is needed")
        self._accounts = [
            _Account(
                credential,
                client,
                TokenBucket(credential.requests_per_second, credential.burst, now=now),
                None
                if ledger is None
                else SharedTurns(
                    ledger,
                    credential_key(credential.access_key),
                    credential.requests_per_second,
                    credential.burst,
                ),
            )
            for credential, client in accounts
        ]
        self._by_asid = {
            asid: account
            for account in self._accounts
            for asid in account.credential.account_service_ids
        }
        self._default = next(
            (a for a in self._accounts if not a.credential.account_service_ids), None
        )

    def bucket(self, name: str) -> TokenBucket:
        """The rate limiter of the named credential (for the status page and tests)."""
        for account in self._accounts:
            if account.credential.name == name:
                return account.bucket
        raise KeyError(name)

    def turns(self, name: str) -> SharedTurns | None:
        """The named credential's turns shared with other replicas, if any (for tests)."""
        for account in self._accounts:
            if account.credential.name == name:
                return account.turns
        raise KeyError(name)

    def turn_share(self, name: str) -> float:
        """This replica's part of the named credential's turns lately (1 without a shared
        ledger, or alone on it): see :meth:`SharedTurns.share`."""
        turns = self.turns(name)
        return 1.0 if turns is None else turns.share()

    def rates(self) -> dict[str, float]:
        """Each credential's configured requests per second, by name."""
        return {a.credential.name: a.credential.requests_per_second for a in self._accounts}

    def new_round(self) -> None:
        """A new poll round: credentials refused in the last one are asked again."""
        for account in self._accounts:
            account.rejected = None

    def credential_name(self, account_service_id: int) -> str | None:
        account = self._account(account_service_id)
        return None if account is None else account.credential.name

    async def fetch_status(
        self, account_service_id: int, image_version_id: int, known_digest: bytes | None = None
    ) -> FetchedStatus:
        account = self._ready(account_service_id)
        await self._turn(account)
        try:
            return await account.client.fetch_status(
                account_service_id, image_version_id, known_digest
            )
        except UpstreamError as error:
            raise await self._noted(account, error) from None

    async def fetch_install_targets(self, account_service_id: int) -> list[int]:
        account = self._ready(account_service_id)
        await self._turn(account)
        try:
            return await account.client.fetch_install_targets(account_service_id)
        except UpstreamError as error:
            raise await self._noted(account, error) from None

    @staticmethod
    async def _turn(account: _Account) -> None:
        await account.bucket.acquire()
        if account.turns is not None:
            await account.turns.wait()

    def _account(self, account_service_id: int) -> _Account | None:
        return self._by_asid.get(account_service_id, self._default)

    def _ready(self, account_service_id: int) -> _Account:
        account = self._account(account_service_id)
        if account is None:
            raise UpstreamError(
                ACCESS_DENIED,
                f"no Clanforge credential is configured for account service {account_service_id} "
                "(add it to a [[clanforge.account]])",
            )
        if account.rejected is not None:
            raise account.rejected
        return account

    async def _noted(self, account: _Account, error: UpstreamError) -> UpstreamError:
        """Act on what the error says about the credential, and name the credential in it."""
        name = account.credential.name
        if error.reason == RATE_LIMITED and account.turns is not None:
            # Every replica waits out the Retry-After (or a second), not only this one.
            await account.turns.push(error.retry_after if error.retry_after is not None else 1.0)
        if error.reason == RATE_LIMITED and account.bucket.rate_limited(error.retry_after):
            log.warning(
                "Clanforge rate-limited credential %r: waiting %s, then %.2f requests/s",
                name,
                f"{error.retry_after:g} s (Retry-After)"
                if error.retry_after is not None
                else "a moment",
                account.bucket.rate,
            )
        named = UpstreamError(
            error.reason,
            f"{error.message} [credential {name!r}]",
            status=error.status,
            retry_after=error.retry_after,
            credential=name,
        )
        if error.reason in CREDENTIAL_REASONS:
            account.rejected = named
        return named


@contextlib.asynccontextmanager
async def open_clanforge_accounts(
    options: ClanforgeOptions, ledger: PaceLedger | None = None
) -> AsyncIterator[ClanforgeAccounts]:
    """The one Clanforge session with a client per credential on it, closed on exit; the
    credentials' turns shared through ``ledger`` when given."""
    async with clanforge_session(options) as session:
        yield ClanforgeAccounts(
            [
                (
                    credential,
                    ClanforgeClient(
                        session, options.base_url, credential.access_key, credential.secret_key
                    ),
                )
                for credential in options.credentials
            ],
            ledger=ledger,
        )
