"""A keygate fleet on real parts: Envoys running dist/keygate_envoy.wasm with global limits,
each pointed at its own keygate-ratelimit replica, all replicas on one redis-server."""
import base64
import http.client
import http.server
import itertools
import json
import os
import pathlib
import subprocess
import tempfile
import threading
import time

import jwt
import pytest
import yaml

from conftest import ROOT, envoy_binary, free_port, read

WASM = ROOT / "dist" / "keygate_envoy.wasm"
SECRET = b"fleet-test-secret-that-is-at-least-32-bytes-long"
ISSUER, AUDIENCE = "https://auth.example.com", "api"
_base_ids = itertools.count(os.getpid() % 1000 * 10 + 300)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(sub, kid="k1", secret=SECRET):
    now = int(time.time())
    return jwt.encode({"sub": sub, "type": "access", "iss": ISSUER, "aud": AUDIENCE,
                       "iat": now, "exp": now + 900}, secret, algorithm="HS256",
                      headers={"kid": kid})


def plugin(rate_limits, failure_mode="local", timeout_ms=200, service=True):
    cfg = {
        "issuer": ISSUER, "audiences": [AUDIENCE],
        "jwks": {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": b64(SECRET)}]},
        "rules": [{"prefix": "/api/auth/", "allow": "public"},
                  {"prefix": "/", "allow": "authenticated"}],
        "rate_limits": rate_limits,
    }
    if service:
        cfg["rate_limit_service"] = {"cluster": "keygate_ratelimit", "domain": "keygate",
                                     "timeout_ms": timeout_ms, "failure_mode": failure_mode}
    return cfg


def _cluster(name, port, http2=False):
    c = {"name": name, "type": "STATIC", "connect_timeout": "0.25s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
             {"endpoint": {"address": {"socket_address": {
                 "address": "127.0.0.1", "port_value": port}}}}]}]}}
    if http2:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}}
    return c


def envoy_config(plugin_config, port, admin_port, upstream_port, rls_port, jwks_port=None):
    wasm = {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": "keygate", "root_id": "keygate", "failure_policy": "FAIL_CLOSED",
            "vm_config": {"vm_id": "keygate", "runtime": "envoy.wasm.runtime.v8",
                          "code": {"local": {"filename": str(WASM)}}},
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": json.dumps(plugin_config)}}}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress", "use_remote_address": True,
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
            "match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
        "http_filters": [wasm, {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                 "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{"name": "main", "address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm}]}]}],
            "clusters": [_cluster("upstream", upstream_port),
                         _cluster("keygate_ratelimit", rls_port, http2=True)]
            + ([_cluster("jwks", jwks_port)] if jwks_port else [])},
    }


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _ok(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _ok

    def log_message(self, *args):
        pass


class Upstream:
    def __init__(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Ok)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Envoy:
    """One Envoy (`--concurrency 2`, its own `--base-id`) with the keygate filter."""

    def __init__(self, plugin_config, upstream_port, rls_port, port=None, admin_port=None,
                 jwks_port=None):
        if not WASM.exists():
            pytest.fail(f"{WASM} is missing: run `make build`")
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.dir = tempfile.mkdtemp(prefix="keygate-fleet-")
        cfg = os.path.join(self.dir, "envoy.yaml")
        with open(cfg, "w") as f:
            yaml.safe_dump(envoy_config(plugin_config, self.port, self.admin_port,
                                        upstream_port, rls_port, jwks_port), f)
        self.log_path = os.path.join(self.dir, "envoy.log")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", cfg, "--base-id", str(next(_base_ids)),
             "--concurrency", "2", "-l", "warning", "--disable-hot-restart"],
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"Envoy exited with {self.proc.returncode}:\n"
                            f"{read(self.log_path)[-3000:]}")
            try:
                if self.admin("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"Envoy not ready:\n{read(self.log_path)[-3000:]}")

    def admin(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def stat(self, name):
        for line in self.admin("/stats?filter=" + name)[1].splitlines():
            key, _, value = line.partition(": ")
            if key.strip() in (name, "wasmcustom." + name):
                return int(value)
        return 0

    def request(self, method, path, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=b"{}" if method == "POST" else None,
                         headers=headers or {})
            r = conn.getresponse()
            r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()

    def logs(self):
        return read(self.log_path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def validate(plugin_config):
    """`envoy --mode validate` with this plugin configuration: (exit code, output)."""
    d = tempfile.mkdtemp(prefix="keygate-fleet-validate-")
    path = os.path.join(d, "envoy.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(envoy_config(plugin_config, free_port(), free_port(), free_port(),
                                    free_port()), f)
    p = subprocess.run([envoy_binary(), "--mode", "validate", "-c", path, "--base-id",
                        str(next(_base_ids)), "-l", "info"], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout + p.stderr


__all__ = ["Envoy", "Upstream", "plugin", "token", "validate", "pathlib"]
