"""``tapwire accounts create|list|rotate|delete``: operator account administration against the configured stores.

Secrets are printed once, to stdout; they are stored only hashed. ``delete`` runs the privacy worker's account
offboarding (access revoked, the account archived, then every store of it erased: warehouse, every control table,
export archives; the bus's copies expire) and asks for the account id to be typed first.
Embedded mode: stop ``tapwire up`` before ``delete`` (one process at a time may open the chDB files).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tapwire_core.control.accounts.hashing import generate_secret
from tapwire_core.control.accounts.types import CREDENTIAL_KINDS, CredentialKind
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings

if TYPE_CHECKING:
    from tapwire_privacy.records import RequestView
    from tapwire_privacy.runner import PrivacyRuntime


def control_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{data / 'control.db'}"


def credential_store(settings: Settings) -> ControlStore:
    """The control store, able to write credentials: with ``TAPWIRE_DATABASE_URL`` it needs the deployment's
    ``TAPWIRE_CREDENTIAL_SECRET``; otherwise the embedded suite's, from ``TAPWIRE_DATA_DIR``. Exits with status 2
    when the secret is missing or unusable."""
    from tapwire_services.runtime import ConfigurationError, lookup_digests

    try:
        digests = lookup_digests(settings, embedded=not settings.database_url)
    except ConfigurationError as exc:
        print(f"tapwire accounts: {exc}", file=sys.stderr)
        sys.exit(2)
    return ControlStore(control_url(settings), lookup_digests=digests)


async def _operator_audit(
    store: ControlStore, account_id: str, action: str, detail: dict[str, object]
) -> None:
    from tapwire_core.control.console.directory import ConsoleDirectory

    await ConsoleDirectory(store).audit.record(
        account_id, actor="operator (tapwire accounts)", role="operator", action=action, detail=detail
    )


def cmd_create(args: argparse.Namespace) -> int:
    settings = Settings()
    control = credential_store(settings)

    async def create() -> int:
        async with control as store:
            if await store.get_account(args.account_id) is not None:
                print(f"tapwire accounts: {args.account_id!r} exists already", file=sys.stderr)
                return 1
            passcode, write_key = generate_secret(), generate_secret()
            account = await store.upsert_account(
                args.account_id,
                passcode=passcode,
                write_key=write_key,
                region=args.region or settings.region,
                name=args.name,
            )
            await _operator_audit(store, account.id, "account.create", {"region": account.region})
        print(
            f"account id: {account.id}\nregion:     {account.region}\npasscode:   {passcode}\nwrite key:  {write_key}"
        )
        print("(shown once: tapwire stores only their hashes)", file=sys.stderr)
        return 0

    return asyncio.run(create())


def cmd_list(_: argparse.Namespace) -> int:
    settings = Settings()

    async def listing() -> int:
        async with ControlStore(control_url(settings)) as store:
            accounts = await store.list_accounts()
            rows = [("ACCOUNT", "NAME", "REGION", "PASSCODES", "WRITE KEYS")]
            for account in accounts:
                credentials = await store.list_credentials(account.id)
                live = {
                    kind: sum(1 for c in credentials if c.kind == kind and c.live)
                    for kind in CREDENTIAL_KINDS
                }
                rows.append(
                    (account.id, account.name, account.region, str(live["passcode"]), str(live["write_key"]))
                )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        print(f"{len(accounts)} account(s)", file=sys.stderr)
        return 0

    return asyncio.run(listing())


def cmd_rotate(args: argparse.Namespace) -> int:
    """New secrets for the chosen kinds; the old ones stay live unless ``--revoke-old`` (then they stop at once,
    and console sessions opened with the old passcode end)."""
    settings = Settings()
    kinds: Sequence[CredentialKind] = CREDENTIAL_KINDS if args.kind == "both" else (args.kind,)
    control = credential_store(settings)

    async def rotate() -> int:
        from tapwire_core.control.console.directory import ConsoleDirectory

        async with control as store:
            if await store.get_account(args.account_id) is None:
                print(f"tapwire accounts: no account {args.account_id!r}", file=sys.stderr)
                return 1
            lines = []
            for kind in kinds:
                old = [
                    c.id for c in await store.list_credentials(args.account_id) if c.kind == kind and c.live
                ]
                issued = await store.add_credential(args.account_id, kind)
                if args.revoke_old:
                    for credential_id in old:
                        await store.revoke_credential(credential_id)
                    if kind == "passcode":
                        await ConsoleDirectory(store).sessions.close_passcode_sessions(args.account_id)
                label = "passcode: " if kind == "passcode" else "write key:"
                lines.append(f"{label}  {issued.secret}")
                await _operator_audit(
                    store,
                    args.account_id,
                    "credentials.rotate",
                    {"kind": kind, "revoked": old if args.revoke_old else []},
                )
        print("\n".join(lines))
        print(
            "old credentials revoked" if args.revoke_old else "old credentials stay live until revoked",
            file=sys.stderr,
        )
        return 0

    return asyncio.run(rotate())


def cmd_delete(args: argparse.Namespace) -> int:
    settings = Settings()
    if not args.yes:
        if not sys.stdin.isatty():
            print("tapwire accounts delete: confirm with --yes when not at a terminal", file=sys.stderr)
            return 2
        print(
            f"This revokes every credential of {args.account_id}, exports the account to one archive, then erases "
            "every record of it in every store and removes the account.\nType the account id to confirm: ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        if sys.stdin.readline().strip() != args.account_id:
            print("not confirmed; nothing changed", file=sys.stderr)
            return 1
    return asyncio.run(_delete(settings, args.account_id, wait=not args.no_wait))


async def _delete(settings: Settings, account_id: str, *, wait: bool) -> int:
    """Start the account's offboarding (the privacy worker's job; the one already under way if any) and, unless
    ``wait`` is off, run it here until every store is clean (only the bus copies' expiry left)."""
    from tapwire_privacy.routes.offboarding import offboarding_body
    from tapwire_privacy.runner import PrivacyRuntime
    from tapwire_services.cli_warehouse import open_warehouse

    started = time.monotonic()
    async with ControlStore(control_url(settings)) as store:
        account = await store.get_account(account_id)
        if account is None:
            print(f"tapwire accounts: no account {account_id!r}", file=sys.stderr)
            return 1
        async with open_warehouse(settings) as warehouse:
            privacy = PrivacyRuntime.build(settings=settings, store=store, warehouse=warehouse)
            try:
                view = await privacy.service.start_offboarding(account=account)
                if wait:
                    view = await _run_offboarding(privacy, view, poll_s=min(settings.privacy_poll_s, 1.0))
                body = await offboarding_body(privacy.service, view)
            finally:
                await privacy.notifier.close()
    return _report(body, settings, wait=wait, took=time.monotonic() - started)


async def _run_offboarding(privacy: PrivacyRuntime, view: RequestView, *, poll_s: float) -> RequestView:
    from tqdm import tqdm

    with tqdm(desc=f"deleting {view.account_id}", unit=" pass", file=sys.stderr, leave=False) as bar:
        # Every store is clean once the job only waits for the copies on the bus to expire.
        while view.status not in ("completed", "failed", "denied") and not _only_bus_copies_left(view):
            await privacy.worker.tick()
            view = await privacy.service.repository.requests.get(view.id)
            bar.set_postfix_str(str(view.progress.get("phase")))
            bar.update(1)
            if view.status != "completed":
                await asyncio.sleep(poll_s)
    return view


def _only_bus_copies_left(view: RequestView) -> bool:
    return view.progress.get("phase") == "copies_expiring"


def _report(body: dict[str, Any], settings: Settings, *, wait: bool, took: float) -> int:
    archive = body.get("archive") or {}
    if archive:
        path = settings.resolved_export_dir() / f"{body['id']}.zip"
        print(f"archive:    {path} ({archive['bytes']} bytes, sha256 {archive['sha256']})")
        print(f"download:   {archive.get('url')}")
    print(f"status:     {body['status_url']}")
    if not wait:
        print(f"account deletion {body['id']} started; the privacy worker runs it", file=sys.stderr)
        return 0
    if body["status"] != "completed" and body["phase"] != "copies_expiring":
        print(
            f"tapwire accounts: the deletion {body['id']} ended {body['status']} ({body['failure']}); "
            "re-run the command to resume it",
            file=sys.stderr,
        )
        return 1
    removed = (body.get("completion_record") or {}).get("removed") or {
        name: state.get("removed", 0) for name, state in body["stores"].items()
    }
    print(
        f"deleted {body['account_id']}: archived, every store erased ({sum(removed.values())} rows) and the "
        f"account removed in {took:.1f} s (request {body['id']})"
        + (
            f"; the last copies on the bus expire by {body['copies_gone_at']}"
            if body["status"] != "completed"
            else ""
        )
    )
    return 0


def add_commands(accounts: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = accounts.add_parser(
        "create", help="create an account and print its passcode and write key (once)"
    )
    create.add_argument("account_id")
    create.add_argument("--name")
    create.add_argument("--region", help="default: TAPWIRE_REGION")
    create.set_defaults(func=cmd_create)

    listing = accounts.add_parser("list", help="accounts with their region and live credential counts")
    listing.set_defaults(func=cmd_list)

    rotate = accounts.add_parser("rotate", help="issue new credentials (printed once)")
    rotate.add_argument("account_id")
    rotate.add_argument("--kind", choices=["passcode", "write_key", "both"], default="both")
    rotate.add_argument("--revoke-old", action="store_true", help="revoke the previous credentials at once")
    rotate.set_defaults(func=cmd_rotate)

    delete = accounts.add_parser(
        "delete",
        help="revoke the account's access, archive it, erase it in every store and remove it (asks to confirm)",
    )
    delete.add_argument("account_id")
    delete.add_argument("--yes", action="store_true", help="do not ask (scripts)")
    delete.add_argument(
        "--no-wait",
        action="store_true",
        help="start the deletion and leave it to the running privacy workers",
    )
    delete.set_defaults(func=cmd_delete)
