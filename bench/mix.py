"""The whole product on the full eight-topic mix, side by side with the floor (``make bench``).

``python -m bench.mix [--events 100000] [--pairs 1] [--rate 2000] [--latency-seconds 60]
[--profile]`` starts the embedded stack and:

1. **Throughput.** Preloads ``--events`` messages of the simulator's mix (all eight topics, its
   weights, event times spread as if produced at ``--rate``), then, alternating in one run,
   consumes the backlog with (b) our worker (every aggregate, the per-user join included) and
   (c) the floor (``bench/mix_floor.py``: the same decoder, rules, aggregation math and join
   math in plain dicts, no Faust), each with a fresh consumer group. A run's time is from its
   first consumed message until every message is aggregated (or dead-lettered) and every join
   event applied: for (b) read from its ``/metrics`` every 0.25 s, for (c) from its status file.
   Reported: events/s, the ratio (b)/(c), peak RSS (``VmHWM`` of the process tree).
2. **Latency.** A fresh worker with ``LATENCY_LOG``, the simulator live at ``--rate`` events/s
   of the mix for ``--latency-seconds``: table latency (a source event's production to its
   merge into each table it feeds, the join's tables through the repartition topic) p50/p99
   after a 10 s warm-up, per table and over all contributions.
3. **Profile** (``--profile``): the throughput run of (b) once more under ``py-spy record``;
   where the worker's samples fall, by area (``bench/results/mix-profile.txt``).

Results: ``bench/results/mix.json`` and ``mix.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from agents import DOMAINS
from app.catalog import SOURCE_TOPICS, load_schema, subject_for
from app.engine.codec import RegistryCodec
from app.tools.results import metric_sum, read_metrics
from app.tools.run import start_worker, stop_process, wait_ready
from app.tools.simulate import TOPIC_WEIGHTS, load_factories
from app.tools.stack import EmbeddedStack, free_port
from bench.dataset import new_producer, produce
from bench.latency import HopBaseline, hook_latencies, summarize_hops
from bench.measure import ProcSampler

RESULTS = Path(__file__).resolve().parent / "results"
WORKER_ENV = {"WINDOW_SECONDS": "10", "GRACE_SECONDS": "2", "IDLE_ADVANCE_SECONDS": "2",
              "CTR_ATTRIBUTION_SECONDS": "60", "STORE_URL": "rocksdb://"}  # fmt: skip
JOINED = {d.topic: d.join for d in DOMAINS if d.join is not None}


async def preload(stack: EmbeddedStack, count: int, rate: float, seed: int) -> dict[str, Any]:
    """Produce ``count`` messages of the mix; returns what a run must reach."""
    topics = list(SOURCE_TOPICS)
    factories, _ = load_factories(seed, topics)
    codec = RegistryCodec(stack.registry_url, max_retries=10)
    ids = {t: await codec.schema_id_for(subject_for(t), load_schema(f.schema_file))
           for t, f in factories.items()}  # fmt: skip
    rng = random.Random(seed)
    weights = [TOPIC_WEIGHTS.get(t, 1) for t in topics]
    producer = new_producer(stack.bootstrap)
    start_ms = int(time.time() * 1000) - int(count / rate * 1000)
    per_topic: Counter[str] = Counter()
    joined = 0
    for i in range(count):
        topic = rng.choices(topics, weights)[0]
        key, value = factories[topic].make(rng, start_ms + int(i * 1000 / rate))
        extract = JOINED.get(topic)
        joined += extract is not None and extract(value) is not None
        produce(producer, topic, key.encode(), codec.encode(ids[topic], value))
        per_topic[topic] += 1
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)
    await codec.close()
    return {"events": count, "per_topic": dict(per_topic), "join_events": joined}


def run_worker(
    stack: EmbeddedStack,
    work: Path,
    target: dict[str, Any],
    profile: Path | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """(b): our worker consumes the backlog; time from first consumption to all done."""
    port = free_port()
    env = {**stack.env(), **WORKER_ENV, "APP_ID": f"bench-mix-{uuid.uuid4().hex[:8]}",
           "WEB_PORT": str(port), "DATA_DIR": str(work / "worker"),
           "WORKER_CANONICAL_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    process = spawn_worker(env, port, work / "worker.log", profile)
    sampler = ProcSampler(process.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        not_ready_at = wait_ready_closely(url, process)
        first = done = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sampler.sample()
            samples = read_metrics(url) or {}
            consumed = metric_sum(samples, "streampulse_events_consumed_total")
            counted = metric_sum(samples, "streampulse_events_aggregated_total") + metric_sum(
                samples, "streampulse_dlq_messages_total"
            )
            joined = metric_sum(samples, "streampulse_join_events_total", replayed="false")
            now = time.time()
            if first is None and consumed:
                first = now
            if counted >= target["events"] and joined >= target["join_events"]:
                done = now
                break
            time.sleep(0.1)
        if first is None or done is None:
            raise RuntimeError(f"the worker did not finish the backlog (see {work}/worker.log)")
        # Consumption starts once the worker is ready (its table recovery done): the last
        # answer before it said ready bounds the start from below, so the time is never
        # shorter than the true one (the first fetch can be over between two scrapes).
        first = min(first, not_ready_at)
        sampler.sample()
        seconds = max(done - first, 1e-3)
        return {"seconds": round(seconds, 2), "events_per_s": round(target["events"] / seconds),
                "peak_rss_mb": round(sampler.peak_hwm_mb)}  # fmt: skip
    finally:
        stop_worker(process, profile)


def spawn_worker(
    env: dict[str, str], port: int, log: Path, profile: Path | None
) -> subprocess.Popen:
    """A worker; under ``py-spy record`` (raw samples into ``profile``) when given."""
    if profile is None:
        return start_worker(env, port, log)
    faust = Path(sys.executable).with_name("faust")
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy), "record", "-r", "100", "--format", "raw", "-o", str(profile), "--",
         str(faust), "-A", "app.main", "worker", "-l", "info", "--web-port", str(port)],
        env={**os.environ, **env}, stdout=open(log, "ab"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def stop_worker(process: subprocess.Popen, profile: Path | None) -> None:
    if profile is not None:
        # SIGTERM the worker only: py-spy writes its samples once its child has exited
        # (signalled itself, it would exit without writing).
        for child in _children(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
    stop_process(process)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def wait_ready_closely(url: str, process: subprocess.Popen, timeout: float = 90.0) -> float:
    """Wait for ``/readyz`` polling every 50 ms; the wall-clock time of the last answer
    that was not ready."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last_not_ready = time.time()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode} while starting")
        asked = time.time()
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return last_not_ready
        except (OSError, urllib.error.HTTPError):
            pass
        last_not_ready = asked
        time.sleep(0.05)
    raise RuntimeError("the worker did not become ready")


def run_floor(stack: EmbeddedStack, work: Path, target: dict[str, Any],
              timeout: float = 600.0) -> dict[str, Any]:  # fmt: skip
    """(c): the floor consumes the backlog; time from first consumption to all done."""
    status = work / "floor.json"
    env = {**os.environ, **WORKER_ENV, "BENCH_BOOTSTRAP": stack.bootstrap,
           "BENCH_REGISTRY_URL": stack.registry_url, "BENCH_OUTPUT_TOPIC": "bench-mix-floor-out",
           "BENCH_GROUP": f"bench-mix-floor-{uuid.uuid4().hex[:8]}",
           "BENCH_STATUS_FILE": str(status), "BENCH_DATA_DIR": str(work),
           "TOPIC_PARTITIONS": str(stack.partitions),
           "BENCH_TARGET_EVENTS": str(target["events"]),
           "BENCH_TARGET_JOIN_EVENTS": str(target["join_events"])}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.mix_floor"], env=env, stdout=open(work / "floor.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    sampler = ProcSampler(process.pid)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sampler.sample()
            data = json.loads(status.read_text()) if status.exists() else {}
            if "done" in data:
                done = data["done"]  # the floor's own clock, the moment it got there
                break
            if process.poll() is not None:
                raise RuntimeError(f"the floor exited (see {work}/floor.log)")
            time.sleep(0.1)
        else:
            raise RuntimeError("the floor did not finish the backlog")
        seconds = max(done - data["first_consumed"], 1e-3)
        return {"seconds": round(seconds, 2), "events_per_s": round(target["events"] / seconds),
                "peak_rss_mb": round(sampler.peak_hwm_mb),
                "invalid": data.get("invalid")}  # fmt: skip
    finally:
        stop_process(process)


def simulate_live(stack: EmbeddedStack, rate: float, seconds: float) -> None:
    """The simulator's mix, live at ``rate`` messages/s for ``seconds`` (the same seed in every
    latency run, so the worker and the yardstick see the same stream)."""
    simulator = subprocess.run(
        [sys.executable, "-m", "app.simulate", "--rate", str(rate), "--duration", str(seconds),
         "--seed", "5"],
        env={**os.environ, **stack.env()}, capture_output=True, timeout=seconds + 120,
    )  # fmt: skip
    if simulator.returncode:
        raise RuntimeError(f"simulator failed: {simulator.stderr.decode()[-2000:]}")


def run_latency(
    stack: EmbeddedStack, work: Path, rate: float, seconds: float, profile: Path | None = None
) -> dict[str, Any]:
    """A fresh worker, the simulator live at ``rate``: table latency from LATENCY_LOG."""
    port = free_port()
    log = work / "latency.jsonl"
    env = {**stack.env(), **WORKER_ENV, "APP_ID": f"bench-mix-lat-{uuid.uuid4().hex[:8]}",
           "WEB_PORT": str(port), "DATA_DIR": str(work / "latency-worker"),
           "WORKER_CANONICAL_URL": f"http://127.0.0.1:{port}", "LATENCY_LOG": str(log)}  # fmt: skip
    process = spawn_worker(env, port, work / "latency-worker.log", profile)
    try:
        wait_ready(port, process)
        started_ms = int(time.time() * 1000)
        simulate_live(stack, rate, seconds)
        time.sleep(3.0)
        summary = hook_latencies(log, started_ms + 10_000) or {}
        samples = read_metrics(f"http://127.0.0.1:{port}") or {}
        summary["consumed"] = metric_sum(samples, "streampulse_events_consumed_total")
        return summary
    finally:
        stop_worker(process, profile)


def run_latency_fresh(
    args: argparse.Namespace, work: Path, profile: Path | None = None
) -> dict[str, Any]:
    """:func:`run_latency` on a fresh embedded stack of its own."""
    work.mkdir(parents=True)
    with EmbeddedStack(
        partitions=args.partitions, log_dir=work, data_dir=work / "registry"
    ) as stack:
        return run_latency(stack, work, args.rate, args.latency_seconds, profile)


def run_hop_baseline(partitions: int, rate: float, seconds: float, work: Path) -> dict[str, Any]:
    """The latency run's yardstick: on a fresh stack, a plain aiokafka consumer of the eight
    source topics alone (no worker), the simulator live at the same rate for as long: one
    broker hop, production -> consumed (``bench.latency.HopBaseline``; alone because a second
    consumer group beside the worker doubles the broker's fetch work)."""
    with EmbeddedStack(partitions=partitions, log_dir=work, data_dir=work / "registry") as stack:
        baseline = HopBaseline(stack.bootstrap, SOURCE_TOPICS)
        baseline.start()
        baseline.wait_ready()
        started_ms = int(time.time() * 1000)
        try:
            simulate_live(stack, rate, seconds)
        finally:
            hops = baseline.stop(drain_seconds=3.0)
    return summarize_hops(hops, started_ms + 10_000, bucket_s=10)


def summarize_profile(raw: Path) -> list[tuple[str, float]]:
    """Share of the worker's samples per area, by the innermost frame of ours or a library's."""
    areas = (
        ("decode (fastavro, codec)", ("fastavro", "codec.py")),
        ("rules (app/validation)", ("app/validation",)),
        (
            "folding (models/combine, build_partials)",
            ("combine.py", "build_partials", "build_event"),
        ),
        ("join math (models/users)", ("models/users.py",)),
        ("table merge and close (windowing)", ("windowing.py",)),
        ("join stage (app/engine/join)", ("engine/join.py",)),
        ("JSON (partials, changelog)", ("json", "orjson")),
        ("RocksDB and Faust tables", ("rocksdict", "faust/stores", "faust/tables")),
        ("Kafka client (aiokafka)", ("aiokafka",)),
        ("Faust and mode (other)", ("faust/", "mode/")),
        ("asyncio and the event loop", ("asyncio", "uvloop", "selectors")),
    )
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = stack.split(";")
        area = "other"
        for frame in reversed(frames):
            found = next((name for name, marks in areas if any(m in frame for m in marks)), None)
            if found:
                area = found
                break
        counts[area] += samples
    return [(area, round(100 * n / total, 1)) for area, n in counts.most_common()] if total else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mix", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", default="mix", help="results file name (bench/results/<out>.*)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-mix-"))
    out: dict[str, Any] = {"events": args.events, "partitions": args.partitions, "pairs": []}
    with EmbeddedStack(
        partitions=args.partitions, log_dir=work, data_dir=work / "registry"
    ) as stack:
        target = asyncio.run(preload(stack, args.events, args.rate, args.seed))
        out["target"] = target
        print(f"preloaded {target['events']:,} messages ({target['join_events']:,} join events)",
              flush=True)  # fmt: skip
        for pair in range(args.pairs):
            runs = {}
            for name in ("product", "floor") if pair % 2 == 0 else ("floor", "product"):
                run_dir = work / f"{name}-{pair}"
                run_dir.mkdir()
                runs[name] = (run_worker if name == "product" else run_floor)(
                    stack, run_dir, target
                )
                print(f"pair {pair + 1} {name}: {runs[name]}", flush=True)
            runs["ratio"] = round(
                runs["product"]["events_per_s"] / runs["floor"]["events_per_s"], 3
            )
            out["pairs"].append(runs)
        ratios = [p["ratio"] for p in out["pairs"]]
        out["ratio_median"] = statistics.median(ratios) if ratios else None
        profiling = args.profile and shutil.which(str(Path(sys.executable).with_name("py-spy")))
        if profiling:
            (work / "profile").mkdir()
            raw = work / "profile" / "worker.raw"
            run_worker(stack, work / "profile", target, profile=raw)
            time.sleep(2.0)  # py-spy writes its file when the worker exits
            out["profile"] = summarize_profile(raw) if raw.exists() else []
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / f"{args.out}-profile.txt").write_text(
                "backlog (throughput run):\n"
                + "\n".join(f"{share:5.1f}%  {area}" for area, share in out["profile"])
                + "\n\nlive stream at the latency rate:\n"
                + "\n".join(
                    f"{share:5.1f}%  {area}" for area, share in out.get("latency_profile", [])
                )
                + "\n"
            )
    if args.latency_seconds:
        # On fresh stacks, like the yardstick: what the throughput runs left in the broker
        # (their changelogs, partials and the preload) must not weigh on the live stream.
        out["latency"] = run_latency_fresh(args, work / "latency")
        if profiling:  # the same run once more, sampled: where a live stream's time goes
            raw = work / "latency-profile" / "worker.raw"
            run_latency_fresh(args, work / "latency-profile", raw)
            time.sleep(2.0)
            out["latency_profile"] = summarize_profile(raw) if raw.exists() else []
        print(f"latency: {json.dumps(out['latency'].get('all_contributions'))}", flush=True)
        out["baseline_one_hop"] = run_hop_baseline(
            args.partitions, args.rate, args.latency_seconds, work / "hop-baseline"
        )
        print(f"one hop: {json.dumps(out['baseline_one_hop'])}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(render(out))
    print(render(out))
    return 0


def render(out: dict[str, Any]) -> str:
    lines = [
        "# The full eight-topic mix: our worker (b) against the floor (c)",
        "",
        f"`python -m bench.mix --events {out['events']} --pairs {len(out['pairs'])}`: "
        f"{out['events']:,} preloaded messages ({out['target']['join_events']:,} join events), "
        f"{out['partitions']} partitions, one machine, alternating runs.",
        "",
        "| pair | (b) ev/s | (b) peak RSS MB | (c) ev/s | (c) peak RSS MB | (b)/(c) |",
        "|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(out["pairs"], 1):
        b, c = p["product"], p["floor"]
        lines.append(f"| {i} | {b['events_per_s']:,} | {b['peak_rss_mb']} | "
                     f"{c['events_per_s']:,} | {c['peak_rss_mb']} | {p['ratio']} |")  # fmt: skip
    lines += ["", f"Median ratio (b)/(c): **{out['ratio_median']}** (target >= 0.35).", ""]
    latency = out.get("latency") or {}
    if latency.get("all_contributions"):
        lines += ["Table latency at the mix's rate (production -> merge into the table), after a"
                  " 10 s warm-up:", "", "| table | contributions | p50 ms | p99 ms |",
                  "|---|---|---|---|"]  # fmt: skip
        for table, stats in sorted(latency.items()):
            if isinstance(stats, dict) and stats.get("count"):
                p50, p99 = stats["p50_ms"], stats["p99_ms"]
                lines.append(f"| {table} | {stats['count']:,} | {p50:.0f} | {p99:.0f} |")
        lines.append("")
        hop = out.get("baseline_one_hop") or {}
        series = latency["all_contributions"].get("by_10s") or []
        if hop.get("count"):
            lines += [
                f"The yardstick: a plain aiokafka consumer of the eight source topics alone on a "
                f"fresh stack, the same simulator and rate, one broker hop (production -> "
                f"consumed): p50 {hop['p50_ms']:.0f} ms, p99 {hop['p99_ms']:.0f} ms over "
                f"{hop['count']:,} messages.", "",
            ]  # fmt: skip
        if series:
            hops = {b["from_s"]: b for b in hop.get("by_10s", [])}
            lines += ["Through the run (by production time after the warm-up; the embedded "
                      "broker slows as its partitions fill with small batches):", "",
                      "| from s | worker p50 ms | worker p99 ms | one hop p50 ms"
                      " | one hop p99 ms |", "|---|---|---|---|---|"]  # fmt: skip
            for b in series:
                h = hops.get(b["from_s"], {})
                h50, h99 = (f"{h[k]:.0f}" if k in h else "" for k in ("p50_ms", "p99_ms"))
                lines.append(
                    f"| {b['from_s']} | {b['p50_ms']:.0f} | {b['p99_ms']:.0f} | {h50} | {h99} |"
                )
            lines.append("")
    for name, title in (("profile", "on the backlog"), ("latency_profile", "on the live stream")):
        if out.get(name):
            lines += [f"Where (b)'s time goes {title} (py-spy, share of samples by innermost"
                      " area):", ""]  # fmt: skip
            lines += [f"- {area}: {share}%" for area, share in out[name]]
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
