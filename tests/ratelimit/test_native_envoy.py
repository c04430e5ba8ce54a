"""Protocol fidelity: Envoy's own `envoy.filters.http.ratelimit` with `remote_address`
descriptors, pointed at keygate-ratelimit (limits file, Redis), admits exactly its limit."""
import http.client
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time

import pytest
import yaml

from conftest import envoy_binary, free_port, parallel, read, wait_port

LIMIT, PERIOD = 5, 60


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def cluster(name, port, http2=False):
    c = {"name": name, "type": "STATIC", "connect_timeout": "1s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
             {"endpoint": {"address": {"socket_address": {
                 "address": "127.0.0.1", "port_value": port}}}}]}]}}
    if http2:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}}
    return c


def envoy_config(port, admin_port, upstream_port, rls_port):
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "use_remote_address": True,
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
            "match": {"prefix": "/"},
            "route": {"cluster": "upstream",
                      "rate_limits": [{"actions": [{"remote_address": {}}]}]}}]}]},
        "http_filters": [
            {"name": "envoy.filters.http.ratelimit", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                "domain": "edge",
                "failure_mode_deny": True,
                "timeout": "2s",
                "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
                "rate_limit_service": {"transport_api_version": "V3", "grpc_service": {
                    "envoy_grpc": {"cluster_name": "keygate_ratelimit"}}}}},
            {"name": "envoy.filters.http.router", "typed_config": {
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
            "clusters": [cluster("upstream", upstream_port),
                         cluster("keygate_ratelimit", rls_port, http2=True)]},
    }


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Ok)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def envoy(redis, services, upstream, tmp_path):
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"domain": "edge", "descriptors": [
        {"key": "remote_address", "limit": f"{LIMIT}/minute"}]}))
    rls = services("--redis", redis.url, "--limits", limits)
    port, admin = free_port(), free_port()
    d = tempfile.mkdtemp(prefix="keygate-envoy-rls-")
    cfg = os.path.join(d, "envoy.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump(envoy_config(port, admin, upstream, rls.port), f)
    log_path = os.path.join(d, "envoy.log")
    proc = subprocess.Popen(
        [envoy_binary(), "-c", cfg, "--base-id", str(os.getpid() % 1000 * 10 + 7),
         "--concurrency", "2", "-l", "warning", "--disable-hot-restart"],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc, "envoy", log_path)
        yield port, rls, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/auth/login")
        r = conn.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def test_native_envoy_ratelimit_filter_admits_exactly_its_limit_ok(envoy, redis):
    port, rls, log_path = envoy
    started = time.monotonic()
    results = parallel([lambda: get(port)] * 40)
    elapsed = time.monotonic() - started
    statuses = [s for s, _ in results]
    admitted = statuses.count(200)
    refilled = int(elapsed / (PERIOD / LIMIT))
    assert LIMIT <= admitted <= LIMIT + refilled, (statuses, read(log_path)[-2000:])
    assert statuses.count(429) == 40 - admitted
    # Envoy turned the descriptor statuses into its draft-03 headers.
    for status, headers in results:
        assert headers["x-ratelimit-limit"].startswith(f"{LIMIT}, {LIMIT};w={PERIOD}"), headers
        remaining = int(headers["x-ratelimit-remaining"])
        assert (remaining == 0) if status == 429 else (0 <= remaining < LIMIT)
        assert 1 <= int(headers["x-ratelimit-reset"]) <= PERIOD
    assert redis.dbsize() == 1
