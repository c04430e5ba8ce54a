#!/usr/bin/env python3
"""keygate vs Envoy's native chain, same machine, same run (`make bench-envoy`).

Envoy configurations, each answering with a direct_response (so only the filters differ):
  (a) none    — no auth filter;
  (n) noop    — the floor: a proxy-wasm filter built with the same SDK (envoy/noop, `make
                 build-noop`) that only continues every request: what any wasm filter costs in
                 this Envoy (the proxy-wasm ABI's VM entries), before keygate does anything;
  (b) native  — jwt_authn (local JWKS, payload in metadata) + rbac on the `roles` claim
                 + local_ratelimit per remote address;
  (c) keygate — dist/keygate_envoy.wasm doing the same job (role rule + ip rate limit), with the
                 key inline in its configuration ("inline keys");
  (d) fetched — the same, with the key set fetched by `remote_jwks` from a JWKS that a second
                 listener of the same Envoy serves ("fetched keys"; `same` tokens only: what
                 differs from (c) is where the key comes from, not the signature check).
(b) and (c) run for each algorithm (HS256, EdDSA, ES256: the same JWKS given to both), and for
each algorithm twice: `same` (every request carries one token: the common case, served by
keygate's verified-token cache and jwt_authn's jwt_cache_config, both 1,024 tokens) and `fresh` (every request carries a
different valid token, from a pool far larger than either cache: every request is a miss).
Before timing, both chains must refuse the same bad tokens (tampered signature, expired, wrong
audience, missing role, no token) with the same status (a wrong audience: 401 from keygate,
403 from jwt_authn).
Load: wrk, one connection pool per run, several rounds interleaved. Reported per row (median
over rounds): req/s, p50/p99 latency, Envoy CPU time per request (utime+stime from /proc), ready
time; then keygate/native ratios and the CPU each adds over (a).

Usage: envoy/bench.py [--secs 10] [--rounds 3] [--connections 32] [--concurrency 1]
                      [--algs HS256,EdDSA,ES256] [--tokens same,fresh]
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
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = pathlib.Path(__file__).resolve().parents[1]
WASM = ROOT / "dist" / "keygate_envoy.wasm"
NOOP_WASM = ROOT / "target" / "keygate_noop.wasm"  # `make build-noop`
SECRET = b"bench-secret-bench-secret-bench-secret-0123456789"
K = base64.urlsafe_b64encode(SECRET).rstrip(b"=").decode()
ISS, AUD = "https://auth.example.com", "api"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BASELINE = None  # --baseline: another build of the filter, run as one more variant


def b64(d):
    return base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()


def b64b(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


ED_KEY = ed25519.Ed25519PrivateKey.generate()
EC_KEY = ec.generate_private_key(ec.SECP256R1())
FRESH_POOL = 20000  # distinct tokens per `fresh` run: ≫ both caches (1,024 tokens each)


def jwk(alg):
    """The public JWK for `alg`, identical in both chains."""
    if alg == "HS256":
        return {"kty": "oct", "kid": "k1", "alg": "HS256", "k": K}
    if alg == "EdDSA":
        x = ED_KEY.public_key().public_bytes_raw()
        return {"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA", "x": b64b(x)}
    n = EC_KEY.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": b64b(n.x.to_bytes(32, "big")), "y": b64b(n.y.to_bytes(32, "big"))}


def sign(alg, message):
    if alg == "HS256":
        return hmac.new(SECRET, message, hashlib.sha256).digest()
    if alg == "EdDSA":
        return ED_KEY.sign(message)
    r, s = decode_dss_signature(EC_KEY.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def token(alg, sub="bench-user", exp_in=3600, aud=AUD, roles=("doctor",)):
    now = int(time.time())
    si = f"{b64({'alg': alg, 'typ': 'JWT', 'kid': 'k1'})}." + b64(
        {"sub": sub, "type": "access", "roles": list(roles), "iat": now - 60,
         "exp": now + exp_in, "iss": ISS, "aud": aud})
    return f"{si}.{b64b(sign(alg, si.encode()))}"


def bad_tokens(alg):
    """Tokens both chains must refuse, with the status each must give."""
    good = token(alg)
    head, _, sig = good.rpartition(".")
    tampered = f"{head}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    return [("tampered signature", tampered, 401),
            ("expired", token(alg, exp_in=-3600), 401),
            ("wrong audience", token(alg, aud="other"), 401),
            ("missing role", token(alg, roles=("nurse",)), 403),
            ("no token", None, 401)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def router():
    return {"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def native_filters(alg):
    jwks = json.dumps({"keys": [jwk(alg)]})
    return [
        {"name": "envoy.filters.http.jwt_authn", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"keygate": {
                "issuer": ISS, "audiences": [AUD], "forward": True,
                # The same cache keygate has (1,024 verified tokens per worker): off by default.
                "jwt_cache_config": {"jwt_cache_size": 1024},
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


def keygate_filters(alg, wasm=WASM, fetched=False, without=()):
    """keygate's filter; `without`: top-level plugin fields to leave out (envoy/hostcalls.py's
    feature variants, e.g. `("rate_limits",)`)."""
    # A fetched set may carry the HS256 bench key only with the explicit opt-in.
    keys = ({"remote_jwks": {"cluster": "jwks", "uri": "http://jwks.local/.well-known/jwks.json",
                             "insecure_allow_symmetric": alg == "HS256"}}
            if fetched else {"jwks": {"keys": [jwk(alg)]}})
    plugin = {
        "issuer": ISS, "audiences": [AUD], **keys,
        "rules": [{"prefix": "/", "roles": ["doctor"]}],
        "rate_limits": [{"prefix": "/", "key": "ip", "limit": "1000000/second"}],
        "claims_to_headers": {"sub": "x-user-id", "roles": "x-user-roles"},
    }
    for field in without:
        plugin.pop(field)
    return [{"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "keygate", "root_id": "keygate", "failure_policy": "FAIL_RELOAD",
            "vm_config": {"vm_id": "keygate", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": str(wasm)}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": json.dumps(plugin)}}}}]


def noop_filters(_alg, calls=""):
    """The `noop` floor; `calls`: host calls it makes per request (envoy/noop's docs, used by
    envoy/hostcalls.py), none by default."""
    config = {
        "name": "noop", "root_id": "noop", "failure_policy": "FAIL_RELOAD",
        "vm_config": {"vm_id": "noop", "runtime": "envoy.wasm.runtime.v8",
                      "code": {"local": {"filename": str(NOOP_WASM)}}}}
    if calls:
        config["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                   "value": calls}
    return [{"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": config}}]


def jwks_listener(alg, port):
    """A listener of the same Envoy answering the JWKS (fetched once per VM per 10 min)."""
    route = {"match": {"prefix": "/"}, "direct_response": {
        "status": 200, "body": {"inline_string": json.dumps({"keys": [jwk(alg)]})}}}
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


def config(variant, alg, port, admin_port, filters=None):
    """Envoy's configuration for `variant`; `filters`: HTTP filters instead of the variant's."""
    if filters is None:
        filters = {"none": lambda _: [], "noop": noop_filters, "native": native_filters,
                   "keygate": keygate_filters,
                   "fetched": lambda a: keygate_filters(a, fetched=True),
                   "baseline": lambda a: keygate_filters(a, BASELINE)}[variant](alg)
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
        doc["static_resources"]["listeners"].append(jwks_listener(alg, jwks_port))
        doc["static_resources"]["clusters"] = [{
            "name": "jwks", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "jwks", "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": jwks_port}}}}]}]}}]
    return doc


def wait_ready(proc, admin_port, t0, what, log_path, poll=0.005):
    """Seconds from `t0` until Envoy's admin /ready answers 200 (exits if it dies or takes 30 s)."""
    while True:
        if proc.poll() is not None:
            sys.exit(f"{what} exited; see {log_path}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=1)
            c.request("GET", "/ready")
            if c.getresponse().status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        if time.monotonic() - t0 > 30:
            sys.exit(f"{what} not ready; see {log_path}")
        time.sleep(poll)


class Envoy:
    base_id = 500 + os.getpid() % 1000 * 3

    def __init__(self, variant, alg, concurrency, filters=None):
        self.port, self.admin_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix=f"keygate-bench-{variant}-")
        path = os.path.join(self.dir, "envoy.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config(variant, alg, self.port, self.admin_port, filters), f)
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
        self.ready_secs = wait_ready(self.proc, self.admin_port, t0,
                                     f"{variant}: Envoy", f"{self.dir}/envoy.log")

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


def status(url, tok):
    headers = ["-H", f"authorization: Bearer {tok}"] if tok else []
    return subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *headers, url],
                          capture_output=True, text=True).stdout


def fresh_script(alg, directory):
    """A wrk Lua script sending each request with the next token of a pool of FRESH_POOL."""
    path = os.path.join(directory, f"fresh-{alg}.lua")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("local tokens = {\n")
            for i in range(FRESH_POOL):
                f.write(f'"{token(alg, sub=f"user-{i}")}",\n')
            f.write("}\nlocal i = 0\n"
                    "request = function()\n"
                    "  i = i % #tokens + 1\n"
                    "  return wrk.format(nil, nil, {authorization = 'Bearer ' .. tokens[i]})\n"
                    "end\n")
    return path


def run(variant, alg, mode, args, scripts, filters=None):
    e = Envoy(variant, alg, args.concurrency, filters)
    try:
        url = f"http://127.0.0.1:{e.port}/api/records"
        tok = token(alg)
        for _ in range(50):  # the fetched variant answers once its VM has the key set
            probe = status(url, tok)
            if probe == "200":
                break
            time.sleep(0.1)
        if probe != "200":
            sys.exit(f"{variant}: probe answered {probe}; see {e.dir}/envoy.log")
        if variant not in ("none", "noop"):
            for what, bad, want in bad_tokens(alg):
                # Both must refuse; the status may differ (jwt_authn answers a wrong audience
                # with 403, keygate with 401 `token_audience_invalid`).
                got = status(url, bad)
                if not (got.startswith("4") and (got == str(want) or what == "wrong audience")):
                    sys.exit(f"{variant} {alg}: {what} answered {got}, not {want}")
        load = ["-H", f"authorization: Bearer {tok}"]
        if mode == "fresh":
            load = ["-s", scripts[alg]]
        cpu0 = e.cpu_secs()
        out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d",
                              f"{args.secs}s", "--latency", *load, url],
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
    p.add_argument("--algs", default="HS256,EdDSA,ES256")
    p.add_argument("--tokens", default="same,fresh", help="same: one token; fresh: a new one "
                   "per request")
    p.add_argument("--baseline", help="another keygate_envoy.wasm (e.g. main's) to run as a "
                   "`baseline` row beside `keygate`, for before/after in one run")
    args = p.parse_args()
    global BASELINE
    BASELINE = args.baseline
    if not WASM.exists():
        sys.exit(f"{WASM} missing: run `make build-envoy`")
    if not NOOP_WASM.exists():
        sys.exit(f"{NOOP_WASM} missing: run `make build-noop`")
    algs, modes = args.algs.split(","), args.tokens.split(",")
    rows = [("none", "-", "same"), ("noop", "-", "same")] + [(v, a, m) for a in algs for m in modes
                                      for v in ("native", "keygate") + (
                                          ("fetched",) if m == "same" else ()) + (
                                          ("baseline",) if BASELINE else ())]
    scratch = tempfile.mkdtemp(prefix="keygate-bench-tokens-")
    scripts = {a: fresh_script(a, scratch) for a in algs} if "fresh" in modes else {}
    results = {r: [] for r in rows}
    load0 = os.getloadavg()
    for rnd in range(args.rounds):
        for row in rows:
            v, a, m = row
            res = run(v, a if a != "-" else "HS256", m, args, scripts)
            results[row].append(res)
            print(f"round {rnd + 1} {v:8s} {a:6s} {m:6s} {res['rps']:9.0f} req/s  "
                  f"p50 {res['p50']:.3f} ms  p99 {res['p99']:.3f} ms  "
                  f"cpu {res['cpu_us']:.1f} µs/req  ready {res['ready']:.3f} s", flush=True)
    load1 = os.getloadavg()
    med = {r: {k: statistics.median(x[k] for x in results[r]) for k in results[r][0]}
           for r in rows}
    base = med[("none", "-", "same")]["cpu_us"]
    print()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.secs}s, Envoy --concurrency "
          f"{args.concurrency}, {args.rounds} rounds interleaved, medians; "
          f"keygate_envoy.wasm {WASM.stat().st_size / 1024:.0f} KiB; load average "
          f"{load0[0]:.2f} before, {load1[0]:.2f} after")
    print("| variant | alg | tokens | req/s | p50 ms | p99 ms | CPU µs/req | added CPU µs/req "
          "| ready s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m = med[r]
        print(f"| {r[0]} | {r[1]} | {r[2]} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | "
              f"{m['cpu_us']:.1f} | {m['cpu_us'] - base:.1f} | {m['ready']:.3f} |")
    print()
    print("| alg | tokens | keygate/native req/s | p99 | added CPU (target ≤ 0.8×) |")
    print("|---|---|---:|---:|---:|")
    for a in algs:
        for m in modes:
            kn, nn = med[("keygate", a, m)], med[("native", a, m)]
            add_k, add_n = kn["cpu_us"] - base, nn["cpu_us"] - base
            ratio = add_k / add_n if add_n > 0 else float("nan")
            print(f"| {a} | {m} | {kn['rps'] / nn['rps']:.2f}× | {kn['p99'] / nn['p99']:.2f}× | "
                  f"{ratio:.2f}× |")
    noop = med[("noop", "-", "same")]["cpu_us"] - base
    print(f"\nnoop floor (any proxy-wasm filter of this SDK): added CPU {noop:.1f} µs/req; "
          "keygate's added CPU above it: " + ", ".join(
              f"{a} {m} {med[('keygate', a, m)]['cpu_us'] - base - noop:.1f} µs"
              for a in algs for m in modes))
    fetched = [a for a in algs if ("fetched", a, "same") in med]
    if fetched:
        print("\nfetched/inline keys (same token), added CPU (target: the same): " + ", ".join(
            f"{a} {(med[('fetched', a, 'same')]['cpu_us'] - base) / (med[('keygate', a, 'same')]['cpu_us'] - base):.2f}×"
            for a in fetched))
    if BASELINE:
        print(f"\nbaseline {BASELINE} ({os.path.getsize(BASELINE) / 1024:.0f} KiB): "
              "keygate/baseline added CPU "
              + ", ".join(f"{a} {m} {(med[('keygate', a, m)]['cpu_us'] - base) / (med[('baseline', a, m)]['cpu_us'] - base):.2f}×"
                          for a in algs for m in modes))
    ready = statistics.median(med[r]["ready"] for r in rows if r[0] == "keygate")
    print(f"\nkeygate ready {ready:.3f} s (target ≤ 0.3 s)")


if __name__ == "__main__":
    main()
