"""The filter where Envoy users get it: the OCI image of `make oci` read back by a real tool
(Debian's skopeo), and Envoy's own remote code source (`vm_config.code.remote` + `sha256`)
fetching dist/keygate_envoy.wasm from a local HTTP server; a wrong sha256 is refused."""
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time

import pytest
import yaml

from conftest import ROOT, WASM, Envoy, _base_ids, envoy_binary, example_plugin_config, free_port, render

OCI = ROOT / "dist" / "oci"
VERSION = next(line.split('"')[1] for line in (ROOT / "filters/Cargo.toml").read_text().splitlines()
               if line.startswith("version = "))


def skopeo(*args):
    if not shutil.which("skopeo"):
        pytest.fail("skopeo is not installed: run `make setup`")
    p = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"skopeo {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def test_sha256_file_matches_the_filter():
    line = (ROOT / "dist/keygate_envoy.wasm.sha256").read_text().split()
    assert line == [hashlib.sha256(WASM.read_bytes()).hexdigest(), "keygate_envoy.wasm"]


def test_oci_layout_is_the_compat_wasm_image_with_the_filter(tmp_path):
    if not (OCI / "index.json").exists():
        pytest.fail(f"{OCI} is missing: run `make oci`")
    ref = f"oci:{OCI}:{VERSION}"
    info = json.loads(skopeo("inspect", ref))
    assert len(info["Layers"]) == 1
    manifest = json.loads(skopeo("inspect", "--raw", ref))
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    # Copy it out as a registry would receive it, and check the one file in the layer.
    skopeo("copy", "--quiet", ref, f"dir:{tmp_path / 'copy'}")
    digest = manifest["layers"][0]["digest"].split(":")[1]
    layer = (tmp_path / "copy" / digest).read_bytes()
    assert hashlib.sha256(layer).hexdigest() == digest
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        assert tar.getnames() == ["plugin.wasm"]
        assert tar.extractfile("plugin.wasm").read() == WASM.read_bytes()
    config = json.loads(skopeo("inspect", "--config", "--raw", ref))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]


def test_oci_build_is_deterministic(tmp_path):
    subprocess.run(["python3", str(ROOT / "envoy/oci/build.py"), str(WASM), str(tmp_path / "again"), VERSION],
                   check=True, capture_output=True)
    assert (tmp_path / "again/index.json").read_text() == (OCI / "index.json").read_text()


def _examples():
    docs = [d for p in sorted((ROOT / "envoy/oci").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {d["kind"]: d for d in docs}


@pytest.mark.parametrize("kind", ["WasmPlugin", "EnvoyExtensionPolicy"])
def test_kubernetes_examples_pull_the_image_and_their_config_loads(kind, upstream):
    spec = _examples()[kind]["spec"]
    if kind == "WasmPlugin":
        assert spec["url"] == f"oci://registry.example.com/keygate/keygate-envoy:{VERSION}"
        assert spec["failStrategy"] == "FAIL_CLOSE" and spec["phase"] == "AUTHN"
        config = spec["pluginConfig"]
    else:
        wasm = spec["wasm"][0]
        assert wasm["code"]["type"] == "Image" and wasm["failOpen"] is False
        assert wasm["code"]["image"]["url"] == f"registry.example.com/keygate/keygate-envoy:{VERSION}"
        config = wasm["config"]
    # Both hand the plugin its config as JSON: the real filter must accept it and enforce it.
    envoy = Envoy(config, upstream, concurrency=1)
    try:
        assert envoy.request(path="/api/auth/login").status == 200
        r = envoy.request(path="/api/records/1")
        assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer"), r
    finally:
        envoy.stop()


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def wasm_server():
    handler = functools.partial(_Files, directory=str(WASM.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


class RemoteEnvoy(Envoy):
    """Envoy with the example config, its code fetched over HTTP (`remote`) instead of a file."""

    def __init__(self, upstream_port, wasm_port, sha256):
        self.port, self.admin_port = free_port(), free_port()
        doc = render(example_plugin_config(), self.port, self.admin_port, upstream_port)
        hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        cfg = hcm["typed_config"]["http_filters"][0]["typed_config"]["config"]
        cfg["vm_config"]["code"] = {"remote": {
            "http_uri": {"uri": f"http://127.0.0.1:{wasm_port}/keygate_envoy.wasm", "cluster": "wasm_server",
                         "timeout": "10s"},
            "sha256": sha256,
            "retry_policy": {"num_retries": 0},
        }}
        doc["static_resources"]["clusters"].append({
            "name": "wasm_server", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "wasm_server", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": wasm_port}}}}]}]},
        })
        self.dir = tempfile.mkdtemp(prefix="keygate-envoy-remote-")
        self.config_path = os.path.join(self.dir, "envoy.yaml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(doc, f)
        self.log_path = os.path.join(self.dir, "envoy.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", self.config_path, "--base-id", str(next(_base_ids)),
             "--concurrency", "1", "-l", "info", "--component-log-level", "config:debug",
             "--disable-hot-restart"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.started = time.monotonic()


def test_remote_code_with_sha256_is_loaded(upstream, wasm_server):
    sha = (ROOT / "dist/keygate_envoy.wasm.sha256").read_text().split()[0]
    envoy = RemoteEnvoy(upstream, wasm_server, sha)
    try:
        envoy.ready_secs = envoy._wait_ready()
        # The filter runs: no token → keygate's 401; a public route passes.
        r = envoy.request(path="/api/records")
        assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer"), r
        assert envoy.request(path="/api/auth/status").status == 200
    finally:
        envoy.stop()


def test_remote_code_with_wrong_sha256_is_refused(upstream, wasm_server):
    wrong = hashlib.sha256(b"not the filter").hexdigest()
    envoy = RemoteEnvoy(upstream, wasm_server, wrong)
    try:
        envoy.ready_secs = envoy._wait_ready()
        deadline = time.monotonic() + 15
        while "failed to load" not in envoy.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = envoy.logs()
        # The bytes were fetched, then refused for their checksum, so the plugin never loaded.
        assert "keygate_envoy.wasm]: success" in logs and "keygate_envoy.wasm]: data is invalid" in logs, logs[-3000:]
        assert "Plugin keygate failed to load" in logs, logs[-3000:]
        # Fail closed: without its auth filter the listener lets nothing through, public routes included.
        for path in ("/api/auth/status", "/api/records"):
            r = envoy.request(path=path)
            assert r.status == 503, r
    finally:
        envoy.stop()
