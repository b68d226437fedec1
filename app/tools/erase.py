"""GDPR erasure from the command line: ``python -m app.tools.erase <user id>``.

Posts to a worker's ``/erasure/`` route (``app/web/erasure.py``) with the bearer token from
``ERASURE_TOKEN``; any worker will do (the request is routed to the owner of the user's
partition). Prints the worker's JSON answer. Exit status: 0 erased, 3 no state for that user,
1 any other answer, 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence


def erase(base_url: str, user_id: str, token: str, timeout: float = 10.0) -> tuple[int, dict]:
    """POST the erasure of ``user_id``; returns the HTTP status and the JSON answer."""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/erasure/",
        data=json.dumps({"user_id": user_id}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body or b"{}")
        except ValueError:
            return exc.code, {"error": body.decode(errors="replace")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.erase", description=__doc__)
    parser.add_argument("user_id")
    parser.add_argument(
        "--url",
        default=os.environ.get("WORKER_URL")
        or f"http://127.0.0.1:{os.environ.get('WEB_PORT') or 6066}",
        help="a worker's web address (default: WORKER_URL, or localhost:WEB_PORT)",
    )
    args = parser.parse_args(argv)
    token = os.environ.get("ERASURE_TOKEN")
    if not token:
        print("ERASURE_TOKEN is not set", file=sys.stderr)
        return 2
    status, answer = erase(args.url, args.user_id, token)
    print(json.dumps(answer, indent=2))
    return {200: 0, 404: 3}.get(status, 1)


if __name__ == "__main__":
    sys.exit(main())
