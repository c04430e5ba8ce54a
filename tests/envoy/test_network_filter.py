"""keygate is an HTTP filter. Loaded by mistake as a *network* filter (`envoy.filters.network.wasm`,
e.g. an Istio WasmPlugin of `type: NETWORK`) it must close the connection, never let the bytes
through: the module keeps exporting the network callbacks (filters/exports.json), so the SDK
refuses the unknown stream context and the host fails the VM instead of answering `Continue`."""
import socket

import pytest

import conftest
from conftest import Envoy, example_plugin_config

NETWORK_WASM = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def as_network_filter(render):
    def rendered(*args, **kwargs):
        doc = render(*args, **kwargs)
        chain = doc["static_resources"]["listeners"][0]["filter_chains"][0]
        hcm = chain["filters"][0]["typed_config"]
        wasm = hcm["http_filters"][0]["typed_config"]["config"]
        cluster = doc["static_resources"]["clusters"][0]["name"]
        chain["filters"] = [
            {"name": "envoy.filters.network.wasm",
             "typed_config": {"@type": NETWORK_WASM, "config": wasm}},
            {"name": "envoy.filters.network.tcp_proxy",
             "typed_config": {"@type": TCP_PROXY, "stat_prefix": "tcp", "cluster": cluster}}]
        return doc
    return rendered


def test_loaded_as_a_network_filter_it_closes_every_connection(upstream, monkeypatch):
    monkeypatch.setattr(conftest, "render", as_network_filter(conftest.render))
    envoy = Envoy(example_plugin_config(), upstream)
    try:
        for _ in range(3):  # every connection, not only the first (the VM is reloaded)
            with socket.create_connection(("127.0.0.1", envoy.port), timeout=5) as s:
                s.sendall(b"GET /api/admin/secret HTTP/1.1\r\nHost: api\r\n\r\n")
                got = b""
                try:
                    while chunk := s.recv(4096):
                        got += chunk
                except (ConnectionResetError, socket.timeout):
                    pass
            # The echo upstream answers 200 with the path it saw: nothing of it may come back.
            assert b"HTTP/1.1 200" not in got and b"/api/admin/secret" not in got, got[:300]
        assert envoy.proc.poll() is None, "Envoy must survive the refused connections"
    finally:
        envoy.stop()
