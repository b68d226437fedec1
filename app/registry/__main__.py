"""``python -m app.registry --host H --port P --data-dir DIR``: serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from .server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.registry",
        description="StreamPulse's Confluent-compatible Schema Registry (Avro only).",
    )
    parser.add_argument("--host", default=os.environ.get("REGISTRY_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("REGISTRY_PORT", "8081")),
        help="TCP port (0 picks a free one and logs it)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("REGISTRY_DATA_DIR", "data/registry")),
        help="directory of the SQLite database (created if missing)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args.host, args.port, args.data_dir, access_log=args.access_log))
    except OSError as exc:
        logging.getLogger("app.registry").error(
            "cannot serve on %s:%s with data dir %s: %s", args.host, args.port, args.data_dir, exc
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
