"""Endurance: one worker under the simulator's full eight-topic mix for a long time.

``python -m bench.endurance [--minutes 30] [--rate 300] [--sample-seconds 30]`` starts the
embedded stack, one worker (60-second windows, 10 s grace: the worker's defaults) and the
simulator (1% broken messages, 20% v2 downloads), and samples, every ``--sample-seconds``:

- the worker's RSS and CPU (``/proc``, bench/measure.py's sampler), and the broker's beside
  them: the embedded Tansu broker's fetch cost grows with the batches it holds (lessons.md),
  so a reader must be able to tell the worker's behaviour from the broker's;
- throughput (``streampulse_events_consumed_total`` over the interval) and consumer lag
  (Faust's end offset minus committed offset, summed over the source topics);
- table latency p50/p99 over the interval (``streampulse_table_latency_seconds`` bucket
  deltas, worst table, interpolated within a bucket).

It writes ``bench/results/endurance.{json,md,png}`` (``--out``): the table, the plot
(matplotlib), and the verdict on memory: the worker's RSS slope over the second half of the
run (windows expire from the first minutes on), flat when under ``FLAT_MB_PER_HOUR``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.catalog import SOURCE_TOPICS
from app.tools.results import Samples, metric_sum, read_metrics
from app.tools.run import start_worker, stop_process, wait_ready
from app.tools.stack import EmbeddedStack, free_port
from bench.measure import ProcSampler

__all__ = ["FLAT_MB_PER_HOUR", "Sample", "histogram_quantile", "main", "rss_slope"]

REPO = Path(__file__).resolve().parent.parent
#: The worker's RSS counts as flat when its second-half trend is below this.
FLAT_MB_PER_HOUR = 20.0
LATENCY = "streampulse_table_latency_seconds"
#: Faust's sensor gauges per source partition (end offset, committed offset)
_OFFSET_METRICS = ("faust_topic_partition_end_offset", "faust_topic_partition_offset_commited")


@dataclass
class Sample:
    minute: float
    worker_rss_mb: float
    worker_cpu_pct: float
    broker_rss_mb: float
    broker_cpu_pct: float
    events_per_s: float
    lag_records: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


def histogram_quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Quantile ``q`` of a cumulative histogram (upper bound -> count), linear within the
    bucket, as Prometheus' histogram_quantile; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def latency_buckets(samples: Samples) -> dict[str, dict[float, float]]:
    """table -> cumulative bucket counts of the table-latency histogram."""
    out: dict[str, dict[float, float]] = {}
    for (name, labels), value in samples.items():
        if name == f"{LATENCY}_bucket":
            label = dict(labels)
            out.setdefault(label["table"], {})[float(label["le"])] = value
    return out


def lag(samples: Samples) -> int:
    """Records behind the committed offset, summed over the source topics' partitions."""
    ends: dict[tuple[str, str], float] = {}
    committed: dict[tuple[str, str], float] = {}
    for (name, labels), value in samples.items():
        if name not in _OFFSET_METRICS:
            continue
        label = dict(labels)
        if label.get("topic") not in SOURCE_TOPICS:
            continue
        tp = (label["topic"], label["partition"])
        if name == "faust_topic_partition_end_offset":
            ends[tp] = value
        elif name == "faust_topic_partition_offset_commited":
            committed[tp] = value
    return int(sum(max(0.0, end - committed.get(tp, 0.0)) for tp, end in ends.items()))


def rss_slope(samples: Sequence[Sample]) -> float:
    """The worker's RSS trend over the second half of the run, MB per hour (least squares)."""
    half = [s for s in samples if s.minute >= samples[-1].minute / 2]
    if len(half) < 2:
        return 0.0
    xs = [s.minute / 60 for s in half]
    ys = [s.worker_rss_mb for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def _table(samples: Sequence[Sample]) -> str:
    def num(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    rows = [
        "| minute | worker RSS MB | worker CPU % | broker RSS MB | broker CPU % | events/s |"
        " lag (records) | latency p50 ms | latency p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in samples:
        rows.append(
            f"| {s.minute:.1f} | {s.worker_rss_mb:.0f} | {s.worker_cpu_pct:.0f} |"
            f" {s.broker_rss_mb:.0f} | {s.broker_cpu_pct:.0f} | {num(s.events_per_s)} |"
            f" {s.lag_records:,} | {num(s.latency_p50_ms)} | {num(s.latency_p99_ms)} |"
        )
    return "\n".join(rows)


def _plot(samples: Sequence[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.minute for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(9, 11), sharex=True)
    axes[0].plot(minutes, [s.worker_rss_mb for s in samples], label="worker")
    axes[0].plot(minutes, [s.broker_rss_mb for s in samples], label="broker (Tansu)")
    axes[0].set_ylabel("RSS MB")
    axes[1].plot(minutes, [s.worker_cpu_pct for s in samples], label="worker")
    axes[1].plot(minutes, [s.broker_cpu_pct for s in samples], label="broker (Tansu)")
    axes[1].set_ylabel("CPU % of one core")
    axes[2].plot(minutes, [s.events_per_s for s in samples], label="events/s consumed")
    lag_axis = axes[2].twinx()
    lag_axis.plot(minutes, [s.lag_records for s in samples], color="tab:red", label="lag")
    lag_axis.set_ylabel("lag (records)", color="tab:red")
    axes[2].set_ylabel("events/s")
    for key, label in (("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")):
        axes[3].plot(minutes, [getattr(s, key) for s in samples], label=f"table latency {label}")
    axes[3].set_ylabel("ms")
    axes[3].set_xlabel("minutes")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="streampulse-endurance-"))
    web_port = free_port()
    with EmbeddedStack(log_dir=state, data_dir=state / "registry") as stack:
        env = {
            **stack.env(), "APP_ID": "streampulse-endurance", "WEB_PORT": str(web_port),
            "DATA_DIR": str(state / "worker"), "WINDOW_SECONDS": str(args.window_seconds),
            "GRACE_SECONDS": "10", "PYTHONPATH": str(REPO),
        }  # fmt: skip
        worker = start_worker(env, web_port, state / "worker.log")
        simulator = None
        try:
            wait_ready(web_port, worker)
            simulator = subprocess.Popen(
                [sys.executable, "-m", "app.simulate", "--rate", str(args.rate),
                 "--duration", str(args.minutes * 60), "--seed", "1",
                 "--bad-rate", "0.01", "--v2-rate", "0.2"],
                env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                stdout=open(state / "simulator.log", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            worker_proc = ProcSampler(worker.pid)
            broker_proc = ProcSampler(stack._processes[0].pid)
            url = f"http://127.0.0.1:{web_port}"
            started = time.monotonic()
            end = started + args.minutes * 60
            previous: tuple[float, Samples] | None = None
            samples: list[Sample] = []
            while time.monotonic() < end:
                time.sleep(min(args.sample_seconds, max(0.0, end - time.monotonic())))
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker exited; see {state / 'worker.log'}")
                metrics = read_metrics(url) or {}
                now = time.monotonic()
                worker_proc.sample()
                broker_proc.sample()
                if previous is not None and metrics:
                    samples.append(_sample(now - started, previous, (now, metrics),
                                           worker_proc, broker_proc))  # fmt: skip
                    print(_table(samples[-1:]).splitlines()[-1], flush=True)
                previous = (now, metrics)
        finally:
            if simulator is not None:
                stop_process(simulator)
            stop_process(worker)
    slope = rss_slope(samples) if samples else 0.0
    began = time.gmtime(time.time() - args.minutes * 60)
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", began),
        "minutes": args.minutes, "rate": args.rate, "window_seconds": args.window_seconds,
        "cpus": os.cpu_count(), "worker_rss_slope_mb_per_hour": slope,
        "worker_rss_flat": abs(slope) < FLAT_MB_PER_HOUR,
        "worker_peak_rss_mb": worker_proc.peak_hwm_mb,
        "broker_peak_rss_mb": broker_proc.peak_hwm_mb, "samples": [asdict(s) for s in samples],
        "logs": str(state),
    }  # fmt: skip


def _sample(
    elapsed: float,
    previous: tuple[float, Samples],
    current: tuple[float, Samples],
    worker: ProcSampler,
    broker: ProcSampler,
) -> Sample:
    (t0, before), (t1, after) = previous, current
    seconds = t1 - t0
    consumed = sum(
        metric_sum(after, "streampulse_events_consumed_total", topic=t)
        - metric_sum(before, "streampulse_events_consumed_total", topic=t)
        for t in SOURCE_TOPICS
    )
    worst: dict[float, float] = {}  # quantile -> ms, the worst table's
    old = latency_buckets(before)
    for table, buckets in latency_buckets(after).items():
        delta = {b: c - old.get(table, {}).get(b, 0.0) for b, c in buckets.items()}
        for q in (0.5, 0.99):
            value = histogram_quantile(delta, q)
            if value is not None:
                worst[q] = max(worst.get(q, 0.0), value * 1000)

    def cpu_pct(sampler: ProcSampler) -> float:
        (w0, _, c0), (w1, _, c1) = sampler.samples[-2], sampler.samples[-1]
        return 100.0 * (c1 - c0) / (w1 - w0) if w1 > w0 else 0.0

    return Sample(
        minute=elapsed / 60, worker_rss_mb=worker.samples[-1][1], worker_cpu_pct=cpu_pct(worker),
        broker_rss_mb=broker.samples[-1][1], broker_cpu_pct=cpu_pct(broker),
        events_per_s=consumed / seconds if seconds else 0.0, lag_records=lag(after),
        latency_p50_ms=worst.get(0.5), latency_p99_ms=worst.get(0.99),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.endurance", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--rate",
        type=float,
        default=300.0,
        help="simulator messages/s over all eight topics (the worker consumes three of them)",
    )
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--window-seconds", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "endurance")
    args = parser.parse_args(argv)
    result = run(args)
    samples = [Sample(**s) for s in result["samples"]]
    if not samples:
        print("no samples: run longer than two sample intervals", file=sys.stderr)
        return 1
    title = (f"Endurance: {result['minutes']:.0f} min, simulator rate {result['rate']:.0f}"
             f" ({result['started']}, {result['cpus']} CPUs)")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(samples, args.out.with_suffix(".png"), title)
    verdict = (
        f"Worker RSS over the second half: {result['worker_rss_slope_mb_per_hour']:+.1f} MB/h"
        f" ({'flat' if result['worker_rss_flat'] else 'NOT flat'}: threshold"
        f" {FLAT_MB_PER_HOUR:.0f} MB/h); peak RSS worker {result['worker_peak_rss_mb']:.0f} MB,"
        f" broker {result['broker_peak_rss_mb']:.0f} MB."
    )
    args.out.with_suffix(".md").write_text(
        f"# {title}\n\n`python -m bench.endurance --minutes {args.minutes:g} --rate"
        f" {args.rate:g}`\n\n{_table(samples)}\n\n{verdict}\n\n"
        f"![endurance]({args.out.with_suffix('.png').name})\n"
    )
    print(verdict)
    return 0 if result["worker_rss_flat"] else 2


if __name__ == "__main__":
    raise SystemExit(main())
