#!/usr/bin/env python3
"""`make bench-global`: one route, the same limit, counted locally vs globally, side by side.

Three Envoy configurations, each forwarding to a second listener of the same Envoy that
answers directly (so only the limit differs):
  (a) local  — `rate_limits: [{"key": "ip", "limit": "1000000/second"}]` in shared data;
  (b) global — the same rule with `scope: "global"`, asked of keygate-ratelimit on a real
               redis-server over a gRPC callout (one call per request: a read and a
               compare-and-set script in Redis);
  (c) native — the peer: (a) plus Envoy's own `envoy.filters.http.ratelimit` (a
               `remote_address` descriptor) asking the same service, so (c) − (a) is what a
               native filter's call costs and (b) − (a) what keygate's costs.
Every request carries a valid HS256 token (the route needs `authenticated`), and the limit is
never reached: what is measured is the cost of asking. Load: wrk, rounds interleaved.
Reported (medians over rounds): req/s, p50/p99, Envoy CPU per request, keygate-ratelimit CPU
per request (global), and the added p50/p99 and Envoy CPU of global over local.

Usage: envoy/ratelimit/global_bench.py [--secs 8] [--rounds 3] [--connections 16]
"""
import argparse
import base64
import glob
import hashlib
import hmac
import http.client
import json
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
WASM = ROOT / "dist" / "keygate_envoy.wasm"
SERVICE = ROOT / "target" / "service" / "keygate-ratelimit"
SECRET = b"bench-secret-bench-secret-bench-secret-0123456789"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token():
    now = int(time.time())
    si = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()) + "." + b64(
        json.dumps({"sub": "bench", "type": "access", "iat": now, "exp": now + 3600}).encode())
    return si + "." + b64(hmac.new(SECRET, si.encode(), hashlib.sha256).digest())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"{what} not listening on {port}")


def cpu_secs(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def plugin(scope):
    return {
        "jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(SECRET)}]},
        "rules": [{"prefix": "/", "allow": "authenticated"}],
        "rate_limit_service": {"cluster": "keygate_ratelimit", "domain": "bench",
                               "timeout_ms": 100, "failure_mode": "deny"},
        "rate_limits": [{"name": "api", "prefix": "/", "key": "ip",
                         "limit": "1000000/second", "scope": scope}],
    }


def native_ratelimit():
    return {"name": "envoy.filters.http.ratelimit", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
        "domain": "bench", "failure_mode_deny": True, "timeout": "0.1s",
        "rate_limit_service": {"transport_api_version": "V3", "grpc_service": {
            "envoy_grpc": {"cluster_name": "keygate_ratelimit"}}}}}


def config(variant, port, admin_port, rls_port):
    scope = "global" if variant == "global" else "local"
    wasm = {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "keygate", "root_id": "keygate", "failure_policy": "FAIL_CLOSED",
                   "vm_config": {"vm_id": "keygate", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": str(WASM)}}},
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": json.dumps(plugin(scope))}}}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench", "use_remote_address": True,
        # Through a cluster (a second listener of this Envoy answering directly): Envoy's own
        # ratelimit filter only acts on routes with a cluster.
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
            "match": {"prefix": "/"},
            "route": {"cluster": "backend",
                      "rate_limits": [{"actions": [{"remote_address": {}}]}]}}]}]},
        "http_filters": [wasm] + ([native_ratelimit()] if variant == "native" else []) + [
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    rls = {"name": "keygate_ratelimit", "type": "STATIC", "connect_timeout": "0.25s",
           "typed_extension_protocol_options": {
               "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                   "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                   "explicit_http_config": {"http2_protocol_options": {}}}},
           "load_assignment": {"cluster_name": "keygate_ratelimit", "endpoints": [{
               "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                   "address": "127.0.0.1", "port_value": rls_port}}}}]}]}}
    backend_port = free_port()
    backend_hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "backend",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
            "match": {"prefix": "/"},
            "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    backend = {"name": "backend", "type": "STATIC", "connect_timeout": "0.25s",
               "load_assignment": {"cluster_name": "backend", "endpoints": [{
                   "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                       "address": "127.0.0.1", "port_value": backend_port}}}}]}]}}

    def listener(name, p, h):
        return {"name": name, "address": {"socket_address": {"address": "127.0.0.1",
                                                            "port_value": p}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": h}]}]}

    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                     "port_value": admin_port}}},
            "static_resources": {
                "listeners": [listener("main", port, hcm),
                              listener("backend", backend_port, backend_hcm)],
                "clusters": [rls, backend]}}


def parse_latency(text, pct):
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")


def stat(admin_port, name):
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    c.request("GET", "/stats?filter=" + name)
    for line in c.getresponse().read().decode().splitlines():
        key, _, value = line.partition(": ")
        if key.strip() in (name, "wasmcustom." + name):
            return int(value)
    return 0


def run(scope, rls, args, tok, connections):
    port, admin = free_port(), free_port()
    d = tempfile.mkdtemp(prefix=f"keygate-bench-global-{scope}-")
    path = os.path.join(d, "envoy.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config(scope, port, admin, rls["port"]), f)
    binary = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
    if not binary:
        sys.exit("Envoy is not installed: run `make setup`")
    proc = subprocess.Popen([binary[0], "-c", path, "--concurrency", str(args.concurrency),
                             "--base-id", str(700 + os.getpid() % 1000 * 3),
                             "--disable-hot-restart", "-l", "warning"],
                            stdout=open(os.path.join(d, "envoy.log"), "wb"),
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "Envoy")
        url = f"http://127.0.0.1:{port}/api/records"
        for _ in range(50):
            probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                                    f"authorization: Bearer {tok}", url],
                                   capture_output=True, text=True)
            if probe.stdout == "200":
                break
            time.sleep(0.1)
        else:
            sys.exit(f"{scope}: probe answered {probe.stdout}; see {d}/envoy.log")
        cpu0, rcpu0 = cpu_secs(proc.pid), cpu_secs(rls["pid"])
        out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d",
                              f"{args.secs}s", "--latency", "-H",
                              f"authorization: Bearer {tok}", url],
                             capture_output=True, text=True, check=True).stdout
        cpu, rcpu = cpu_secs(proc.pid) - cpu0, cpu_secs(rls["pid"]) - rcpu0
        total = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        failed = stat(admin, "keygate.rate_limit_service_failed")
        if os.environ.get("BENCH_DEBUG"):
            print(scope, "cx", stat(admin, "cluster.keygate_ratelimit.upstream_cx_total"),
                  "rq", stat(admin, "cluster.keygate_ratelimit.upstream_rq_total"), "total", total)
        return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                "p50": parse_latency(out, 50), "p99": parse_latency(out, 99),
                "cpu_us": cpu / total * 1e6,
                "svc_us": rcpu / total * 1e6 if scope != "local" else 0.0,
                "non2xx": int(non2xx.group(1)) if non2xx else 0, "failed": failed}
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--secs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", default="1,16", help="wrk connections, a list: one table each")
    p.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads")
    args = p.parse_args()
    for f, what in ((WASM, "make build-envoy"), (SERVICE, "make build-ratelimit")):
        if not f.exists():
            sys.exit(f"{f} missing: run `{what}`")
    redis_port, rls_port = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="keygate-bench-global-")
    redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", d],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    service = None
    try:
        wait_port(redis_port, redis, "redis-server")
        limits = os.path.join(d, "limits.json")
        with open(limits, "w") as f:  # for (c): the native filter sends no limit override
            json.dump({"domain": "bench", "descriptors": [
                {"key": "remote_address", "limit": "1000000/second"}]}, f)
        service = subprocess.Popen([str(SERVICE), "--listen", f"127.0.0.1:{rls_port}",
                                    "--redis", f"redis://127.0.0.1:{redis_port}",
                                    "--limits", limits],
                                   stdout=open(os.path.join(d, "service.log"), "wb"),
                                   stderr=subprocess.STDOUT)
        wait_port(rls_port, service, "keygate-ratelimit")
        rls = {"port": rls_port, "pid": service.pid}
        tok = token()
        tables = []
        for connections in [int(c) for c in str(args.connections).split(",")]:
            results = {"local": [], "global": [], "native": []}
            for r in range(args.rounds):
                for v in results:
                    res = run(v, rls, args, tok, connections)
                    results[v].append(res)
                    print(f"-c{connections} round {r + 1} {v:6s} {res['rps']:8.0f} req/s  "
                          f"p50 {res['p50']:.3f} ms  p99 {res['p99']:.3f} ms  "
                          f"Envoy {res['cpu_us']:.1f} µs/req  service {res['svc_us']:.1f} µs/req  "
                          f"non-2xx {res['non2xx']}  service failures {res['failed']}", flush=True)
            tables.append((connections, results))
    finally:
        for proc in (service, redis):
            if proc and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    for connections, results in tables:
        med = {s: {k: statistics.median(x[k] for x in v) for k in v[0]}
               for s, v in results.items()}
        lo, gl, na = med["local"], med["global"], med["native"]
        print()
        print(f"wrk -t1 -c{connections} -d{args.secs}s, Envoy --concurrency {args.concurrency}, "
              f"{args.rounds} rounds interleaved, medians; one keygate-ratelimit on one "
              f"redis-server")
        print("| variant | req/s | p50 ms | p99 ms | Envoy CPU µs/req | service CPU µs/req |")
        print("|---|---:|---:|---:|---:|---:|")
        for s, m in med.items():
            print(f"| {s} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | "
                  f"{m['cpu_us']:.1f} | {m['svc_us']:.1f} |")
        print()
        for name, m in (("global (keygate)", gl), ("native filter", na)):
            print(f"{name} − local: p50 +{m['p50'] - lo['p50']:.3f} ms, "
                  f"p99 +{m['p99'] - lo['p99']:.3f} ms, "
                  f"Envoy CPU +{m['cpu_us'] - lo['cpu_us']:.1f} µs/req")
        add_g, add_n = gl["cpu_us"] - lo["cpu_us"], na["cpu_us"] - lo["cpu_us"]
        add_p99 = gl["p99"] - lo["p99"]
        print(f"keygate/native added Envoy CPU {add_g / add_n if add_n > 0 else float('nan'):.2f}×; "
              f"global adds {add_p99:.3f} ms p99 (goal ≤ 1 ms: "
              f"{'met' if add_p99 <= 1.0 else 'missed'})")


if __name__ == "__main__":
    main()
