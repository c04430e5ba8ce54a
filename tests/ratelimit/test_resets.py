"""Clients that reset while their request waits for the rate-limit service: the gRPC call is
owned by the filter's root context, so Envoy never cancels it with the request; every call is
answered into the VM (where proxy-wasm's dispatcher drops its token entry and, the request
being gone, the answer), and Envoy keeps serving with exact answers. A call tied to the
request instead would be cancelled without a callback, leaking the SDK's token entry."""
import socket
import struct
import threading
import time
from concurrent import futures

import grpc

import rls_wire
from conftest import free_port, parallel
from fleet import Envoy, Upstream, plugin

RULE = {"name": "ping", "path": "/api/auth/ping", "key": "header:x-client",
        "limit": "3/minute", "scope": "global"}
RESETS = 120


def _client(request):
    """The `header` entry's value of the first descriptor."""
    for field, descriptor in rls_wire._fields(request):
        if field == 2:
            for f, entry in rls_wire._fields(descriptor):
                if f == 1:
                    e = dict(rls_wire._fields(entry))
                    if e.get(1) == b"header":
                        return e.get(2, b"").decode()
    return ""


def _answer(over, remaining):
    limit = rls_wire._int(1, 3) + rls_wire._int(2, 2)
    status = (rls_wire._int(1, 2 if over else 1) + rls_wire._len(2, limit)
              + rls_wire._int(3, remaining) + rls_wire._len(4, rls_wire._int(1, 60)))
    return rls_wire._int(1, 2 if over else 1) + rls_wire._len(2, status)


class SlowRls:
    """An RLS v3 server (grpcio, raw protobuf): `reset-*` clients are held 0.5 s, then
    answered, noting whether the call was still live (not cancelled by Envoy); others are
    counted exactly, 3 per client."""

    def __init__(self):
        self.lock = threading.Lock()
        self.held_live = []
        self.counts = {}
        handler = grpc.method_handlers_generic_handler(
            "envoy.service.ratelimit.v3.RateLimitService",
            {"ShouldRateLimit": grpc.unary_unary_rpc_method_handler(self.check)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=RESETS + 8),
                                  handlers=[handler])
        self.port = free_port()
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def check(self, request, context):
        client = _client(request)
        if client.startswith("reset-"):
            time.sleep(0.5)
            with self.lock:
                self.held_live.append(context.is_active())
            return _answer(False, 2)
        with self.lock:
            n = self.counts[client] = self.counts.get(client, 0) + 1
        return _answer(n > 3, max(0, 3 - n))

    def stop(self):
        self.server.stop(0)


def _reset_mid_call(port, i):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(f"GET /api/auth/ping HTTP/1.1\r\nhost: x\r\nx-client: reset-{i}\r\n\r\n"
                  .encode())
        time.sleep(0.1)  # the call is out; the service holds it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()  # RST: Envoy destroys the request's context mid-call


def test_requests_reset_mid_call_leave_envoy_serving_ok():
    rls, upstream, envoy = SlowRls(), Upstream(), None
    try:
        envoy = Envoy(plugin([RULE], failure_mode="deny", timeout_ms=5000), upstream.port,
                      rls.port)
        parallel([lambda i=i: _reset_mid_call(envoy.port, i) for i in range(RESETS)])
        deadline = time.monotonic() + 15
        while len(rls.held_live) < RESETS:
            assert time.monotonic() < deadline, (len(rls.held_live), envoy.logs()[-3000:])
            time.sleep(0.05)
        # Every call outlived its request (none cancelled): each answer reached the VM.
        assert rls.held_live == [True] * RESETS, rls.held_live.count(False)
        time.sleep(0.3)
        assert envoy.proc.poll() is None, envoy.logs()[-3000:]
        statuses = [envoy.request("GET", "/api/auth/ping", {"x-client": "after"})
                    for _ in range(4)]
        assert [s for s, _ in statuses] == [200, 200, 200, 429], envoy.logs()[-3000:]
        assert statuses[0][1].get("ratelimit") == '"3/minute";r=2;t=60', statuses[0][1]
        assert statuses[3][1].get("retry-after") == "60", statuses[3][1]
        assert envoy.stat("keygate.rate_limit_service_failed") == 0
        logs = envoy.logs()
        assert "panicked" not in logs and "duplicate token_id" not in logs, logs[-3000:]
    finally:
        if envoy:
            envoy.stop()
        upstream.stop()
        rls.stop()
