#!/usr/bin/env python3
"""Where Envoy's ready time goes with a wasm filter (issue 10): builds side by side, one run.

For each module given (and `none`, Envoy without the filter), rounds interleaved, Envoy 1.40
from .venv with the bench's keygate configuration (HS256 key inline, a role rule, an `ip` rate
limit, two claim headers: envoy/bench.py's (c)), one worker. From Envoy's own log
(`--component-log-level wasm:debug`, microsecond timestamps) each start is split into:
  boot     process start → "loading 1 listener(s)" (Envoy itself; the same for every row)
  compile  "Base Wasm created" → the first "Thread-Local Wasm created" (V8 compiling the
           module; nothing of the module's code runs before it)
  vms      → the last "Thread-Local Wasm created" (the main thread's config check and the
           worker's VM: clone, _initialize, on_vm_start, on_configure: config parse, key set,
           rate-limit slots)
  rest     → the admin /ready answering 200
Medians per row; `ready` is start → /ready, as in envoy/bench.py; `CPU` is Envoy's user+system
time (all threads) at that moment.

Usage: envoy/ready.py [--rounds 7] [--concurrency 1] [NAME=]MODULE.wasm ...
"""
import argparse
import datetime
import glob
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402  (the same Envoy configuration as the bench)

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})\]\[(\w+)\] (.*)$")


def start(wasm, concurrency, base_id):
    port, admin = bench.free_port(), bench.free_port()
    doc = bench.config("none" if wasm is None else "keygate", "HS256", port, admin)
    if wasm is not None:
        hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        vm = hcm["typed_config"]["http_filters"][0]["typed_config"]["config"]["vm_config"]
        vm["code"]["local"]["filename"] = str(wasm)
    d = tempfile.mkdtemp(prefix="keygate-ready-")
    with open(os.path.join(d, "envoy.yaml"), "w") as f:
        yaml.safe_dump(doc, f)
    binary = glob.glob(str(bench.ROOT / ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
    if not binary:
        sys.exit("Envoy is not installed: run `make setup`")
    log_path = os.path.join(d, "envoy.log")
    log = open(log_path, "wb")
    wall0, t0 = time.time(), time.monotonic()
    proc = subprocess.Popen(
        [binary[0], "-c", os.path.join(d, "envoy.yaml"), "--concurrency", str(concurrency),
         "--base-id", str(base_id), "--disable-hot-restart", "-l", "warning",
         "--component-log-level", "wasm:debug,config:info",
         "--log-format", "[%Y-%m-%d %T.%f][%n] %v"],
        stdout=log, stderr=subprocess.STDOUT)
    ready = bench.wait_ready(proc, admin, t0, "Envoy", log_path, poll=0.002)
    # Envoy's CPU time up to ready (all threads: V8 compiles on background threads): less
    # sensitive to other load on a shared machine than the wall-clock figures.
    fields = pathlib.Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / bench.CLK_TCK
    proc.terminate()
    proc.wait(10)
    log.close()
    marks = {}
    for line in open(log_path, encoding="utf-8", errors="replace"):
        m = STAMP.match(line)
        if not m:
            continue
        ts = datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp() - wall0
        text = m[3]
        if text.startswith("loading") and "listener" in text:
            marks.setdefault("listeners", ts)
        elif text.startswith("Base Wasm created"):
            marks.setdefault("base", ts)
        elif text.startswith("Thread-Local Wasm created"):
            marks.setdefault("first_clone", ts)
            marks["last_clone"] = ts
    row = {"ready": ready, "cpu": cpu, "boot": marks.get("listeners", float("nan"))}
    if "base" in marks and "first_clone" in marks:
        row["compile"] = marks["first_clone"] - marks["base"]
        row["vms"] = marks["last_clone"] - marks["first_clone"]
        row["rest"] = ready - marks["last_clone"]
    return row


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("modules", nargs="+", help="[NAME=]path/to/module.wasm")
    args = p.parse_args()
    rows = [("none", None)]
    for spec in args.modules:
        name, _, path = spec.rpartition("=")
        rows.append((name or pathlib.Path(path).stem, pathlib.Path(path).resolve()))
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    results = {name: [] for name, _ in rows}
    base_id = 3000 + os.getpid() % 1000 * 3
    for r in range(args.rounds):
        for name, path in rows:
            base_id += 1
            results[name].append(start(path, args.concurrency, base_id))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\nmedians of {args.rounds} interleaved rounds, --concurrency {args.concurrency}\n")
    print("| module | bytes | ready s | CPU s | boot s | compile s | VMs + configure s | rest s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, path in rows:
        rs = results[name]
        med = {k: statistics.median(x[k] for x in rs) if all(k in x for x in rs) else None
               for k in ("ready", "cpu", "boot", "compile", "vms", "rest")}
        size = path.stat().st_size if path else 0
        cells = " | ".join("-" if v is None else f"{v:.3f}" for v in med.values())
        print(f"| {name} | {size:,} | {cells} |")
    print(json.dumps({n: [round(x["ready"], 3) for x in rs] for n, rs in results.items()}))


if __name__ == "__main__":
    main()
