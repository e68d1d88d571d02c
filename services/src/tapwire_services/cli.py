"""The ``tapwire`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from tapwire_core import log as logs
from tapwire_core.gc_tuning import tune_for_throughput
from tapwire_core.settings import Settings
from tapwire_services.accounts_cli import add_commands as add_account_commands
from tapwire_services.accounts_cli import credential_store
from tapwire_services.export_cli import add_export_command
from tapwire_services.privacy_cli import add_commands as add_privacy_commands

if TYPE_CHECKING:
    import uvicorn


class _QuietExitServer:
    """uvicorn re-raises SIGTERM/SIGINT after a graceful shutdown, which makes a clean stop exit with -15;
    tapwire treats a completed graceful shutdown as success (exit 0). Once the app has started (its lifespan
    and the listening socket), the garbage collector is tuned for a service process."""

    def __init__(self, config: object) -> None:
        import uvicorn

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                tune_for_throughput()

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                handlers = {
                    sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
                }
                try:
                    yield
                finally:
                    for sig, handler in handlers.items():
                        signal.signal(sig, handler)

        self._server = Server(config)  # type: ignore[arg-type]

    def run(self) -> None:
        self._server.run()


def server_config(app: object, settings: Settings) -> uvicorn.Config:
    """How every service serves HTTP. Idle connections stay open ``http_keep_alive_s`` (uvicorn's default is
    5 s): a proxy that keeps upstream connections longer than the server would send a request on a connection
    the server is closing, and answer its client 502."""
    import uvicorn

    from tapwire_services.http_writes import CoalescingHttpToolsProtocol

    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        # httptools, with each response's head and body sent in one write (``http_writes``).
        http=CoalescingHttpToolsProtocol,
        # No "server: uvicorn" header: one less header to validate and send per response, and it told clients
        # nothing they need.
        server_header=False,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1; TAPWIRE_TRUSTED_PROXIES decides instead.
        proxy_headers=False,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=int(settings.http_keep_alive_s),
    )


def _serve(app: object, settings: Settings) -> None:
    _QuietExitServer(server_config(app, settings)).run()


def cmd_up(_: argparse.Namespace) -> int:
    from tapwire_services.assembly import embedded_app
    from tapwire_services.runtime import ConfigurationError

    settings = Settings()
    logs.configure(settings.log_level)
    try:
        app = embedded_app(settings)
    except ConfigurationError as exc:
        print(f"tapwire up: {exc}", file=sys.stderr)
        return 2
    _serve(app, settings)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from tapwire_services.assembly import service_app
    from tapwire_services.runtime import ConfigurationError

    settings = Settings()
    logs.configure(settings.log_level)
    try:
        app = service_app(settings, args.service)
    except ConfigurationError as exc:
        print(f"tapwire serve {args.service}: {exc}", file=sys.stderr)
        return 2
    _serve(app, settings)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import itertools

    from tapwire_services import generate

    def records() -> Iterator[dict[str, object]]:
        return itertools.chain(
            generate.profiles(args.users, args.seed), generate.events(args.users, args.events, args.seed)
        )

    if args.warehouse:
        if not args.account:
            print("tapwire generate: --warehouse needs --account", file=sys.stderr)
            return 2
        loaded = asyncio.run(_generate_into_warehouse(Settings(), args.account, records()))
        print(f"loaded {loaded} records into the warehouse for {args.account}", file=sys.stderr)
        return 0
    if args.upload:
        from tapwire_services.upload_client import UploadFailed, upload_all

        try:
            summary = asyncio.run(
                upload_all(
                    records(),
                    url=args.upload,
                    account=args.account,
                    passcode=args.passcode,
                    total=args.users + args.events,
                    progress=sys.stderr.isatty(),
                )
            )
        except UploadFailed as exc:
            print(f"tapwire generate: upload stopped: {exc}", file=sys.stderr)
            return 1
        print(summary.line(), file=sys.stderr)
        return 0
    out = sys.stdout.buffer if args.out in (None, "-") else Path(args.out).open("wb")  # noqa: SIM115
    try:
        for batch in generate.batches(records(), 100):
            out.write(orjson.dumps({"d": batch}) + b"\n")
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


async def _generate_into_warehouse(
    settings: Settings, account: str, records: Iterator[dict[str, object]]
) -> int:
    """Writes through the loader's row building into the configured warehouse, migrated first."""
    import time

    from tapwire_services import generate
    from tapwire_services.cli_warehouse import open_warehouse

    async with open_warehouse(settings) as warehouse:
        return await generate.load(
            warehouse, records, account_id=account, received_ms=int(time.time() * 1000)
        )


def _control_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data / 'control.db'}"


def cmd_reset_demo(_: argparse.Namespace) -> int:
    from tapwire_core.control.bootstrap import reset_demo_credentials

    settings = Settings()
    store = credential_store(settings)

    async def reset() -> None:
        await store.start()
        try:
            creds = await reset_demo_credentials(store, region=settings.region)
        finally:
            await store.close()
        print(f"account id: {creds.account_id}\npasscode:   {creds.passcode}\nwrite key:  {creds.write_key}")

    asyncio.run(reset())
    return 0


def cmd_add_write_key(args: argparse.Namespace) -> int:
    from tapwire_core.control.accounts import AccountNotFoundError

    settings = Settings()
    store = credential_store(settings)

    async def issue() -> int:
        await store.start()
        try:
            issued = await store.add_credential(args.account_id, "write_key")
        except AccountNotFoundError:
            print(f"tapwire accounts: no account {args.account_id!r}", file=sys.stderr)
            return 1
        finally:
            await store.close()
        print(f"write key:  {issued.secret}")
        return 0

    return asyncio.run(issue())


def cmd_set_origins(args: argparse.Namespace) -> int:
    from tapwire_core.control.accounts import AccountNotFoundError
    from tapwire_core.control.store import ControlStore
    from tapwire_ingest.segment.cors import ORIGINS_SETTING

    settings = Settings()

    async def update() -> int:
        store = ControlStore(_control_url(settings))
        await store.start()
        try:
            await store.update_settings(args.account_id, {ORIGINS_SETTING: list(args.origins) or None})
        except AccountNotFoundError:
            print(f"tapwire accounts: no account {args.account_id!r}", file=sys.stderr)
            return 1
        finally:
            await store.close()
        allowed = ", ".join(args.origins) if args.origins else "any origin"
        print(f"{args.account_id}: browsers may send events from {allowed}")
        return 0

    return asyncio.run(update())


def cmd_client_sdk(args: argparse.Namespace) -> int:
    from tapwire_core.control.accounts import AccountNotFoundError
    from tapwire_core.control.store import ControlStore
    from tapwire_ingest.clevertap_sdk.accounts import ENABLED_SETTING, RATE_SETTING, WEB_PUSH_KEY_SETTING
    from tapwire_ingest.clevertap_sdk.message_shapes import WEB_INBOX_SELECTOR_SETTING as INBOX

    settings = Settings()
    changes: dict[str, object] = {}
    if args.enabled is not None:
        changes[ENABLED_SETTING] = None if args.enabled else False
    if args.requests_per_s is not None:
        changes[RATE_SETTING] = args.requests_per_s or None
    if args.web_push_key is not None:
        problem = _foreign_web_push_key(settings, args.web_push_key)
        if problem:
            print(f"tapwire accounts: {problem}", file=sys.stderr)
            return 1
        changes[WEB_PUSH_KEY_SETTING] = args.web_push_key or None
    problem = _web_inbox_change(args.web_inbox_selector, changes)
    if problem:
        print(f"tapwire accounts: {problem}", file=sys.stderr)
        return 1

    async def update() -> int:
        store = ControlStore(_control_url(settings))
        await store.start()
        try:
            account = await store.update_settings(args.account_id, changes)
        except AccountNotFoundError:
            print(f"tapwire accounts: no account {args.account_id!r}", file=sys.stderr)
            return 1
        finally:
            await store.close()
        current = account.settings
        print(
            f"{account.id}: client SDKs {'off' if current.get(ENABLED_SETTING) is False else 'on'}, "
            f"rate {current.get(RATE_SETTING) or 'the deployment default'} requests/s, "
            f"web push {'on' if current.get(WEB_PUSH_KEY_SETTING) else 'off'}, "
            f"web inbox {'on #' + str(current[INBOX]) if current.get(INBOX) else 'off'}"
        )
        return 0

    return asyncio.run(update())


def _web_inbox_change(selector: str | None, changes: dict[str, object]) -> str | None:
    """Add the web inbox selector to ``changes`` (``''`` removes it); what is wrong with it, if anything."""
    from tapwire_ingest.clevertap_sdk.message_shapes import WEB_INBOX_SELECTOR_SETTING, web_inbox_setting

    if selector is None:
        return None
    if selector and web_inbox_setting({WEB_INBOX_SELECTOR_SETTING: selector}) is None:
        return (
            f"--web-inbox-selector {selector!r} is not an element id (a letter, then letters, digits, - or _)"
        )
    changes[WEB_INBOX_SELECTOR_SETTING] = selector or None
    return None


def _foreign_web_push_key(settings: Settings, public_key: str) -> str | None:
    """Why browsers subscribed with ``public_key`` could not be sent to, when messaging's VAPID key is known here.

    The deployment's key file (``TAPWIRE_VAPID_KEY_FILE``) is the one source of web push keys: messaging signs
    with it, and an account's ``web_push_public_key`` only tells the Web SDK its public half. A push service
    refuses a message signed by another key than the one the browser subscribed with.
    """
    if not public_key or settings.vapid_key_file is None:
        return None
    from tapwire_messaging.channels.webpush import VapidKey

    try:
        deployment = VapidKey.from_file(settings.vapid_key_file, subject="mailto:unused@example.invalid")
    except ValueError as exc:
        return str(exc)
    if deployment.public_key != public_key:
        return (
            "--web-push-key is not the public key of TAPWIRE_VAPID_KEY_FILE, which messaging signs web push with "
            f"(`tapwire web-push-key --key {settings.vapid_key_file}` prints it)"
        )
    return None


def cmd_web_push_key(args: argparse.Namespace) -> int:
    """Print the VAPID public key of ``--key`` (made first with ``--create``): what the Web SDK subscribes
    browsers with (``tapwire accounts client-sdk --web-push-key``)."""
    from tapwire_messaging.channels.webpush import VapidKey

    path: Path = args.key
    if args.create:
        if path.exists():
            print(f"{path} exists; not replacing a key browsers may be subscribed with", file=sys.stderr)
            return 1
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as key_file:
            path.chmod(0o600)
            key_file.write(VapidKey.generate_pem())
    try:
        key = VapidKey.from_file(path, subject="mailto:unused@example.invalid")
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(key.public_key)
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tapwire", description="tapwire event ingestion and engagement suite")
    commands = root.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run every service in one process (embedded mode)")
    up.set_defaults(func=cmd_up)

    serve = commands.add_parser("serve", help="run one service in distributed mode")
    serve.add_argument(
        "service", choices=["gateway", "loader", "query", "messaging", "privacy-worker", "console"]
    )
    serve.set_defaults(func=cmd_serve)

    accounts = commands.add_parser("accounts", help="manage accounts")
    account_commands = accounts.add_subparsers(dest="accounts_command", required=True)
    reset = account_commands.add_parser("reset-demo", help="issue new credentials for the demo account")
    reset.set_defaults(func=cmd_reset_demo)
    add_account_commands(account_commands)
    write_key = account_commands.add_parser(
        "add-write-key", help="issue one more write key (Segment-style ingestion) for an account"
    )
    write_key.add_argument("account_id")
    write_key.set_defaults(func=cmd_add_write_key)
    origins = account_commands.add_parser(
        "set-origins", help="web origins allowed to send events with the account's write keys (none: any)"
    )
    origins.add_argument("account_id")
    origins.add_argument("origins", nargs="*", metavar="ORIGIN", help="e.g. https://shop.example")
    origins.set_defaults(func=cmd_set_origins)
    client_sdk = account_commands.add_parser(
        "client-sdk",
        help="CleverTap client-SDK ingestion of an account: on/off, rate limit, web push key, web inbox",
    )
    client_sdk.add_argument("account_id")
    switch = client_sdk.add_mutually_exclusive_group()
    switch.add_argument("--on", dest="enabled", action="store_const", const=True, default=None)
    switch.add_argument("--off", dest="enabled", action="store_const", const=False)
    client_sdk.add_argument(
        "--requests-per-s", type=float, help="the account's rate limit per gateway process (0: the default)"
    )
    client_sdk.add_argument(
        "--web-push-key",
        help="VAPID public key (base64url) the Web SDK subscribes browsers with ('' turns off)",
    )
    client_sdk.add_argument(
        "--web-inbox-selector",
        help="id of the page element that opens the Web SDK's inbox of inbox messages ('' turns off)",
    )
    client_sdk.set_defaults(func=cmd_client_sdk)

    web_push = commands.add_parser(
        "web-push-key", help="print the VAPID public key of TAPWIRE_VAPID_KEY_FILE's key (--create: make one)"
    )
    web_push.add_argument("--key", type=Path, required=True, help="the key file (PEM, P-256)")
    web_push.add_argument("--create", action="store_true", help="make a new key at --key first")
    web_push.set_defaults(func=cmd_web_push_key)
    privacy = commands.add_parser("privacy", help="privacy operations (after restoring a backup)")
    add_privacy_commands(privacy.add_subparsers(dest="privacy_command", required=True))

    gen = commands.add_parser("generate", help="deterministic CleverTap-shaped test data")
    gen.add_argument("--users", type=int, required=True)
    gen.add_argument("--events", type=int, required=True)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", help="file for upload bodies, one JSON object per line (default: stdout)")
    gen.add_argument("--upload", metavar="URL", help="send to a running tapwire at URL instead")
    gen.add_argument(
        "--warehouse",
        action="store_true",
        help="write straight into the warehouse: TAPWIRE_CLICKHOUSE_URL, else the chDB in TAPWIRE_DATA_DIR "
        "(stop `tapwire up` first: one process at a time may open it)",
    )
    gen.add_argument("--account", help="account id for --upload and --warehouse")
    gen.add_argument("--passcode", help="passcode for --upload")
    gen.set_defaults(func=cmd_generate)
    add_export_command(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
