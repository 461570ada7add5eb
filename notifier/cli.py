"""The ``notifier`` command line: the contract in DESIGN.md, exit codes 0 / 1 / 2.

Every error a user can cause ends as one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.config import ConfigError, Settings, config_path, load_config
from notifier.config_output import config_warnings, render_effective_config
from notifier.core.clock import utc_now
from notifier.core.ids import BadId, parse_id
from notifier.core.mentions import MentionProblem, check_owner
from notifier.core.silences import BadSilence, Matchers, new_silence
from notifier.core.urls import redact_url
from notifier.database import (
    DatabaseMissing,
    describe,
    existing_database,
    make_parent_directory,
    upgrade_and_sync,
)
from notifier.logs import configure_logging
from notifier.store.outbox import (
    DeliveryView,
    delivery_states,
    list_deliveries,
    retry_deliveries,
)
from notifier.store.retention import prune
from notifier.store.silences import add_silence, end_silences, expire_silence, list_silences
from notifier.store.subscriptions import (
    NotDisabled,
    SubscriptionView,
    enable_subscription,
    list_subscriptions,
)
from notifier.store.watches import (
    DuplicateWatch,
    WatchView,
    add_watch,
    list_watches,
    remove_watch,
    resume_watches,
)
from notifier.text_table import format_table, format_time, terminal_width

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


def _id(text: str) -> int:
    """Ids and counts: one range and one message, the API's (core.ids)."""
    try:
        return parse_id(text)
    except BadId as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _owner(text: str) -> str:
    try:
        return check_owner(text)
    except MentionProblem as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    config_help = "configuration file (default: $NOTIFIER_CONFIG or config/notifier.toml)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help=config_help)
    listing = argparse.ArgumentParser(add_help=False)
    shape = listing.add_mutually_exclusive_group()
    shape.add_argument(
        "--json", action="store_true", help="print a JSON array with every field, for scripts"
    )
    shape.add_argument(
        "--wide", action="store_true", help="print every column in full, however wide"
    )

    parser = _Parser(
        prog="notifier",
        description="Watches Clanforge image version builds and notifies Slack and webhooks.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, parent: Any = commands, *, lists: bool = False
    ) -> argparse.ArgumentParser:
        parents = [common, listing] if lists else [common]
        sub: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text, parents=parents
        )
        return sub

    command("run", "run the service (creates the database and its directory if missing)")
    demo = command(
        "demo",
        "run the real service against a simulated Clanforge, no setup needed; with --config, "
        "the status page listens where the file's [server] listen says",
    )
    demo.add_argument(
        "--seconds", type=_positive_float, default=None, help="stop after this many seconds"
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the status page up after the story ends, until Ctrl-C",
    )
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
    command(
        "upgrade",
        "create the database or bring its schema up to date, and load the file's watches and "
        "subscriptions into it",
        db_commands,
    )
    prune = command("prune", "remove history older than [retention] keeps", db_commands)
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")

    watch = command("watch", "the watch list")
    watch_commands = watch.add_subparsers(dest="watch_command", required=True, metavar="ACTION")
    add = command("add", "watch an image version", watch_commands)
    add.add_argument("--asid", type=_id, required=True, help="account service id")
    add.add_argument("--image-version", type=_id, required=True, help="image version id")
    add.add_argument("--label", default="", help="how people will see it in messages")
    add.add_argument(
        "--interval",
        type=_positive_float,
        help="poll it this often (seconds) while unfinished, instead of by state",
    )
    add.add_argument(
        "--owner",
        type=_owner,
        action="append",
        default=[],
        help='a Slack user "<@U…>" or user group "<!subteam^S…>" mentioned when it fails '
        "(repeatable)",
    )
    command("list", "list watched image versions with their state", watch_commands, lists=True)
    remove = command(
        "remove",
        "stop watching an image version (one from the configuration file is removed there)",
        watch_commands,
    )
    remove.add_argument("--image-version", type=_id, required=True, help="image version id")
    remove.add_argument("--asid", type=_id, help="only under this account service")
    resume = command(
        "resume", "poll paused watches again (after fixing keys or access)", watch_commands
    )
    resume.add_argument("--image-version", type=_id, help="only this image version")
    resume.add_argument("--asid", type=_id, help="only under this account service")

    subscription = command("subscription", "where notifications go")
    sub_commands = subscription.add_subparsers(
        dest="subscription_command", required=True, metavar="ACTION"
    )
    command("list", "list subscriptions", sub_commands, lists=True)
    enable = command(
        "enable", "send to a subscription again after its receiver disabled it", sub_commands
    )
    enable.add_argument("name", metavar="NAME", help="subscription name")

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
        "name",
        metavar="NAME",
        nargs="?",
        help="verify with this webhook subscription's secrets, read from --config",
    )
    webhook_verify.add_argument(
        "--secret",
        help="the whsec_... secret the receiver verifies with "
        f"(default: ${WEBHOOK_SECRET_ENV_VAR}, which keeps it out of shell history)",
    )

    events = command("events", "recent events, newest first", lists=True)
    events.add_argument("--limit", type=_id, default=50, help="at most this many (default 50)")
    events.add_argument("--image-version", type=_id, help="only this image version")

    silence = command("silence", "hold notifications you already know about, for a while")
    silence_commands = silence.add_subparsers(
        dest="silence_command", required=True, metavar="ACTION"
    )
    silence_add = command(
        "add",
        "silence what the matchers name (all given must match) from now until --for or --until",
        silence_commands,
    )
    silence_add.add_argument("--image-version", type=_id, help="this image version")
    silence_add.add_argument(
        "--account-service",
        "--asid",
        dest="account_service",
        type=_id,
        help="every image version of this account service",
    )
    silence_add.add_argument(
        "--label", dest="label_glob", metavar="GLOB", help="watches whose label matches (EU*)"
    )
    how_long = silence_add.add_mutually_exclusive_group(required=True)
    how_long.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long: 30m, 2h, 1d (at most 30d)"
    )
    how_long.add_argument("--until", metavar="TIME", help="until when (2026-12-01T18:00:00Z)")
    silence_add.add_argument("--reason", default="", help="why, for whoever reads the list")
    silence_add.add_argument(
        "--created-by", help="who silenced it (default: your user name on this machine)"
    )
    silence_list = command(
        "list", "active silences, soonest to end first", silence_commands, lists=True
    )
    silence_list.add_argument("--all", action="store_true", help="ended silences too")
    silence_expire = command(
        "expire", "end a silence now; held live messages are brought up to date", silence_commands
    )
    silence_expire.add_argument("id", type=_id, metavar="ID", help="silence id (see silence list)")

    deliveries = command("deliveries", "the outbox")
    delivery_commands = deliveries.add_subparsers(
        dest="deliveries_command", required=True, metavar="ACTION"
    )
    listing_cmd = command("list", "list deliveries, newest first", delivery_commands, lists=True)
    listing_cmd.add_argument(
        "--status",
        choices=["pending", "delivered", "dead", "held", "silenced"],
        help="only deliveries in this state (held: waiting for a silence to end; silenced: held "
        "and never sent)",
    )
    listing_cmd.add_argument("--limit", type=_id, default=50, help="at most this many (default 50)")
    retry = command("retry", "send dead deliveries again", delivery_commands)
    retry.add_argument(
        "ids", nargs="*", type=_id, metavar="ID", help="delivery ids (see deliveries list)"
    )
    retry.add_argument("--all-dead", action="store_true", help="every dead delivery")
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
    except DatabaseMissing as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (OperationalError, DBAPIError) as exc:
        reason = str(exc.orig) if exc.orig is not None else str(exc)
        print(f"notifier: database error: {reason.splitlines()[0]}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (`notifier watch list | head`): nothing to say to it, and Python
        # must not complain at exit while flushing what it could not write.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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

        # The demo needs no configuration; a file named with --config places its status page.
        listen = None
        if args.config:
            server = _settings(args).server
            listen = None if server is None else server.listen
        return asyncio.run(run_demo(seconds=args.seconds, keep=args.keep, listen=listen))
    if args.command == "webhook" and args.webhook_command == "verify":
        return _webhook_verify(args)
    settings = _settings(args)
    if args.command == "webhook":
        return asyncio.run(_webhook_test(settings, args.name))
    if args.command == "health":
        return asyncio.run(_health(settings, args.timeout))
    if args.command == "check-config":
        print(render_effective_config(settings), end="")
        for warning in config_warnings(settings):
            print(f"notifier: warning: {warning}", file=sys.stderr)
        return EXIT_OK
    if args.command == "run":
        configure_logging(settings.log.level, settings.log.format, settings.secret_values())
        make_parent_directory(settings.database.url)
        return asyncio.run(_run(settings))
    if args.command == "db" and args.db_command == "upgrade":
        return asyncio.run(_db_upgrade(settings))
    handler = _DATABASE_COMMANDS[_command_key(args)]
    return asyncio.run(_with_database(settings, lambda engine: handler(engine, settings, args)))


def _command_key(args: argparse.Namespace) -> str:
    for name in (
        "db_command",
        "watch_command",
        "subscription_command",
        "deliveries_command",
        "silence_command",
    ):
        action = getattr(args, name, None)
        if action:
            return f"{args.command} {action}"
    return str(args.command)


def _webhook_verify(args: argparse.Namespace) -> int:
    from notifier.config import NoSuchWebhook
    from notifier.notify.webhook_tools import verify_raw

    if args.name is not None:
        if args.secret:
            raise UsageError("give a subscription NAME or --secret, not both")
        try:
            secrets = list(_settings(args).webhook_subscription(args.name).signing_secrets)
        except NoSuchWebhook as exc:
            raise UsageError(str(exc)) from None
        if not secrets:
            raise UsageError(f"webhook subscription {args.name!r} is unsigned: nothing to verify")
    else:
        secret = args.secret or os.environ.get(WEBHOOK_SECRET_ENV_VAR)
        if not secret:
            raise UsageError(
                f"give --secret whsec_..., set {WEBHOOK_SECRET_ENV_VAR}, or name a webhook "
                "subscription of the configuration"
            )
        secrets = [secret]
    raw = sys.stdin.buffer.read()
    now = utc_now()
    checks = [verify_raw(raw, secret, now) for secret in secrets]
    check = next((c for c in checks if c.ok), checks[0])
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
    async with existing_database(settings.database.url) as engine:
        return await action(engine)


async def _db_upgrade(settings: Settings) -> int:
    schema, synced = await upgrade_and_sync(settings, utc_now())
    where = describe(settings.database.url)
    if schema.applied:
        print(f"database {where} upgraded from {schema.before or 'empty'} to {schema.after}")
    else:
        print(f"database {where} is up to date at {schema.after}")
    print(
        f"configuration: {synced.added} watch(es) added, {synced.updated} updated, "
        f"{synced.retired} retired"
    )
    return EXIT_OK


Handler = Callable[[AsyncEngine, Settings, argparse.Namespace], Awaitable[int]]


def _print_json(items: Sequence[Any]) -> None:
    print(json.dumps([_jsonable(item) for item in items], indent=2, default=str))


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _print_table(args: argparse.Namespace, headers: Sequence[str], rows: list[list[str]]) -> None:
    width = None if args.wide else terminal_width(sys.stdout)
    print(format_table(headers, rows, width))


async def _watch_add(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    try:
        await add_watch(
            engine,
            args.asid,
            args.image_version,
            args.label,
            "cli",
            utc_now(),
            interval_seconds=args.interval,
            owners=tuple(dict.fromkeys(args.owner)),
        )
    except DuplicateWatch as exc:
        print(f"notifier: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"watching image version {args.image_version} of account service {args.asid}")
    return EXIT_OK


def _unsynced_config_watches(settings: Settings, watches: Sequence[WatchView]) -> list[WatchView]:
    """The file's watches the database does not have yet: the next ``run`` adds them."""
    known = {(w.account_service_id, w.image_version_id) for w in watches}
    return [
        WatchView(
            id=0,
            account_service_id=w.account_service_id,
            image_version_id=w.image_version_id,
            label=w.label,
            source="config (added at the next run)",
            active=True,
        )
        for w in settings.watch
        if (w.account_service_id, w.image_version_id) not in known
    ]


async def _watch_list(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    stored = await list_watches(engine)
    watches = stored + _unsynced_config_watches(settings, stored)
    if args.json:
        _print_json(watches)
        return EXIT_OK
    if not watches:
        print("no image versions are watched; add one with `notifier watch add`")
        return EXIT_OK
    rows = []
    for w in watches:
        status = w.status
        finished = status is not None and status.is_terminal
        rows.append(
            [
                str(w.account_service_id),
                str(w.image_version_id),
                w.label,
                "-" if status is None else status.state,
                "-" if status is None else f"{status.progress}%",
                "-" if status is None or finished else format_time(status.eta),
                w.source if w.active else f"{w.source} (inactive)",
                _watch_problem(w),
            ]
        )
    _print_table(
        args,
        ["ASID", "IMAGE VERSION", "LABEL", "STATE", "PROGRESS", "ETA", "SOURCE", "LAST ERROR"],
        rows,
    )
    return EXIT_OK


def _watch_problem(w: WatchView) -> str:
    if w.paused_reason:
        return (
            f"paused: {w.paused_reason} (resume: notifier watch resume "
            f"--image-version {w.image_version_id})"
        )
    return w.last_poll_error or ""


async def _watch_remove(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    in_file = [
        w
        for w in settings.watch
        if w.image_version_id == args.image_version
        and (args.asid is None or w.account_service_id == args.asid)
    ]
    if in_file:
        where = config_path(args.config, os.environ)
        print(
            f"notifier: image version {args.image_version} comes from the configuration file "
            f"{where}: remove its [[watch]] entry there (the next run would add it back)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    removed = await remove_watch(engine, args.image_version, args.asid)
    if not removed:
        print(f"notifier: image version {args.image_version} is not watched", file=sys.stderr)
        return EXIT_FAILURE
    print(f"stopped watching image version {args.image_version}")
    return EXIT_OK


async def _watch_resume(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    resumed = await resume_watches(
        engine, utc_now(), image_version_id=args.image_version, account_service_id=args.asid
    )
    if not resumed:
        print("notifier: no paused watch matches", file=sys.stderr)
        return EXIT_FAILURE
    print(f"resumed {resumed} watch(es); they are polled at the next tick")
    return EXIT_OK


def _unsynced_config_subscriptions(
    settings: Settings, subscriptions: Sequence[SubscriptionView]
) -> list[SubscriptionView]:
    known = {s.name for s in subscriptions}
    return [
        SubscriptionView(
            id=0,
            name=s.name,
            kind=s.kind,
            target=s.target,
            filters={"events": list(s.events)},
            active=True,
            source="config (added at the next run)",
            signed=bool(s.kind == "webhook" and s.signing_secrets),
        )
        for s in settings.subscription
        if s.name not in known
    ]


async def _subscription_list(
    engine: AsyncEngine, settings: Settings, args: argparse.Namespace
) -> int:
    stored = await list_subscriptions(engine)
    subscriptions = [
        dataclasses.replace(s, target=_shown_target(s))
        for s in stored + _unsynced_config_subscriptions(settings, stored)
    ]
    if args.json:
        _print_json(subscriptions)
        return EXIT_OK
    if not subscriptions:
        print("no subscriptions; add [[subscription]] entries to the configuration")
        return EXIT_OK
    rows = [
        [
            s.name,
            s.kind,
            s.target,
            _signing(s),
            ", ".join(s.filters.get("events", [])) or "all",
            _subscription_status(s),
            s.source,
        ]
        for s in subscriptions
    ]
    _print_table(args, ["NAME", "KIND", "TARGET", "SIGNING", "EVENTS", "STATUS", "SOURCE"], rows)
    return EXIT_OK


def _shown_target(s: SubscriptionView) -> str:
    return s.target if s.kind == "slack_channel" else redact_url(s.target, path="mark")


def _signing(s: SubscriptionView) -> str:
    """Whether a webhook's requests carry a signature; Slack kinds have none of ours."""
    if s.kind != "webhook":
        return "-"
    return "signed" if s.signed else "unsigned"


def _subscription_status(s: SubscriptionView) -> str:
    if s.disabled_reason is not None:
        return f"disabled: {s.disabled_reason}"
    return "active" if s.active else "inactive"


async def _subscription_enable(
    engine: AsyncEngine, settings: Settings, args: argparse.Namespace
) -> int:
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


async def _events(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    from notifier.store.events import recent_events

    events = await recent_events(engine, limit=args.limit, image_version_id=args.image_version)
    if args.json:
        _print_json(events)
        return EXIT_OK
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
            "-" if e.silence_id is None else f"silence {e.silence_id}",
        ]
        for e in events
    ]
    _print_table(
        args,
        ["TIME", "TYPE", "IMAGE VERSION", "LABEL", "FROM", "TO", "PROGRESS", "ID", "HELD BY"],
        rows,
    )
    return EXIT_OK


async def _deliveries_list(
    engine: AsyncEngine, settings: Settings, args: argparse.Namespace
) -> int:
    deliveries = await list_deliveries(engine, status=args.status, limit=args.limit)
    if args.json:
        _print_json(deliveries)
        return EXIT_OK
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
            _next_try(d, now),
            _lease(d, now),
            d.last_error or "",
        ]
        for d in deliveries
    ]
    _print_table(
        args,
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
    return EXIT_OK


def _next_try(d: DeliveryView, now: datetime) -> str:
    if d.status != "pending":
        return "-"
    if d.next_attempt_at is None or d.next_attempt_at <= now:
        return "due now"
    return format_time(d.next_attempt_at)


def _lease(d: DeliveryView, now: datetime) -> str:
    """The replica sending it now; an expired lease means that replica died mid-send."""
    if d.lease_owner is None or d.lease_until is None:
        return "-"
    return d.lease_owner if d.lease_until > now else f"{d.lease_owner} (expired)"


async def _deliveries_retry(
    engine: AsyncEngine, settings: Settings, args: argparse.Namespace
) -> int:
    if bool(args.ids) == bool(args.all_dead):
        raise UsageError("give delivery ids or --all-dead, not both or neither")
    now = utc_now()
    before = await delivery_states(engine, args.ids, now) if args.ids else {}
    found = [i for i in args.ids if i in before]
    if args.ids and not found:
        count = 0
    else:
        count = await retry_deliveries(engine, now, ids=found, all_dead=args.all_dead)
    print(f"{count} deliver{'y' if count == 1 else 'ies'} queued to be sent again")
    if not args.ids:
        return EXIT_OK
    problems = {
        "not found": [i for i in args.ids if i not in before],
        "already delivered": [i for i in args.ids if before.get(i) == "delivered"],
        "being sent right now": [i for i in args.ids if before.get(i) == "leased"],
    }
    shown = [f"{what}: {', '.join(str(i) for i in ids)}" for what, ids in problems.items() if ids]
    if shown:
        print(f"notifier: {'; '.join(shown)}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


async def _db_prune(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    retention = settings.retention
    pruned = await prune(engine, retention.policy(), utc_now(), dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {pruned.events} events older than {retention.events_days:g} days and "
        f"{pruned.deliveries} finished deliveries (older than {retention.deliveries_days:g} days, "
        f"or of those events) and {pruned.silences} silences that ended that long ago"
    )
    return EXIT_OK


def _os_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's random uid), no USER
        return "unknown"


async def _silence_add(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    now = utc_now()
    try:
        asked = new_silence(
            now,
            Matchers(args.image_version, args.account_service, args.label_glob),
            duration=args.duration,
            until=args.until,
            reason=args.reason,
            created_by=args.created_by if args.created_by is not None else _os_user(),
            names=("--reason", "--created-by"),
        )
    except BadSilence as exc:
        raise UsageError(str(exc)) from None
    silence = await add_silence(engine, asked, source="cli", now=now)
    print(
        f"silence {silence.id} holds {silence.matches} until {format_time(silence.ends_at)}; "
        f"end it early with `notifier silence expire {silence.id}`"
    )
    return EXIT_OK


async def _silence_list(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    silences = await list_silences(engine, utc_now(), include_ended=args.all)
    if args.json:
        _print_json(silences)
        return EXIT_OK
    if not silences:
        print("no active silences" if not args.all else "no silences")
        return EXIT_OK
    rows = [
        [
            str(s.id),
            s.matches,
            s.state,
            format_time(s.starts_at),
            format_time(s.ends_at),
            s.created_by,
            str(s.held_events),
            s.reason,
        ]
        for s in silences
    ]
    _print_table(args, ["ID", "MATCHES", "STATE", "FROM", "UNTIL", "BY", "HELD", "REASON"], rows)
    return EXIT_OK


async def _silence_expire(engine: AsyncEngine, settings: Settings, args: argparse.Namespace) -> int:
    now = utc_now()
    expired = await expire_silence(engine, args.id, now, _os_user())
    if expired is None:
        print(
            f"notifier: no silence {args.id} (see `notifier silence list --all`)", file=sys.stderr
        )
        return EXIT_FAILURE
    if expired.already:
        print(
            f"notifier: silence {args.id} already ended at {format_time(expired.silence.ends_at)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    # Release what it held now rather than at the service's next tick; only one does it.
    await end_silences(engine, now)
    print(
        f"silence {args.id} expired; {expired.silence.held_events} held event(s) stay recorded, "
        "and its live Slack messages are brought up to date"
    )
    return EXIT_OK


_DATABASE_COMMANDS: dict[str, Handler] = {
    "db prune": _db_prune,
    "watch add": _watch_add,
    "watch list": _watch_list,
    "watch resume": _watch_resume,
    "watch remove": _watch_remove,
    "subscription list": _subscription_list,
    "subscription enable": _subscription_enable,
    "events": _events,
    "deliveries list": _deliveries_list,
    "deliveries retry": _deliveries_retry,
    "silence add": _silence_add,
    "silence list": _silence_list,
    "silence expire": _silence_expire,
}
