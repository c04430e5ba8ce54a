"""Fleet-wide limits end to end: two Envoys (keygate filter, `--concurrency 2` each), two
keygate-ratelimit replicas, one redis-server. Exact over the fleet while Redis answers; each
`failure_mode` when Redis stops, the service dies or stalls past `timeout_ms`; exact again
once Redis is back; bad configurations refused naming the field."""
import http.server
import json
import signal
import threading
import time

import pytest

from conftest import Redis, Service, parallel
from fleet import Envoy, Upstream, b64, plugin, token, validate

LOGIN = {"name": "login", "path": "/api/auth/login", "methods": ["POST"], "key": "ip",
         "limit": "5/minute", "scope": "global"}
DATA = {"name": "data", "prefix": "/api/data", "key": "sub", "limit": "100/hour",
        "scope": "global"}
# For the failure runs: a fresh key per phase, so local fallback state never carries over.
PING = {"name": "ping", "path": "/api/auth/ping", "key": "header:x-client",
        "limit": "3/minute", "scope": "global"}
FAILED = "keygate.rate_limit_service_failed"


class Fleet:
    def __init__(self, redis, rate_limits, failure_mode="local", timeout_ms=200):
        self.redis = redis
        self.upstream = Upstream()
        self.services = [Service("--redis", redis.url) for _ in range(2)]
        cfg = plugin(rate_limits, failure_mode, timeout_ms)
        self.envoys = []
        for s in self.services:
            self.envoys.append(Envoy(cfg, self.upstream.port, s.port))

    def failed(self):
        return sum(e.stat(FAILED) for e in self.envoys)

    def logs(self):
        return "\n".join(e.logs()[-1500:] for e in self.envoys)

    def stop(self):
        for e in self.envoys:
            e.stop()
        for s in self.services:
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGCONT)
            s.stop()
        self.upstream.stop()


@pytest.fixture
def fleet(redis):
    started = []

    def start(*args, **kwargs):
        f = Fleet(redis, *args, **kwargs)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


def test_ip_limit_is_exact_over_the_fleet_ok(fleet, redis):
    f = fleet([LOGIN])
    started = time.monotonic()
    calls = [lambda e=f.envoys[i % 2]: e.request("POST", "/api/auth/login")
             for i in range(40)]
    results = parallel(calls)
    refilled = int((time.monotonic() - started) / 12)
    statuses = [s for s, _ in results]
    assert 5 <= statuses.count(200) <= 5 + refilled, (statuses, f.logs())
    assert statuses.count(429) == 40 - statuses.count(200)
    # Both Envoys admitted some or refused some: the quota is one for the fleet.
    for status, headers in results:
        if status == 429:
            assert 1 <= int(headers["retry-after"]) <= 60, headers
            assert headers["ratelimit-policy"] == '"5/minute";q=5;w=60', headers
            assert ";r=0;" in headers["ratelimit"], headers
        else:
            assert headers["ratelimit-policy"] == '"5/minute";q=5;w=60', headers
    assert f.failed() == 0
    assert redis.dbsize() == 1


def test_sub_limit_is_exact_over_the_fleet_ok(fleet):
    f = fleet([DATA])
    auth = {"authorization": f"Bearer {token('alice')}"}
    started = time.monotonic()
    calls = [lambda e=f.envoys[i % 2]: e.request("GET", "/api/data/x", auth)[0]
             for i in range(1000)]
    statuses = parallel(calls, workers=32)
    refilled = int((time.monotonic() - started) / 36)
    assert 100 <= statuses.count(200) <= 100 + refilled, (statuses.count(200), f.logs())
    assert statuses.count(429) == 1000 - statuses.count(200)
    # Another user has their own quota; an anonymous request is still 401 after the service.
    other = {"authorization": f"Bearer {token('bob')}"}
    assert f.envoys[1].request("GET", "/api/data/x", other)[0] == 200
    assert f.envoys[0].request("GET", "/api/data/x")[0] == 401
    assert f.failed() == 0


def burst(f, client, per_envoy=8):
    """`per_envoy` pings through each Envoy with header x-client: (statuses by Envoy, headers)."""
    out = []
    for e in f.envoys:
        out.append([e.request("GET", "/api/auth/ping", {"x-client": client})
                    for _ in range(per_envoy)])
    return [[s for s, _ in r] for r in out], [h for r in out for _, h in r]


def expect_failure(f, mode, client, failed_before):
    statuses, headers = burst(f, client)
    if mode == "local":
        # Each Envoy enforces the rule itself: the fleet degrades to per-proxy limits.
        assert [s.count(200) for s in statuses] == [3, 3], (statuses, f.logs())
    elif mode == "deny":
        assert statuses == [[429] * 8] * 2, (statuses, f.logs())
        assert {h["retry-after"] for h in headers} == {"1"}
    else:
        assert statuses == [[200] * 8] * 2, (statuses, f.logs())
    assert f.failed() >= failed_before + 16
    return f.failed()


def expect_exact(f, client, deadline=30):
    """Once the service answers again, the fleet is exact again (3 for the whole fleet).
    The deadline is generous: on a loaded 2-core host the service's reconnect to Redis can lag."""
    end = time.monotonic() + deadline
    while True:
        failed = f.failed()
        statuses, _ = burst(f, client)
        admitted = sum(s.count(200) for s in statuses)
        if f.failed() == failed or time.monotonic() > end:
            break
        client += "+"  # a failure slipped in while recovering: a fresh key, try again
        time.sleep(0.2)
    assert admitted == 3, (statuses, f.logs())


@pytest.mark.parametrize("mode", ["local", "deny", "allow"])
def test_failure_modes_ok(fleet, redis, mode):
    f = fleet([PING], failure_mode=mode, timeout_ms=100)
    expect_exact(f, "before")
    # Redis stopped: the service answers UNAVAILABLE.
    redis.stop()
    failed = expect_failure(f, mode, "redis-down", 0)
    # Redis back on the same port: the service recovers without a restart.
    redis.start()
    expect_exact(f, "redis-back")
    # The service stalls past timeout_ms (SIGSTOP): Envoy gives up after 100 ms.
    for s in f.services:
        s.proc.send_signal(signal.SIGSTOP)
    try:
        failed = expect_failure(f, mode, "stalled", failed)
    finally:
        for s in f.services:
            s.proc.send_signal(signal.SIGCONT)
    expect_exact(f, "resumed")
    # The service killed: nothing listens.
    for s in f.services:
        s.stop()
    expect_failure(f, mode, "killed", failed)
    # The failure burst was logged, once per Envoy worker at most per burst, and never
    # with a descriptor value.
    logs = f.logs()
    assert "rate-limit service failed" in logs, logs
    assert "redis-down" not in logs and "stalled" not in logs


BAD = {
    "rate_limits[0].scope": plugin([LOGIN], service=False),
    "rate_limits[0].limit": plugin([{**LOGIN, "limit": "5/15m"}]),
    "rate_limits[1].name": plugin([LOGIN, {**DATA, "name": "login"}]),
    "rate_limit_service.timeout_ms": plugin([LOGIN], timeout_ms=0),
}


@pytest.mark.parametrize("field", list(BAD))
def test_bad_configs_refused_naming_the_field(field):
    code, out = validate(BAD[field])
    assert code != 0, out
    assert field in out, out[-3000:]


def test_good_config_validates_ok():
    code, out = validate(plugin([LOGIN, DATA]))
    assert code == 0, out[-3000:]


class Jwks(http.server.BaseHTTPRequestHandler):
    """Serves `keys` (a class attribute the test changes) as the JWK Set."""
    keys = []

    def do_GET(self):
        body = json.dumps({"keys": Jwks.keys}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_sub_limit_after_a_jwks_refetch_ok(redis):
    """A request that first waits for a `remote_jwks` refetch is resumed by the root context,
    which then asks the service for its `sub` limit (the root sends that gRPC call)."""
    old, new = b"old-key-old-key-old-key-old-key-0123", b"new-key-new-key-new-key-new-key-4567"
    jwk = lambda kid, k: {"kty": "oct", "kid": kid, "alg": "HS256", "k": b64(k)}
    Jwks.keys = [jwk("old", old)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream, service, envoy = Upstream(), Service("--redis", redis.url), None
    try:
        cfg = plugin([{**DATA, "limit": "3/minute"}])
        del cfg["jwks"]
        cfg["remote_jwks"] = {"cluster": "jwks",
                              "uri": f"http://127.0.0.1:{server.server_address[1]}/jwks.json",
                              "min_refetch_secs": 1, "insecure_allow_symmetric": True}
        envoy = Envoy(cfg, upstream.port, service.port, jwks_port=server.server_address[1])
        first = {"authorization": f"Bearer {token('carol', 'old', old)}"}
        deadline = time.monotonic() + 10
        while envoy.request("GET", "/api/data/x", first)[0] != 200:
            assert time.monotonic() < deadline, envoy.logs()[-3000:]
            time.sleep(0.1)  # the first key set is loading
        time.sleep(1.1)  # past min_refetch_secs
        Jwks.keys = [jwk("old", old), jwk("new", new)]
        auth = {"authorization": f"Bearer {token('dave', 'new', new)}"}
        statuses = [envoy.request("GET", "/api/data/x", auth)[0] for _ in range(4)]
        # The first waited for the refetch, then for the service: counted like the others.
        assert statuses == [200, 200, 200, 429], (statuses, envoy.logs()[-3000:])
        assert envoy.stat("keygate.jwks_fetched") >= 2
        assert envoy.stat(FAILED) == 0
    finally:
        if envoy:
            envoy.stop()
        service.stop()
        upstream.stop()
        server.shutdown()
