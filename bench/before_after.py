"""Before and after a change: one benchmark phase of two commits, run alternately.

``python -m bench.before_after BEFORE AFTER [--phase compare|latency|scale] [--pairs N]
[-- bench.telemetry options]`` checks both commits out into a temporary directory
(``git worktree``, each with its own ``.venv`` made by ``make venv``), then runs the phase of
``python -m bench.telemetry`` in BEFORE, in AFTER, in BEFORE, ... N times each, and prints
every run's figures and their medians as a Markdown table:

- ``compare`` (default; ``--only b,c``): (b) and (c) events/s and their ratio;
- ``latency`` (``--no-compare --latency``): the default worker's p50 and p99 (worst table,
  ``LATENCY_LOG`` hook) and the one-hop baseline's p99, the machine's state at that moment;
- ``scale`` (``--no-compare --scale``): (b)'s events/s and peak RSS.

Why alternate: on a shared 2-core machine the speed drifts by 10% and more within minutes
(the floor, the same code on both sides, shows it), so runs far apart in time compare the
machine, not the code.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PHASES", "main"]

REPO = Path(__file__).resolve().parent.parent


def _compare(results: dict[str, Any]) -> dict[str, float]:
    runs = results["compare"]["runs"]
    if not all(run["ok"] for run in runs.values()):
        raise RuntimeError("aggregates differ from the oracle")
    b, c = runs["b"]["events_per_s"], runs["c"]["events_per_s"]
    return {"(b) ev/s": b, "(c) ev/s": c, "(b)/(c)": b / c}


def _latency(results: dict[str, Any]) -> dict[str, float]:
    latency = results["latency"]
    p50, p99 = (t["value"] for t in latency["targets"])  # worst table, the hook
    return {"p50 ms": p50, "p99 ms": p99, "one-hop p99 ms": latency["baseline_one_hop"]["p99_ms"]}


def _scale(results: dict[str, Any]) -> dict[str, float]:
    run = results["scale"]["run"]
    if not run["ok"]:
        raise RuntimeError("scale aggregates differ from the oracle")
    return {"ev/s": run["events_per_s"], "peak RSS MB": run["peak_rss_mb"]}


#: phase -> (default bench.telemetry options, figures of one run's latest.json)
PHASES: dict[str, tuple[list[str], Callable[[dict[str, Any]], dict[str, float]]]] = {
    "compare": (["--only", "b,c"], _compare),
    "latency": (["--no-compare", "--latency"], _latency),
    "scale": (["--no-compare", "--scale"], _scale),
}


def _run(command: Sequence[str], cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def _checkout(revision: str, into: Path) -> Path:
    _run(["git", "worktree", "add", "--detach", "-f", str(into), revision], REPO)
    _run(["make", "venv"], into)
    return into


def _one_run(checkout: Path, options: Sequence[str], figures: Callable) -> dict[str, float]:
    _run([str(checkout / ".venv/bin/python"), "-m", "bench.telemetry", *options], checkout)
    return figures(json.loads((checkout / "bench/results/latest.json").read_text()))


def _fmt(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:,.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] | None = None
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m bench.before_after", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--phase", choices=sorted(PHASES), default="compare")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args(argv)
    default_options, figures = PHASES[args.phase]
    options = extra if extra is not None else default_options
    work = Path(tempfile.mkdtemp(prefix="streampulse-before-after-"))
    checkouts: dict[str, Path] = {}
    rows: list[dict[str, dict[str, float]]] = []
    try:
        for side, revision in (("before", args.before), ("after", args.after)):
            checkouts[side] = _checkout(revision, work / side)
        for pair in range(1, args.pairs + 1):
            row = {side: _one_run(path, options, figures) for side, path in checkouts.items()}
            rows.append(row)
            print(f"pair {pair}: {row}", file=sys.stderr, flush=True)
    finally:
        for path in checkouts.values():
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO,
                           check=False)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
    names = list(rows[0]["before"])
    print(f"before {args.before}, after {args.after}, {args.pairs} pairs, `bench.telemetry "
          f"{' '.join(options)}`\n")  # fmt: skip
    print("| pair | " + " | ".join(f"{n} {side}" for side in ("before", "after") for n in names)
          + " |")  # fmt: skip
    print("|---:|" + "---:|" * (2 * len(names)))
    for pair, row in enumerate(rows, 1):
        cells = [_fmt(row[side][n]) for side in ("before", "after") for n in names]
        print(f"| {pair} | " + " | ".join(cells) + " |")
    medians = [_fmt(statistics.median(r[side][n] for r in rows))
               for side in ("before", "after") for n in names]  # fmt: skip
    print("| median | " + " | ".join(medians) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
