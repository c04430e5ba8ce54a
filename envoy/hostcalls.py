#!/usr/bin/env python3
"""Where keygate's CPU on a cache hit goes, host side: µs per proxy-wasm host call of each kind
keygate makes, and keygate's features one by one (`make bench-hostcalls`).

One interleaved run (every row once per round, rounds repeated, medians), each row an Envoy of
envoy/bench.py's shape (one worker, direct_response upstream, wrk -c32 with one HS256 token):
  none     — no filter;
  noop     — the floor: envoy/noop, the same SDK, continues every request (7 VM entries);
  probe    — envoy/noop making one host call `--repeat` times per request (its plugin
             configuration, see envoy/noop's docs); the call's cost is (probe − noop) / repeat,
             per round against the same round's noop, median and range over rounds; and one
             row making keygate's own calls per allowed request once each (`keygate − it` is
             what keygate's code adds beyond its host calls);
  keygate  — dist/keygate_envoy.wasm with bench.py's configuration (role rule, `ip` limit, two
             claim headers), and without the limit, without the claim headers, without both.
Then the host calls keygate makes per allowed request (the counting host of
tests/envoy/test_host_calls.py) priced with the per-call figures, against what each feature adds.

Usage: envoy/hostcalls.py [--secs 5] [--rounds 7] [--repeat 50] [--baseline <wasm>]
"""
import argparse
import os
import statistics
import sys

import bench

# (row, probe configuration per repetition): each a call keygate makes (a name of envoy/noop).
PROBES = [
    ("get_current_time", ["get_current_time"]),
    ("increment_metric", ["increment_metric"]),
    ("get_property", ["get_property"]),
    ("get_header_map_pairs", ["get_header_map_pairs"]),
    ("get_shared_data", ["get_shared_data"]),
    ("get_shared_data_absent", ["get_shared_data_absent"]),
    ("get+set_shared_data", ["get_shared_data", "set_shared_data"]),
    ("replace_header_map_value", ["replace_header_map_value"]),
    ("add_header_map_value", ["add_header_map_value"]),
]
# keygate's feature variants: the plugin fields left out.
KEYGATE = [
    ("keygate", ()),
    ("keygate -rate_limits", ("rate_limits",)),
    ("keygate -claims_to_headers", ("claims_to_headers",)),
    ("keygate -both", ("rate_limits", "claims_to_headers")),
]
# Host calls per allowed request (tests/envoy/test_host_calls.py, test_allowed_request_host_calls),
# by the feature that makes them: (per-call row, count).
CALLS = {
    "always": [("get_header_map_pairs", 1), ("get_current_time", 1), ("increment_metric", 1)],
    "rate_limits": [("get_property", 1), ("get_shared_data", 1), ("set_shared_data", 1),
                    ("add_header_map_value", 2)],
    "claims_to_headers": [("replace_header_map_value", 2)],
}


def spread(xs):
    return f"{statistics.median(xs):6.2f} ({min(xs):.2f}–{max(xs):.2f})"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--secs", type=int, default=5)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeat", type=int, default=50, help="calls of one kind per request")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--baseline", help="another keygate_envoy.wasm, one more keygate row")
    args = p.parse_args()
    args.threads, args.concurrency = 1, 1
    for path in (bench.WASM, bench.NOOP_WASM):
        if not path.exists():
            sys.exit(f"{path} missing: run `make build-envoy build-noop`")
    rows = [("none", "none", None), ("noop", "noop", None)]
    for name, calls in PROBES:
        conf = ",".join(f"{c}*{args.repeat}" for c in calls)
        rows.append((name, "noop", lambda a, conf=conf: bench.noop_filters(a, conf)))
    # The probe making keygate's own host calls once each (not repeated): what those calls cost
    # in place, so keygate − this row is what keygate's code adds beyond its calls.
    shaped = ",".join(f"{c}*{k}" for calls in CALLS.values() for c, k in calls)
    rows.append(("keygate's calls, once", "noop", lambda a: bench.noop_filters(a, shaped)))
    for name, without in KEYGATE:
        rows.append((name, "keygate", lambda a, w=without: bench.keygate_filters(a, without=w)))
    if args.baseline:
        rows.append(("baseline", "keygate",
                     lambda a: bench.keygate_filters(a, wasm=args.baseline)))
    cpu = {name: [] for name, _, _ in rows}
    load0 = os.getloadavg()
    for rnd in range(args.rounds):
        for name, variant, filters in rows:
            m = bench.run(variant, "HS256", "same", args, {},
                          filters("HS256") if filters else None)
            cpu[name].append(m["cpu_us"])
            print(f"round {rnd + 1} {name:28s} {m['rps']:8.0f} req/s  cpu {m['cpu_us']:7.1f} "
                  "µs/req", flush=True)
    load1 = os.getloadavg()
    n = args.rounds
    per_round = {name: [(cpu[name][r] - cpu["noop"][r]) / args.repeat for r in range(n)]
                 for name, _ in PROBES}
    per_round["set_shared_data"] = [per_round["get+set_shared_data"][r] -
                                    per_round["get_shared_data"][r] for r in range(n)]
    per_round["VM entry (proxy_on_memory_allocate)"] = [
        per_round["get_shared_data"][r] - per_round["get_shared_data_absent"][r] for r in range(n)]
    call = {k: statistics.median(v) for k, v in per_round.items()}
    print()
    print(f"envoy/hostcalls.py --secs {args.secs} --rounds {n} --repeat {args.repeat}: wrk "
          f"-t1 -c{args.connections}, Envoy --concurrency 1, HS256 `same` token; load average "
          f"{load0[0]:.2f} before, {load1[0]:.2f} after")
    print()
    print("| host call | µs per call, median (range over rounds) |")
    print("|---|---:|")
    for k, v in per_round.items():
        if k != "get+set_shared_data":
            print(f"| {k} | {spread(v)} |")
    none = statistics.median(cpu["none"])
    noop = statistics.median(cpu["noop"])
    print()
    print("| row | CPU µs/req | added over none | added over noop, median (range) |")
    print("|---|---:|---:|---:|")
    for name in ["none", "noop", "keygate's calls, once"] + [k for k, _ in KEYGATE] + (["baseline"] if args.baseline else []):
        over = [cpu[name][r] - cpu["noop"][r] for r in range(n)]
        print(f"| {name} | {statistics.median(cpu[name]):.1f} | "
              f"{statistics.median(cpu[name]) - none:.1f} | {spread(over)} |")
    # What the host calls of each feature cost, priced per call, against what the feature adds.
    price = {f: sum(call[c] * k for c, k in calls) for f, calls in CALLS.items()}
    full = [cpu["keygate"][r] - cpu["noop"][r] for r in range(n)]

    def delta(a, b):
        return statistics.median(cpu[a][r] - cpu[b][r] for r in range(n))

    print()
    print("| part (keygate, HS256 `same`) | measured µs/req | its host calls µs/req | rest (in-VM, allocation, Envoy's side) |")
    print("|---|---:|---:|---:|")
    print(f"| above the noop floor | {statistics.median(full):.1f} | "
          f"{sum(price.values()):.1f} | {statistics.median(full) - sum(price.values()):.1f} |")
    for feat, bare in (("rate_limits", "keygate -rate_limits"),
                       ("claims_to_headers", "keygate -claims_to_headers")):
        d = delta("keygate", bare)
        print(f"| `{feat}` (keygate − keygate -{feat}) | {d:.1f} | {price[feat]:.1f} | "
              f"{d - price[feat]:.1f} |")
    d = delta("keygate's calls, once", "noop")
    print(f"| keygate's host calls made once each by the probe (− noop) | {d:.1f} | "
          f"{sum(price.values()):.1f} | {d - sum(price.values()):.1f} |")
    d = delta("keygate", "keygate's calls, once")
    print(f"| keygate − the probe making its calls: keygate's own code and VM | {d:.1f} | 0.0 | "
          f"{d:.1f} |")
    d = statistics.median(cpu["keygate -both"][r] - cpu["noop"][r] for r in range(n))
    print(f"| the rest (keygate -both − noop) | {d:.1f} | {price['always']:.1f} | "
          f"{d - price['always']:.1f} |")


if __name__ == "__main__":
    main()
