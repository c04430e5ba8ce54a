"""keygate-ratelimit end to end: the release binary, real Redis, real Envoy."""
import json
import os
import time

import grpc
import pytest

from conftest import Redis, parallel, run_binary

DOMAIN = "keygate"


def login(ip, limit=(5, "minute")):
    """A descriptor as keygate's filter sends it: rule name, key, and the quota override."""
    return {"entries": [("keygate_rule", "login"), ("remote_address", ip)], "limit": limit}


def admitted_of(results):
    return sum(r["overall"] == "OK" for r in results)


def burst(replicas, descriptor, n, workers=40):
    """n parallel calls spread round-robin over the replicas; (admitted, elapsed seconds)."""
    calls = [lambda s=replicas[i % len(replicas)]: s.check(DOMAIN, [descriptor])
             for i in range(n)]
    started = time.monotonic()
    results = parallel(calls, workers)
    return admitted_of(results), time.monotonic() - started


def assert_exact(admitted, count, period_secs, elapsed):
    """GCRA: exactly `count` at once, plus only what refilled (one per period/count) meanwhile."""
    refilled = int(elapsed / (period_secs / count))
    assert count <= admitted <= count + refilled, (admitted, count, refilled)


def write_limits(tmp_path, doc):
    path = tmp_path / "limits.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


# --- exactness over the fleet --------------------------------------------------------------

def test_two_replicas_5_per_minute_exact_ok(redis, services):
    a, b = services("--redis", redis.url), services("--redis", redis.url)
    admitted, elapsed = burst([a, b], login("198.51.100.7"), 40)
    assert_exact(admitted, 5, 60, elapsed)
    # Another address has its own bucket; the first stays spent on both replicas.
    assert a.check(DOMAIN, [login("198.51.100.8")])["overall"] == "OK"
    assert b.check(DOMAIN, [login("198.51.100.7")])["overall"] == "OVER_LIMIT"


def test_two_replicas_100_per_hour_sub_exact_ok(redis, services):
    a, b = services("--redis", redis.url), services("--redis", redis.url)
    sub = {"entries": [("keygate_rule", "api"), ("sub", "user-42")], "limit": (100, "hour")}
    admitted, elapsed = burst([a, b], sub, 1000, workers=32)
    assert_exact(admitted, 100, 3600, elapsed)


def test_memory_exact_ok(services):
    s = services("--memory")
    admitted, elapsed = burst([s], login("203.0.113.9"), 40)
    assert_exact(admitted, 5, 60, elapsed)


def test_status_fields_ok(redis, services):
    s = services("--redis", redis.url)
    r = s.check(DOMAIN, [login("192.0.2.10", (3, "minute"))])
    assert r["overall"] == "OK"
    assert r["statuses"] == [{"code": "OK", "limit": (3, "minute"), "remaining": 2, "reset": 20}]
    assert r["response_headers"] == []
    s.check(DOMAIN, [login("192.0.2.10", (3, "minute"))], hits_addend=2)
    r = s.check(DOMAIN, [login("192.0.2.10", (3, "minute"))])
    assert r["statuses"][0]["code"] == "OVER_LIMIT"
    assert r["statuses"][0]["remaining"] == 0
    assert 1 <= r["statuses"][0]["reset"] <= 20  # the wait until one more fits
    # One key per descriptor in Redis, and no descriptor value in its name.
    assert redis.dbsize() == 1
    keys = redis.command("KEYS", "*")
    assert keys == b"*1"


def test_hits_addend_ok(services):
    s = services("--memory")
    d = login("192.0.2.20")
    assert s.check(DOMAIN, [d], hits_addend=3)["statuses"][0]["remaining"] == 2
    assert s.check(DOMAIN, [d], hits_addend=3)["overall"] == "OVER_LIMIT"
    assert s.check(DOMAIN, [d], hits_addend=2)["overall"] == "OK"
    assert s.check(DOMAIN, [d])["overall"] == "OVER_LIMIT"
    # A per-descriptor hits_addend of 0 asks without counting.
    query = dict(login("192.0.2.21"), hits=0)
    for _ in range(10):
        assert s.check(DOMAIN, [query])["statuses"][0]["remaining"] == 5


# --- the limits file -----------------------------------------------------------------------

def test_limits_file_and_unknown_descriptors_ok(redis, services, tmp_path):
    limits = write_limits(tmp_path, {"domain": "edge", "descriptors": [
        {"key": "remote_address", "limit": "2/minute"},
        {"key": "generic_key", "value": "reset",
         "descriptors": [{"key": "remote_address", "limit": "1/hour"}]}]})
    s = services("--redis", redis.url, "--limits", limits)
    ip = {"entries": [("remote_address", "192.0.2.30")]}
    got = [s.check("edge", [ip])["overall"] for _ in range(3)]
    assert got == ["OK", "OK", "OVER_LIMIT"]
    nested = {"entries": [("generic_key", "reset"), ("remote_address", "192.0.2.30")]}
    assert [s.check("edge", [nested])["overall"] for _ in range(2)] == ["OK", "OVER_LIMIT"]
    before = redis.dbsize()
    unknown = [{"entries": [("generic_key", "other")]}, {"entries": [("path", "/x")]}]
    for _ in range(5):
        r = s.check("edge", unknown)
        assert r["overall"] == "OK"
        assert [st["limit"] for st in r["statuses"]] == [None, None]
        assert s.check("other-domain", [ip])["overall"] == "OK"
    assert redis.dbsize() == before  # not counted
    # Statuses follow the request order; one over-limit descriptor makes the whole call so.
    r = s.check("edge", [{"entries": [("path", "/x")]}, ip])
    assert r["overall"] == "OVER_LIMIT"
    assert [st["code"] for st in r["statuses"]] == ["OK", "OVER_LIMIT"]


def test_bad_requests_invalid_argument_fails(services):
    s = services("--memory")
    cases = [
        ("", [login("192.0.2.1")], "domain"),
        (DOMAIN, [], "descriptors"),
        (DOMAIN, [login("192.0.2.1", (5, 0))], "descriptors[0].limit.unit"),
        (DOMAIN, [login("192.0.2.1", (5, 5))], "descriptors[0].limit.unit"),  # MONTH
        (DOMAIN, [login("192.0.2.1", (0, "minute"))], "descriptors[0].limit.requests_per_unit"),
        (DOMAIN, [{"entries": [("", "v")]}], "descriptors[0].entries[0]"),
    ]
    for domain, descriptors, field in cases:
        with pytest.raises(grpc.RpcError) as e:
            s.check(domain, descriptors)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert e.value.details().startswith(field), e.value.details()


# --- failures ------------------------------------------------------------------------------

def unavailable(service, descriptor, timeout):
    with pytest.raises(grpc.RpcError) as e:
        service.check(DOMAIN, [descriptor], timeout=timeout)
    return e.value.code()


def wait_ok(service, descriptor, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return service.check(DOMAIN, [descriptor], timeout=1)
        except grpc.RpcError:
            time.sleep(0.1)
    pytest.fail(f"no answer within {timeout}s:\n{service.logs()[-2000:]}")


def test_redis_stopped_then_restarted_ok(services):
    redis = Redis()
    try:
        a, b = services("--redis", redis.url), services("--redis", redis.url)
        d = login("198.51.100.50")
        assert [a.check(DOMAIN, [d])["overall"] for _ in range(3)] == ["OK"] * 3
        redis.stop()
        for s in (a, b):
            for _ in range(3):
                assert unavailable(s, d, timeout=1.0) == grpc.StatusCode.UNAVAILABLE
        redis.start()  # same port, empty: no restart of the service
        wait_ok(a, d)
        wait_ok(b, d)
        admitted, elapsed = burst([a, b], login("198.51.100.51"), 40)
        assert_exact(admitted, 5, 60, elapsed)
        assert "answers again" in a.logs()
    finally:
        redis.stop()


def test_redis_slow_unavailable_within_deadline_ok(redis, services):
    a = services("--redis", redis.url)
    d = login("198.51.100.60")
    assert a.check(DOMAIN, [d])["overall"] == "OK"
    redis.pause()
    try:
        # The service answers UNAVAILABLE before the caller's deadline runs out (a caller
        # that hit its own deadline would see DEADLINE_EXCEEDED instead).
        codes = [unavailable(a, d, timeout=t) for t in (0.3, 0.5, 1.0, 0.3)]
        assert codes == [grpc.StatusCode.UNAVAILABLE] * 4
    finally:
        redis.resume()
    wait_ok(a, d)
    admitted, elapsed = burst([a], login("198.51.100.61"), 40)
    assert_exact(admitted, 5, 60, elapsed)


def test_redis_absent_at_start_then_up_ok(services):
    redis = Redis()
    redis.stop()
    try:
        s = services("--redis", redis.url)
        d = login("198.51.100.70")
        assert unavailable(s, d, timeout=0.5) == grpc.StatusCode.UNAVAILABLE
        redis.start()
        assert wait_ok(s, d)["overall"] == "OK"
    finally:
        redis.stop()


# --- flags, limits file, logs ---------------------------------------------------------------

@pytest.mark.parametrize("args,names", [
    ([], "--listen"),
    (["--listen", "127.0.0.1:1"], "--redis"),
    (["--listen", "localhost:1", "--memory"], "--listen"),
    (["--listen", "127.0.0.1:1", "--redis", "http://127.0.0.1:6379"], "--redis"),
    (["--listen", "127.0.0.1:1", "--memory", "--redis", "redis://127.0.0.1:1"], "--redis"),
    (["--listen", "127.0.0.1:1", "--memory", "--limit", "x.json"], "--limit"),
    (["--listen", "127.0.0.1:1", "--memory", "--limits"], "--limits"),
])
def test_bad_flags_exit_2_fails(args, names):
    r = run_binary(*args)
    assert r.returncode == 2, r
    assert names in r.stderr, r.stderr


@pytest.mark.parametrize("content,names", [
    ("{not json", "not valid JSON"),
    ({"domain": "d", "descriptors": [{"key": "k", "limit": "5/15m"}]}, "descriptors[0].limit"),
    ({"domain": "d", "descriptors": [{"key": "k", "limit": "5/minute", "unit": "s"}]},
     "descriptors[0].unit"),
    ({"descriptors": [{"key": "k", "limit": "5/minute"}]}, "`domain`"),
    ([{"domain": "d", "descriptors": [{"key": "k", "limit": "1/s"}]},
      {"domain": "d", "descriptors": [{"key": "k", "limit": "1/s"}]}], "[1].domain"),
])
def test_bad_limits_file_exit_2_fails(tmp_path, content, names):
    path = write_limits(tmp_path, content)
    r = run_binary("--listen", "127.0.0.1:1", "--memory", "--limits", path)
    assert r.returncode == 2, r
    assert names in r.stderr and str(path) in r.stderr, r.stderr


def test_missing_limits_file_exit_2_fails(tmp_path):
    r = run_binary("--listen", "127.0.0.1:1", "--memory", "--limits", tmp_path / "nope.json")
    assert r.returncode == 2
    assert "cannot read" in r.stderr


def test_logs_hold_no_descriptor_values_above_debug_ok(redis, services):
    ip = "203.0.113.77"
    quiet = services("--redis", redis.url)
    for _ in range(7):
        quiet.check(DOMAIN, [login(ip)])
    redis.stop()
    with pytest.raises(grpc.RpcError):
        quiet.check(DOMAIN, [login(ip)], timeout=0.5)
    time.sleep(0.2)
    assert "UNAVAILABLE" in quiet.logs()
    assert ip not in quiet.logs()
    chatty = services("--memory", env={"KEYGATE_LOG": "debug"})
    chatty.check(DOMAIN, [login(ip)])
    time.sleep(0.2)
    assert ip in chatty.logs()  # the same check can fail: values do appear at debug
