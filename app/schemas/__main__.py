"""``python -m app.schemas {register,check,list}``: schema governance against the registry.

Exit status: 0 on success; 1 when a check fails (incompatible, invalid or missing schema) or a
registration is rejected; 2 when the registry cannot be reached or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .client import RegistryHTTPError, RegistryUnreachable
from .governance import (
    DEFAULT_REGISTRY_URL,
    GovernanceError,
    check_all,
    list_all,
    register_all,
    registry_url,
)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=None,
        help=f"registry URL (default: $SCHEMA_REGISTRY_URL or {DEFAULT_REGISTRY_URL})",
    )
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP call")
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument(
        "--schema-dir", type=Path, default=None, help="root of the .avsc files (default: schemas/)"
    )
    files.add_argument(
        "--topic",
        action="append",
        dest="topics",
        metavar="TOPIC",
        help="only this topic (repeatable)",
    )
    files.add_argument(
        "--skip-missing", action="store_true", help="skip catalog schemas whose file is missing"
    )
    parser = argparse.ArgumentParser(
        prog="python -m app.schemas", description="Schema governance for the topic catalog."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "register",
        parents=[common, files],
        help="register every catalog schema under <topic>-value",
    )
    commands.add_parser(
        "check", parents=[common, files], help="check local schemas are compatible (no registering)"
    )
    commands.add_parser("list", parents=[common], help="subjects with their versions and ids")
    return parser


def _register(args: argparse.Namespace) -> int:
    registrations = register_all(
        args.url,
        args.schema_dir,
        topics=args.topics,
        skip_missing=args.skip_missing,
        timeout=args.timeout,
    )
    for r in registrations:
        print(f"{r.subject}: id={r.schema_id} version={r.version} ({r.schema_file})")
    print(f"registered {len(registrations)} schema(s) at {registry_url(args.url)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    results = check_all(
        args.url,
        args.schema_dir,
        topics=args.topics,
        skip_missing=args.skip_missing,
        timeout=args.timeout,
    )
    for r in results:
        print(f"{'OK  ' if r.ok else 'FAIL'} {r.subject} [{r.status}]: {r.detail}")
        for message in r.messages:
            print(f"       {message}")
    failed = [r for r in results if not r.ok]
    if failed:
        print(
            f"{len(failed)} of {len(results)} schema(s) failed: "
            + ", ".join(f"{r.subject} ({r.status})" for r in failed),
            file=sys.stderr,
        )
        return 1
    print(f"all {len(results)} schema(s) pass against {registry_url(args.url)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for listing in list_all(args.url, timeout=args.timeout):
        versions = ", ".join(
            f"v{version}=id {schema_id}" for version, schema_id in listing.versions
        )
        print(f"{listing.subject} [{listing.compatibility}]: {versions}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"register": _register, "check": _check, "list": _list}[args.command]
    try:
        return handler(args)
    except GovernanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RegistryUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RegistryHTTPError as exc:
        print(f"error: registry answered {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
