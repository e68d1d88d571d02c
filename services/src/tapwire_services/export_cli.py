"""``tapwire export events|profiles``: the command line of ``export_client``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

PASSCODE_ENV = "TAPWIRE_PASSCODE"


def add_export_command(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="a CQL query's events or profiles from a running tapwire, as JSON Lines",
        description="Pages through /1/events.json or /1/profiles.json with a progress bar on standard error "
        "and ends with a one-line summary. The passcode comes from --passcode or $" + PASSCODE_ENV + ".",
    )
    export.add_argument("kind", choices=["events", "profiles"])
    export.add_argument("--url", required=True, help="the tapwire (query service) to export from")
    export.add_argument("--account", required=True, help="account id")
    export.add_argument("--passcode", help=f"the account's passcode (default: ${PASSCODE_ENV})")
    export.add_argument(
        "--query",
        required=True,
        help='the CQL query as JSON (e.g. \'{"event_name":"Charged","from":20260101,"to":20260131}\'), or @FILE',
    )
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--batch-size", type=int, default=5000, help="records per page (default 5000)")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from tapwire_services.export_client import ExportFailed, export_to

    passcode = args.passcode or os.environ.get(PASSCODE_ENV)
    if not passcode:
        print(f"tapwire export: give --passcode or set {PASSCODE_ENV}", file=sys.stderr)
        return 2
    text = Path(args.query[1:]).read_text() if args.query.startswith("@") else args.query
    try:
        query = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        print(f"tapwire export: --query is not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        summary = export_to(
            args.kind,
            query,
            out_path=args.out,
            url=args.url,
            account=args.account,
            passcode=passcode,
            batch_size=args.batch_size,
            progress=sys.stderr.isatty(),
        )
    except ExportFailed as exc:
        print(f"tapwire export: stopped: {exc}", file=sys.stderr)
        return 1
    print(summary.line(), file=sys.stderr)
    return 0
