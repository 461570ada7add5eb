"""The ``notifier`` command line: the contract in DESIGN.md, exit codes 0 / 1 / 2.

Every error a user can cause ends as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import ConfigError, Settings, config_path, load_config
from notifier.config_output import render_effective_config
from notifier.core.clock import utc_now
from notifier.core.urls import redact_url
from notifier.logs import configure_logging
from notifier.store.engine import create_engine
from notifier.store.migrate import upgrade
from notifier.store.outbox import DeliveryView, list_deliveries, retry_deliveries
from notifier.store.retention import prune
from notifier.store.subscriptions import (
    NotDisabled,
    SubscriptionView,
    enable_subscription,
    list_subscriptions,
)
from notifier.store.watches import (
    DuplicateWatch,
    add_watch,
    list_watches,
    remove_watch,
    resume_watches,
)
from notifier.text_table import format_table, format_time

# Where `webhook verify` finds the secret when --secret is not given.
WEBHOOK_SECRET_ENV_VAR = "NOTIFIER_WEBHOOK_SECRET"  # noqa: S105 - a variable's name

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments: exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other error we print; --help has the details.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# The largest id or count any of our databases can hold (a signed 64-bit integer).
_MAX_INT = 2**63 - 1


def _positive_int(text: str) -> int:
    shown = text if len(text) <= 24 else f"{text[:20]}…"
    try:
        value = int(text) if len(text) <= 40 else None
    except ValueError:
        value = None
    if value is None:
        raise argparse.ArgumentTypeError(f"{shown!r} is not a whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{shown!r} must be positive")
    if value > _MAX_INT:
        raise argparse.ArgumentTypeError(f"{shown!r} is larger than any id or count can be")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    config_help = "configuration file (default: $NOTIFIER_CONFIG or config/notifier.toml)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help=config_help)

    parser = _Parser(
        prog="notifier",
        description="Watches Clanforge image version builds and notifies Slack and webhooks.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = parent.add_parser(name, help=help_text, parents=[common])
        return sub

    command("run", "run the service")
    demo = command("demo", "run the real service against a simulated Clanforge, no setup needed")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    command("check-config", "validate and print the effective configuration, secrets masked")
    health = command("health", "ask the configured server's /healthz (the image's HEALTHCHECK)")
    health.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        help="seconds to wait for the answer (default: 5)",
    )

    db = command("db", "database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    command("upgrade", "bring the schema up to date", db_commands)
    prune = command("prune", "remove history older than [retention] keeps", db_commands)
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    watch = command("watch", "the watch list")
    watch_commands = watch.add_subparsers(dest="watch_command", required=True, metavar="ACTION")
    add = command("add", "watch an image version", watch_commands)
    add.add_argument("--asid", type=_positive_int, required=True, help="account service id")
    add.add_argument("--image-version", type=_positive_int, required=True)
    add.add_argument("--label", default="", help="how people will see it in messages")
    add.add_argument(
        "--interval",
        type=_positive_float,
        help="poll it this often (seconds) while unfinished, instead of by state",
    )
    command("list", "list watched image versions with their state", watch_commands)
    remove = command("remove", "stop watching an image version", watch_commands)
    remove.add_argument("--image-version", type=_positive_int, required=True)
    remove.add_argument("--asid", type=_positive_int, help="only under this account service")
    resume = command(
        "resume", "poll paused watches again (after fixing keys or access)", watch_commands
    )
    resume.add_argument("--image-version", type=_positive_int, help="only this image version")
    resume.add_argument("--asid", type=_positive_int, help="only under this account service")

    subscription = command("subscription", "where notifications go")
    sub_commands = subscription.add_subparsers(
        dest="subscription_command", required=True, metavar="ACTION"
    )
    command("list", "list subscriptions", sub_commands)
    enable = command(
        "enable", "send to a subscription again after its receiver disabled it", sub_commands
    )
    enable.add_argument("name", metavar="NAME")

    webhook = command("webhook", "try webhook subscriptions and signatures")
    webhook_commands = webhook.add_subparsers(
        dest="webhook_command", required=True, metavar="ACTION"
    )
    webhook_test = command(
        "test", "send a signed sample event; print status and response time", webhook_commands
    )
    webhook_test.add_argument("name", metavar="NAME", help="webhook subscription name")
    webhook_verify = command(
        "verify",
        "check the signature of a captured request read from stdin (headers, blank line, body)",
        webhook_commands,
    )
    webhook_verify.add_argument(
        "--secret",
        help="the whsec_... secret the receiver verifies with "
        f"(default: ${WEBHOOK_SECRET_ENV_VAR}, which keeps it out of shell history)",
    )

    events = command("events", "recent events, newest first")
    events.add_argument("--limit", type=_positive_int, default=50)
    events.add_argument("--image-version", type=_positive_int)

    deliveries = command("deliveries", "the outbox")
    delivery_commands = deliveries.add_subparsers(
        dest="deliveries_command", required=True, metavar="ACTION"
    )
    listing = command("list", "list deliveries, newest first", delivery_commands)
    listing.add_argument("--status", choices=["pending", "delivered", "dead"])
    listing.add_argument("--limit", type=_positive_int, default=50)
    retry = command("retry", "send dead deliveries again", delivery_commands)
    retry.add_argument("ids", nargs="*", type=_positive_int, metavar="ID")
    retry.add_argument("--all-dead", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"notifier: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OperationalError, DBAPIError) as exc:
        reason = str(exc.orig) if exc.orig is not None else str(exc)
        print(f"notifier: database error: {reason.splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _settings(args: argparse.Namespace) -> Settings:
    return load_config(config_path(args.config, os.environ), os.environ)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from notifier.demo import run_demo

        return asyncio.run(run_demo(seconds=args.seconds))
    if args.command == "webhook" and args.webhook_command == "verify":
        secret = args.secret or os.environ.get(WEBHOOK_SECRET_ENV_VAR)
        if not secret:
            raise UsageError(f"give --secret whsec_... or set {WEBHOOK_SECRET_ENV_VAR}")
        return _webhook_verify(secret)
    settings = _settings(args)
    if args.command == "webhook":
        return asyncio.run(_webhook_test(settings, args.name))
    if args.command == "health":
        return asyncio.run(_health(settings, args.timeout))
    if args.command == "check-config":
        print(render_effective_config(settings), end="")
        return EXIT_OK
    if args.command == "run":
        configure_logging(settings.log.level, settings.log.format, settings.secret_values())
        return asyncio.run(_run(settings))
    if _command_key(args) == "db prune":
        return asyncio.run(
            _with_database(settings, lambda engine: _db_prune(engine, args, settings))
        )
    handler = _DATABASE_COMMANDS[_command_key(args)]
    return asyncio.run(_with_database(settings, lambda engine: handler(engine, args)))


def _command_key(args: argparse.Namespace) -> str:
    for name in ("db_command", "watch_command", "subscription_command", "deliveries_command"):
        action = getattr(args, name, None)
        if action:
            return f"{args.command} {action}"
    return str(args.command)


def _webhook_verify(secret: str) -> int:
    from notifier.notify.webhook_tools import verify_raw

    check = verify_raw(sys.stdin.buffer.read(), secret, utc_now())
    for finding in check.findings:
        print(finding)
    print("valid" if check.ok else "NOT valid")
    return EXIT_OK if check.ok else EXIT_FAILURE


async def _webhook_test(settings: Settings, name: str) -> int:
    from notifier.config import NoSuchWebhook
    from notifier.notify.webhook_tools import send_test

    try:
        subscription = settings.webhook_subscription(name)
    except NoSuchWebhook as exc:
        raise UsageError(str(exc)) from None
    ok, line = await send_test(
        subscription, settings.delivery.timeout_seconds, settings.network.policy()
    )
    print(line, file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILURE


async def _health(settings: Settings, wait_seconds: float) -> int:
    """Exit 0 when the service's own server answers ``/healthz`` with 200, else 1, in one line.

    A container's HEALTHCHECK runs inside the container, so a wildcard ``listen`` is asked on
    loopback.
    """
    import aiohttp

    if settings.server is None:
        print("notifier: health: no [server] section, so there is no /healthz", file=sys.stderr)
        return EXIT_FAILURE
    host = settings.server.host.strip("[]")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - mapped away
    if settings.server.port == 0:
        print("notifier: health: server.listen has port 0, so the port is unknown", file=sys.stderr)
        return EXIT_FAILURE
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}/healthz"
    headers: dict[str, str] = {}
    if settings.server.admin_token is not None:
        headers["Authorization"] = f"Bearer {settings.server.admin_token.get_secret_value()}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait_seconds)) as session,
            session.get(url, headers=headers, allow_redirects=False) as response,
        ):
            status = response.status
    except TimeoutError:
        print(f"notifier: health: {url}: no answer within {wait_seconds:g} s", file=sys.stderr)
        return EXIT_FAILURE
    except aiohttp.ClientError as exc:
        print(f"notifier: health: {url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if status != 200:
        print(f"notifier: health: {url} answered {status}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"ok: {url} answered 200")
    return EXIT_OK


async def _run(settings: Settings) -> int:
    from notifier.service import Service

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Service(settings) as service:
        await service.run(stop)
    return EXIT_OK


async def _with_database(
    settings: Settings, action: Callable[[AsyncEngine], Awaitable[int]]
) -> int:
    engine = create_engine(settings.database.url)
    try:
        await upgrade(engine)
        return await action(engine)
    finally:
        await engine.dispose()


async def _db_upgrade(engine: AsyncEngine, args: argparse.Namespace) -> int:
    print("database schema is up to date")
    return EXIT_OK


async def _watch_add(engine: AsyncEngine, args: argparse.Namespace) -> int:
    try:
        await add_watch(
            engine,
            args.asid,
            args.image_version,
            args.label,
            "cli",
            utc_now(),
            interval_seconds=args.interval,
        )
    except DuplicateWatch as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"watching image version {args.image_version} of account service {args.asid}")
    return EXIT_OK


async def _watch_list(engine: AsyncEngine, args: argparse.Namespace) -> int:
    watches = await list_watches(engine)
    if not watches:
        print("no image versions are watched; add one with `notifier watch add`")
        return EXIT_OK
    rows = []
    for w in watches:
        status = w.status
        rows.append(
            [
                str(w.account_service_id),
                str(w.image_version_id),
                w.label,
                "-" if status is None else status.state,
                "-" if status is None else f"{status.progress}%",
                "-" if status is None else format_time(status.eta),
                w.source if w.active else f"{w.source} (inactive)",
                f"paused: {w.paused_reason}" if w.paused_reason else (w.last_poll_error or ""),
            ]
        )
    print(
        format_table(
            ["ASID", "IMAGE VERSION", "LABEL", "STATE", "PROGRESS", "ETA", "SOURCE", "LAST ERROR"],
            rows,
        )
    )
    return EXIT_OK


async def _watch_remove(engine: AsyncEngine, args: argparse.Namespace) -> int:
    removed = await remove_watch(engine, args.image_version, args.asid)
    if not removed:
        print(f"notifier: image version {args.image_version} is not watched", file=sys.stderr)
        return EXIT_FAILURE
    print(f"stopped watching image version {args.image_version}")
    return EXIT_OK


async def _watch_resume(engine: AsyncEngine, args: argparse.Namespace) -> int:
    resumed = await resume_watches(
        engine, utc_now(), image_version_id=args.image_version, account_service_id=args.asid
    )
    if not resumed:
        print("notifier: no paused watch matches", file=sys.stderr)
        return EXIT_FAILURE
    print(f"resumed {resumed} watch(es); they are polled at the next tick")
    return EXIT_OK


async def _subscription_list(engine: AsyncEngine, args: argparse.Namespace) -> int:
    subscriptions = await list_subscriptions(engine)
    if not subscriptions:
        print("no subscriptions; add [[subscription]] entries to the configuration")
        return EXIT_OK
    rows = [
        [
            s.name,
            s.kind,
            s.target if s.kind == "slack_channel" else redact_url(s.target, path="mark"),
            ", ".join(s.filters.get("events", [])) or "all",
            _subscription_status(s),
            s.source,
        ]
        for s in subscriptions
    ]
    print(format_table(["NAME", "KIND", "TARGET", "EVENTS", "STATUS", "SOURCE"], rows))
    return EXIT_OK


def _subscription_status(s: SubscriptionView) -> str:
    if s.disabled_reason is not None:
        return f"disabled: {s.disabled_reason}"
    return "active" if s.active else "inactive"


async def _subscription_enable(engine: AsyncEngine, args: argparse.Namespace) -> int:
    try:
        await enable_subscription(engine, args.name)
    except NotDisabled as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"subscription {args.name!r} is enabled; its dead deliveries go out again with "
        "`notifier deliveries retry --all-dead`"
    )
    return EXIT_OK


async def _events(engine: AsyncEngine, args: argparse.Namespace) -> int:
    from notifier.store.events import recent_events

    events = await recent_events(engine, limit=args.limit, image_version_id=args.image_version)
    if not events:
        print("no events yet")
        return EXIT_OK
    rows = [
        [
            format_time(e.occurred_at),
            e.type,
            str(e.image_version_id),
            e.label,
            "-" if e.previous is None else e.previous.state,
            e.current.state,
            f"{e.current.progress}%",
            e.id,
        ]
        for e in events
    ]
    print(
        format_table(
            ["TIME", "TYPE", "IMAGE VERSION", "LABEL", "FROM", "TO", "PROGRESS", "ID"], rows
        )
    )
    return EXIT_OK


async def _deliveries_list(engine: AsyncEngine, args: argparse.Namespace) -> int:
    deliveries = await list_deliveries(engine, status=args.status, limit=args.limit)
    if not deliveries:
        print("no deliveries" + (f" with status {args.status}" if args.status else ""))
        return EXIT_OK
    now = utc_now()
    rows = [
        [
            str(d.id),
            d.subscription,
            d.event_type,
            d.event_id,
            str(d.image_version_id),
            d.status,
            str(d.attempts),
            format_time(d.next_attempt_at) if d.status == "pending" else "-",
            _lease(d, now),
            (d.last_error or "")[:80],
        ]
        for d in deliveries
    ]
    print(
        format_table(
            [
                "ID",
                "SUBSCRIPTION",
                "EVENT",
                "EVENT ID",
                "IMAGE VERSION",
                "STATUS",
                "ATTEMPTS",
                "NEXT",
                "LEASED BY",
                "LAST ERROR",
            ],
            rows,
        )
    )
    return EXIT_OK


def _lease(d: DeliveryView, now: datetime) -> str:
    """The replica sending it now; an expired lease means that replica died mid-send."""
    if d.lease_owner is None or d.lease_until is None:
        return "-"
    return d.lease_owner if d.lease_until > now else f"{d.lease_owner} (expired)"


async def _deliveries_retry(engine: AsyncEngine, args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all_dead):
        raise UsageError("give delivery ids or --all-dead, not both or neither")
    count = await retry_deliveries(engine, utc_now(), ids=args.ids, all_dead=args.all_dead)
    print(f"{count} deliver{'y' if count == 1 else 'ies'} queued to be sent again")
    if args.ids and count < len(args.ids):
        print(
            "notifier: some ids were not found, already delivered or being sent right now",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


async def _db_prune(engine: AsyncEngine, args: argparse.Namespace, settings: Settings) -> int:
    retention = settings.retention
    pruned = await prune(engine, retention.policy(), utc_now(), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {pruned.events} events older than {retention.events_days:g} days and "
        f"{pruned.deliveries} finished deliveries (older than {retention.deliveries_days:g} days, "
        "or of those events)"
    )
    return EXIT_OK


_DATABASE_COMMANDS: dict[str, Callable[[AsyncEngine, argparse.Namespace], Awaitable[int]]] = {
    "db upgrade": _db_upgrade,
    "watch add": _watch_add,
    "watch list": _watch_list,
    "watch resume": _watch_resume,
    "watch remove": _watch_remove,
    "subscription list": _subscription_list,
    "subscription enable": _subscription_enable,
    "events": _events,
    "deliveries list": _deliveries_list,
    "deliveries retry": _deliveries_retry,
}
