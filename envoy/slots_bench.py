#!/usr/bin/env python3
"""Startup time and memory of rate-limit slots (`make bench-slots`).

Every slot is a proxy-wasm shared-data key that each worker VM creates (or finds) when the
configuration loads. This starts envoy/keygate.yaml's config with rate limits totalling N slots
(N = 0, 100k, 262,144, 524,288: the bound) at --concurrency 2, and reports the time to /ready
and the Envoy process's resident memory once ready, as medians over rounds, then per 100k slots
over the N = 0 run of the same round.

Usage: envoy/slots_bench.py [--rounds 3] [--concurrency 2]
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "envoy"))
import conftest  # noqa: E402  (the suite's Envoy harness: free ports, example config)

SIZES = [0, 100_000, 1 << 18, 1 << 19]
PER_RULE = 1 << 18


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def config(total):
    cfg = conftest.example_plugin_config()
    rules = []
    while total > 0:
        n = min(total, PER_RULE)
        rules.append({"prefix": f"/r{len(rules)}/", "key": "ip", "limit": "5/minute", "slots": n})
        total -= n
    cfg["rate_limits"] = rules
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    conftest._current["path"] = conftest.ENVOYS["1.40"]
    results = {n: {"ready": [], "rss": []} for n in SIZES}
    for _ in range(args.rounds):
        for n in SIZES:
            e = conftest.Envoy(json.dumps(config(n)), conftest.free_port(),
                               concurrency=args.concurrency)
            try:
                time.sleep(0.5)
                results[n]["ready"].append(e.ready_secs)
                results[n]["rss"].append(rss_kib(e.proc.pid))
            finally:
                e.stop()
    base_ready = statistics.median(results[0]["ready"])
    base_rss = statistics.median(results[0]["rss"])
    print(f"Envoy 1.40, --concurrency {args.concurrency}, {args.rounds} rounds, medians")
    print("| slots | ready s | RSS MiB | ready s per 100k | RSS MiB per 100k |")
    print("|---:|---:|---:|---:|---:|")
    for n in SIZES:
        ready = statistics.median(results[n]["ready"])
        rss = statistics.median(results[n]["rss"])
        per = (f"{(ready - base_ready) / n * 1e5:.2f} | {(rss - base_rss) / 1024 / n * 1e5:.1f}"
               if n else "— | —")
        print(f"| {n} | {ready:.2f} | {rss / 1024:.0f} | {per} |")


if __name__ == "__main__":
    main()
