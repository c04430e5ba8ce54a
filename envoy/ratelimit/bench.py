#!/usr/bin/env python3
"""`make bench-ratelimit`: keygate-ratelimit's decisions per second per core against a real
redis-server, next to redis-benchmark's raw GET/SET rate on the same Redis, in one run.

The service is pinned to CPU 0 (taskset); Redis, redis-benchmark and the load client
(`envoy/ratelimit/examples/load.rs`, tonic, every call admitted: the read + compare-and-set
path) share CPU 1. "Per core" = decisions / CPU seconds the service process used (utime +
stime from /proc), so it does not depend on how busy the machine is otherwise."""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
# KEYGATE_RATELIMIT_BIN: another build of the service (e.g. for a before/after in one sitting).
SERVICE = pathlib.Path(os.environ.get("KEYGATE_RATELIMIT_BIN",
                                      ROOT / "target/service/keygate-ratelimit"))
LOAD = ROOT / "target/service/examples/load"
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listening on {port}")


def pin(cpu):
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() > 1 else []


def cpu_secs(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def redis_benchmark(port):
    out = subprocess.run(pin(1) + ["redis-benchmark", "-p", str(port), "-t", "get,set",
                                   "-n", "200000", "-c", "50", "-q", "--csv"],
                         capture_output=True, text=True, check=True).stdout
    rates = {}
    for line in out.splitlines()[1:]:
        cols = [c.strip('"') for c in line.split(",")]
        rates[cols[0]] = float(cols[1])
    return rates


def run_service(args):
    port = free_port()
    proc = subprocess.Popen(pin(0) + [str(SERVICE), "--listen", f"127.0.0.1:{port}", *args],
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    try:
        subprocess.run(pin(1) + [str(LOAD), "--target", f"127.0.0.1:{port}", "--seconds", "1",
                                 "--concurrency", str(CONCURRENCY)],
                       capture_output=True, check=True)  # warm-up
        before = cpu_secs(proc.pid)
        out = subprocess.run(pin(1) + [str(LOAD), "--target", f"127.0.0.1:{port}",
                                       "--seconds", str(SECONDS),
                                       "--concurrency", str(CONCURRENCY)],
                             capture_output=True, text=True, check=True).stdout
        used = cpu_secs(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait()
    r = json.loads(out)
    decisions = r["ok"] + r["over"]
    return {"decisions_per_sec": decisions / r["secs"],
            "decisions_per_core_sec": decisions / used if used else float("nan"),
            "service_cpu": used / r["secs"], "errors": r["errors"]}


def main():
    for exe in (SERVICE, LOAD):
        if not exe.exists():
            sys.exit(f"{exe} is missing: run `make bench-ratelimit`")
    port = free_port()
    d = tempfile.mkdtemp(prefix="keygate-bench-redis-")
    redis = subprocess.Popen(pin(1) + ["redis-server", "--port", str(port), "--bind",
                                       "127.0.0.1", "--save", "", "--appendonly", "no",
                                       "--dir", d], stdout=subprocess.DEVNULL)
    wait_port(port)
    try:
        raw = redis_benchmark(port)
        on_redis = run_service(["--redis", f"redis://127.0.0.1:{port}"])
        memory = run_service(["--memory"])
    finally:
        redis.terminate()
        redis.wait()
    print(f"keygate-ratelimit, {SECONDS} s, {CONCURRENCY} concurrent callers, every call "
          f"admitted (read + compare-and-set)")
    print(f"  redis-benchmark raw (same Redis, 50 clients): SET {raw.get('SET', 0):,.0f}/s, "
          f"GET {raw.get('GET', 0):,.0f}/s")
    for name, r in (("--redis", on_redis), ("--memory", memory)):
        print(f"  {name:9} {r['decisions_per_sec']:>9,.0f} decisions/s, "
              f"{r['decisions_per_core_sec']:>9,.0f} per service core-second "
              f"(service at {r['service_cpu']:.2f} cores), errors {r['errors']}")
    print(f"  --redis decisions/s ÷ raw GET/s = "
          f"{on_redis['decisions_per_sec'] / raw.get('GET', 1):.2f} "
          f"(a decision is 2 Redis round trips: read script + CAS script)")
    print(json.dumps({"redis_benchmark": raw, "redis": on_redis, "memory": memory}))


if __name__ == "__main__":
    main()
