"""Before and after a change: the comparison of two commits, run alternately on one machine.

``python -m bench.before_after BEFORE AFTER [--pairs N] [-- bench.telemetry options]`` checks
both commits out into a temporary directory (``git worktree``, each with its own ``.venv``
made by ``make venv``), then runs ``python -m bench.telemetry --only b,c`` (or the options
given after ``--``) in BEFORE, in AFTER, in BEFORE, ... N times each, and prints every run's
(b) and (c) events/s, their ratio, and the medians, as a Markdown table. Why alternate: on a
shared 2-core machine the speed drifts by 10% and more within minutes (the floor, the same
code on both sides, shows it), so runs far apart in time compare the machine, not the code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent


def _run(command: Sequence[str], cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _checkout(revision: str, into: Path) -> Path:
    _run(["git", "worktree", "add", "--detach", "-f", str(into), revision], REPO)
    _run(["make", "venv"], into)
    return into


def _one_run(checkout: Path, options: Sequence[str]) -> dict[str, float]:
    """(b)'s and (c)'s events/s of one comparison run in ``checkout``."""
    subprocess.run([str(checkout / ".venv/bin/python"), "-m", "bench.telemetry", *options],
                   cwd=checkout, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    results = json.loads((checkout / "bench/results/latest.json").read_text())
    runs = results["compare"]["runs"]
    if not all(run["ok"] for run in runs.values()):
        raise RuntimeError(f"aggregates differ from the oracle in {checkout}")
    return {code: runs[code]["events_per_s"] for code in ("b", "c")}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = ["--only", "b,c"]
    if "--" in argv:
        cut = argv.index("--")
        argv, options = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m bench.before_after", description=__doc__)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="streampulse-before-after-"))
    checkouts = {}
    try:
        for side, revision in (("before", args.before), ("after", args.after)):
            checkouts[side] = _checkout(revision, work / side)
        rows = []
        for pair in range(1, args.pairs + 1):
            row = {side: _one_run(path, options) for side, path in checkouts.items()}
            rows.append(row)
            print(f"pair {pair}: " + ", ".join(
                f"{side} (b) {r['b']:,.0f} (c) {r['c']:,.0f}" for side, r in row.items()
            ), file=sys.stderr, flush=True)  # fmt: skip
    finally:
        for path in checkouts.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO,
                           check=False)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    print(f"before {args.before}, after {args.after}, {args.pairs} pairs, `bench.telemetry "
          f"{' '.join(options)}`\n")  # fmt: skip
    print("| pair | (b) before | (c) before | ratio before | (b) after | (c) after | ratio after |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for pair, row in enumerate(rows, 1):
        b, a = row["before"], row["after"]
        print(f"| {pair} | {b['b']:,.0f} | {b['c']:,.0f} | {b['b'] / b['c']:.3f} "
              f"| {a['b']:,.0f} | {a['c']:,.0f} | {a['b'] / a['c']:.3f} |")  # fmt: skip
    med = {side: {code: statistics.median(r[side][code] for r in rows) for code in ("b", "c")}
           for side in ("before", "after")}  # fmt: skip
    ratios = {side: statistics.median(r[side]["b"] / r[side]["c"] for r in rows)
              for side in ("before", "after")}  # fmt: skip
    print(f"| median | {med['before']['b']:,.0f} | {med['before']['c']:,.0f} "
          f"| {ratios['before']:.3f} | {med['after']['b']:,.0f} | {med['after']['c']:,.0f} "
          f"| {ratios['after']:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
