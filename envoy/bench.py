#!/usr/bin/env python3
"""keygate vs Envoy's native chain, same machine, same run (`make bench-envoy`).

Three Envoy configurations, each answering with a direct_response (so only the filters differ):
  (a) none    — no auth filter;
  (b) native  — jwt_authn (HS256, local JWKS, payload in metadata) + rbac on the `roles` claim
                 + local_ratelimit per remote address;
  (c) keygate — dist/keygate_envoy.wasm doing the same job (role rule + ip rate limit), with the
                 key inline in its configuration ("inline keys");
  (d) fetched — the same, with the key set fetched by `remote_jwks` from a JWKS that a second
                 listener of the same Envoy serves ("fetched keys").
Load: wrk, one connection pool per run, several rounds interleaved. Reported per variant (median
over rounds): req/s, p50/p99 latency, Envoy CPU time per request (utime+stime from /proc), ready
time; then keygate/native ratios and the CPU each adds over (a).

Usage: envoy/bench.py [--secs 10] [--rounds 3] [--connections 32]
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

ROOT = pathlib.Path(__file__).resolve().parents[1]
WASM = ROOT / "dist" / "keygate_envoy.wasm"
SECRET = b"bench-secret-bench-secret-bench-secret-0123456789"
K = base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()
ISS, AUD = "https://auth.example.com", "api"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()


def hs256_token():
    now = int(time.time())
    si = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k1'})}." + b64(
        {"sub": "bench-user", "type": "access", "roles": ["doctor"], "iat": now,
         "exp": now + 3600, "iss": ISS, "aud": AUD})
    sig = hmac.new(SECRET, si.encode(), hashlib.sha256).digest()
    return f"{si}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def router():
    return {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def native_filters():
    jwks = json.dumps({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": K}]})
    return [
        {"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"keygate": {
                "issuer": ISS, "audiences": [AUD], "forward": True,
                "local_jwks": {"inline_string": jwks},
                "payload_in_metadata": "jwt_payload"}},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "keygate"}}]}},
        {"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "ALLOW", "policies": {"doctors": {
                "permissions": [{"any": True}],
                "principals": [{"metadata": {
                    "filter": "envoy.filters.http.jwt_authn",
                    "path": [{"key": "jwt_payload"}, {"key": "roles"}],
                    "value": {"list_match": {"one_of": {"string_match": {"exact": "doctor"}}}}}}]}}}}},
        {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "rl",
            "token_bucket": {"max_tokens": 1000000000, "tokens_per_fill": 1000000000,
                             "fill_interval": "1s"},
            "filter_enabled": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "filter_enforced": {"default_value": {"numerator": 100, "denominator": "HUNDRED"}},
            "descriptors": [{"entries": [{"key": "remote_address"}],
                             "token_bucket": {"max_tokens": 1000000, "tokens_per_fill": 1000000,
                                              "fill_interval": "1s"}}],
            "max_dynamic_descriptors": 10000}},
    ]


JWKS = {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": K}]}


def keygate_filters(fetched=False):
    # The bench key is HS256 (the native chain gets the same): a fetched set may only carry it
    # with the explicit opt-in.
    keys = ({"remote_jwks": {"cluster": "jwks", "uri": "http://jwks.local/.well-known/jwks.json",
                             "insecure_allow_symmetric": True}}
            if fetched else {"jwks": JWKS})
    plugin = {
        "issuer": ISS, "audiences": [AUD], **keys,
        "rules": [{"prefix": "/", "roles": ["doctor"]}],
        "rate_limits": [{"prefix": "/", "key": "ip", "limit": "1000000/second"}],
        "claims_to_headers": {"sub": "x-user-id", "roles": "x-user-roles"},
    }
    return [{"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "keygate", "root_id": "keygate", "failure_policy": "FAIL_RELOAD",
            "vm_config": {"vm_id": "keygate", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": str(WASM)}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": json.dumps(plugin)}}}}]


def jwks_listener(port):
    """A listener of the same Envoy answering the JWKS (fetched once per VM per 10 min)."""
    route = {"match": {"prefix": "/"}, "direct_response": {
        "status": 200, "body": {"inline_string": json.dumps(JWKS)}}}
    return {"name": "jwks",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "jwks",
                    "route_config": {"virtual_hosts": [{"name": "jwks", "domains": ["*"],
                                                        "routes": [route]}]},
                    "http_filters": [router()]}}]}]}


def config(variant, port, admin_port):
    filters = {"none": [], "native": native_filters(), "keygate": keygate_filters(),
               "fetched": keygate_filters(fetched=True)}[variant]
    route = {"match": {"prefix": "/"},
             "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}
    vhost = {"name": "all", "domains": ["*"], "routes": [route]}
    if variant == "native":
        vhost["rate_limits"] = [{"actions": [{"remote_address": {}}]}]
    doc = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {"listeners": [{
            "name": "public",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "public", "use_remote_address": True,
                    "route_config": {"virtual_hosts": [vhost]},
                    "http_filters": filters + [router()]}}]}]}]},
    }
    if variant == "fetched":
        jwks_port = free_port()
        doc["static_resources"]["listeners"].append(jwks_listener(jwks_port))
        doc["static_resources"]["clusters"] = [{
            "name": "jwks", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "jwks", "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": jwks_port}}}}]}]}}]
    return doc


class Envoy:
    base_id = 500 + os.getpid() % 1000 * 3

    def __init__(self, variant, concurrency):
        self.port, self.admin_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix=f"keygate-bench-{variant}-")
        path = os.path.join(self.dir, "envoy.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config(variant, self.port, self.admin_port), f)
        binary = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
        if not binary:
            sys.exit("Envoy is not installed: run `make setup`")
        Envoy.base_id += 1
        self.log = open(os.path.join(self.dir, "envoy.log"), "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [binary[0], "-c", path, "--concurrency", str(concurrency), "--base-id",
             str(Envoy.base_id), "--disable-hot-restart", "-l", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"{variant}: Envoy exited; see {self.dir}/envoy.log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=1)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - t0 > 30:
                sys.exit(f"{variant}: Envoy not ready; see {self.dir}/envoy.log")
            time.sleep(0.005)
        self.ready_secs = time.monotonic() - t0

    def cpu_secs(self):
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def parse_latency(text, pct):
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def run(variant, token, args):
    e = Envoy(variant, args.concurrency)
    try:
        url = f"http://127.0.0.1:{e.port}/api/records"
        for _ in range(50):  # the fetched variant answers once its VM has the key set
            probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                                    f"authorization: Bearer {token}", url], capture_output=True,
                                   text=True)
            if probe.stdout == "200":
                break
            time.sleep(0.1)
        if probe.stdout != "200":
            sys.exit(f"{variant}: probe answered {probe.stdout}; see {e.dir}/envoy.log")
        cpu0 = e.cpu_secs()
        out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
                              f"{args.secs}s", "--latency", "-H",
                              f"authorization: Bearer {token}", url],
                             capture_output=True, text=True, check=True).stdout
        cpu = e.cpu_secs() - cpu0
        total = int(re.search(r"(\d+) requests in", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non2xx:
            sys.exit(f"{variant}: {non2xx.group(1)} non-2xx responses under load")
        return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                "p50": parse_latency(out, 50), "p99": parse_latency(out, 99),
                "cpu_us": cpu / total * 1e6, "ready": e.ready_secs}
    finally:
        e.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--secs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads")
    args = p.parse_args()
    if not WASM.exists():
        sys.exit(f"{WASM} missing: run `make build-envoy`")
    token = hs256_token()
    variants = ["none", "native", "keygate", "fetched"]
    label = {"none": "none", "native": "native", "keygate": "keygate (inline keys)",
             "fetched": "keygate (fetched keys)"}
    results = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            res = run(v, token, args)
            results[v].append(res)
            print(f"round {r + 1} {label[v]:22s} {res['rps']:9.0f} req/s  p50 {res['p50']:.3f} ms  "
                  f"p99 {res['p99']:.3f} ms  cpu {res['cpu_us']:.1f} µs/req  "
                  f"ready {res['ready']:.3f} s", flush=True)
    med = {v: {k: statistics.median(x[k] for x in results[v]) for k in results[v][0]}
           for v in variants}
    print()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.secs}s, Envoy --concurrency "
          f"{args.concurrency}, {args.rounds} rounds interleaved, medians; "
          f"keygate_envoy.wasm {WASM.stat().st_size / 1024:.0f} KiB")
    print(f"| variant | req/s | p50 ms | p99 ms | CPU µs/req | added CPU µs/req | ready s |")
    print(f"|---|---:|---:|---:|---:|---:|---:|")
    for v in variants:
        m = med[v]
        added = m["cpu_us"] - med["none"]["cpu_us"]
        print(f"| {label[v]} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {m['cpu_us']:.1f} | "
              f"{added:.1f} | {m['ready']:.3f} |")
    kn, nn = med["keygate"], med["native"]
    add_k = kn["cpu_us"] - med["none"]["cpu_us"]
    add_n = nn["cpu_us"] - med["none"]["cpu_us"]
    print()
    print(f"keygate/native: req/s {kn['rps'] / nn['rps']:.2f}×, p99 {kn['p99'] / nn['p99']:.2f}×, "
          f"added CPU {add_k / add_n if add_n > 0 else float('nan'):.2f}× "
          f"(target ≤ 0.8×), ready {kn['ready']:.3f} s (target ≤ 0.4 s)")
    fn = med["fetched"]
    add_f = fn["cpu_us"] - med["none"]["cpu_us"]
    print(f"fetched/inline keys: req/s {fn['rps'] / kn['rps']:.2f}×, "
          f"p99 {fn['p99'] / kn['p99']:.2f}×, "
          f"added CPU {add_f / add_k if add_k > 0 else float('nan'):.2f}× (target: the same)")


if __name__ == "__main__":
    main()
