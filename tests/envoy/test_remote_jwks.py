"""`remote_jwks` end to end: a real Envoy (--concurrency 2) with dist/keygate_envoy.wasm fetching
its keys from a JWKS server this test controls (Python http.server on a free 127.0.0.1 port),
with keys and tokens made by an independent library (PyJWT + cryptography)."""
import concurrent.futures
import copy
import http.client
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from conftest import Envoy, _base_ids, envoy_binary, example_plugin_config, free_port, render
from conftest import validate_config

BASE = example_plugin_config()
ISS, AUD = BASE["issuer"], BASE["audiences"][0]
JWKS_PATH = "/.well-known/jwks.json"


# --- keys and tokens (PyJWT + cryptography) -------------------------------------------------

class Key:
    def __init__(self, kind="ed", kid=None, use=None):
        self.kid = kid or f"{kind}-{uuid.uuid4().hex[:8]}"
        if kind == "ed":
            self.private = ed25519.Ed25519PrivateKey.generate()
            self.alg, jwk = "EdDSA", OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif kind == "es256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg, jwk = "ES256", ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif kind == "es384":
            self.private = ec.generate_private_key(ec.SECP384R1())
            self.alg, jwk = "ES384", ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        elif kind == "rs256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg, jwk = "RS256", RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            raise ValueError(kind)
        jwk["kid"] = self.kid
        if use:
            jwk["use"] = use
        self.jwk = jwk

    def token(self, sub="alice", roles=("doctor",), kid=None):
        now = int(time.time())
        c = {"sub": sub, "type": "access", "roles": list(roles), "iat": now, "exp": now + 900,
             "iss": ISS, "aud": AUD}
        return jwt.encode(c, self.private, algorithm=self.alg,
                          headers={"kid": kid or self.kid})


# --- the JWKS server ------------------------------------------------------------------------

class JwksServer:
    """Serves `body` at JWKS_PATH with `status`, after `delay` seconds; counts fetches. `stop()`
    closes the port (connection refused); `start()` listens on the same port again."""

    def __init__(self):
        self.port = free_port()
        self.body, self.status, self.delay = json.dumps({"keys": []}).encode(), 200, 0.0
        self.fetches = 0
        self.lock = threading.Lock()
        self.httpd = None

    def publish(self, *keys, extra=()):
        self.body = json.dumps({"keys": [k.jwk for k in keys] + list(extra)}).encode()
        self.status, self.delay = 200, 0.0
        return self

    def count(self):
        with self.lock:
            return self.fetches

    def start(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with server.lock:
                    server.fetches += 1
                body, status, delay = server.body, server.status, server.delay
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    # No keep-alive: after stop() every fetch finds the port closed.
                    self.send_header("connection", "close")
                    self.close_connection = True
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # Envoy gave up (timeout, body too large)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def plugin(remote, inline=None):
    cfg = copy.deepcopy(BASE)
    del cfg["jwks"]
    cfg["remote_jwks"] = remote
    if inline:
        cfg["jwks"] = {"keys": inline}
    return cfg


class RemoteEnvoy(Envoy):
    """conftest's Envoy plus a `jwks` cluster pointing at the test's JWKS server."""

    def __init__(self, plugin_config, upstream_port, jwks_port, concurrency=2):
        self.port, self.admin_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix="keygate-envoy-remote-")
        doc = render(plugin_config, self.port, self.admin_port, upstream_port)
        doc["static_resources"]["clusters"].append(jwks_cluster(jwks_port))
        self.config_path = os.path.join(self.dir, "envoy.yaml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(doc, f)
        self.log_path = os.path.join(self.dir, "envoy.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [envoy_binary(), "-c", self.config_path, "--base-id", str(next(_base_ids)),
             "--concurrency", str(concurrency), "-l", "info", "--disable-hot-restart"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()
        self.ready_secs = self._wait_ready()

    def get(self, token, path="/records"):
        return self.request("GET", path, token=token)


def jwks_cluster(port):
    return {"name": "jwks", "type": "STATIC", "connect_timeout": "0.25s",
            "load_assignment": {"cluster_name": "jwks", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                             "port_value": port}}}}]}]}}


def remote(port, **over):
    r = {"cluster": "jwks", "uri": f"http://127.0.0.1:{port}{JWKS_PATH}", "cache_secs": 30,
         "timeout_ms": 500, "min_refetch_secs": 1}
    r.update(over)
    return r


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def assert_code(r, status, code):
    assert r.status == status, r
    assert r.body["error"] == code, r


def each_worker(e, token, n=12):
    """`n` requests on fresh connections (Envoy spreads connections over its workers)."""
    return [e.get(token) for _ in range(n)]


@pytest.fixture
def jwks_server():
    s = JwksServer()
    yield s
    s.stop()


def started(e):
    """Both workers have their first key set (every fresh connection is answered 200)."""
    return lambda: all(r.status == 200 for r in each_worker(e, e.probe, 6))


# --- rotation -------------------------------------------------------------------------------

def test_rotation_new_kid_at_once_old_kid_until_refreshed(upstream, jwks_server):
    old, new = Key("ed"), Key("es256")
    jwks_server.publish(old).start()
    e = RemoteEnvoy(plugin(remote(jwks_server.port)), upstream, jwks_server.port)
    try:
        e.probe = old.token()
        wait_for(started(e), 10, "the first key set")
        assert e.stat("keygate.jwks_fetched") >= 2, "each worker VM fetched"
        assert e.stat("keygate.jwks_keys") == 1
        # The issuer starts publishing `new` next to `old`.
        jwks_server.publish(old, new)
        time.sleep(1.1)  # past min_refetch_secs since every VM's last fetch
        r = e.get(new.token())
        assert r.status == 200, r
        assert r.body["headers"]["x-user-id"] == "alice"
        assert all(r.status == 200 for r in each_worker(e, new.token()))
        # `old` keeps working while it is published; `t_old` is now in every VM's
        # verified-token cache (served from it on the repeats).
        t_old = old.token()
        assert all(r.status == 200 for r in each_worker(e, t_old))
        # Retired: refused once every VM has refreshed (cache_secs 30, the minimum): the
        # installed set empties the cache, so the cached token is verified again and refused.
        jwks_server.publish(new)

        def old_refused():
            rs = each_worker(e, t_old, 8)
            return all(r.status == 401 and r.body["error"] == "token_unknown_key" for r in rs)

        wait_for(old_refused, 45, "the retired key to be refused everywhere")
        assert all(r.status == 200 for r in each_worker(e, new.token()))
        assert e.stat("keygate.jwks_fetch_failed") == 0
        assert "keygate: JWKS from cluster `jwks`: 1 keys" in e.logs()
    finally:
        e.stop()


# --- the JWKS server down -------------------------------------------------------------------

def test_down_at_start_503_then_200_without_restart(upstream, jwks_server):
    key = Key("ed")
    jwks_server.publish(key)  # not started: connection refused
    e = RemoteEnvoy(plugin(remote(jwks_server.port)), upstream, jwks_server.port)
    try:
        r = e.get(key.token())
        assert_code(r, 503, "jwks_unavailable")
        assert r.headers["retry-after"] == "1"
        # Decided without keys, as before.
        assert e.request("GET", "/api/auth/ping").status == 200
        assert_code(e.request("GET", "/api/records"), 401, "token_missing")
        wait_for(lambda: (e.stat("keygate.jwks_fetch_failed") or 0) >= 2, 10, "failed fetches")
        assert "JWKS fetch from cluster `jwks` failed: status 503" in e.logs()
        jwks_server.start()
        e.probe = key.token()
        wait_for(started(e), 20, "the key set once the server is up")
        # Down later: the last good set keeps serving; an unknown kid is refused as unknown.
        jwks_server.stop()
        failed = e.stat("keygate.jwks_fetch_failed")
        time.sleep(1.1)
        assert_code(e.get(Key("ed").token()), 401, "token_unknown_key")
        assert e.stat("keygate.jwks_fetch_failed") > failed, "the refetch failed"
        assert all(r.status == 200 for r in each_worker(e, key.token()))
    finally:
        e.stop()


# --- bad answers ----------------------------------------------------------------------------

def test_bad_answers_keep_the_last_good_set(upstream, jwks_server):
    key = Key("ed")
    jwks_server.publish(key).start()
    e = RemoteEnvoy(plugin(remote(jwks_server.port, timeout_ms=300)), upstream,
                    jwks_server.port)
    try:
        e.probe = key.token()
        wait_for(started(e), 10, "the first key set")
        unusable = [
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": Key("rs256").jwk["n"], "e": "AQAB"},
            Key("es384").jwk,
            {"kty": "kyber", "kid": "pq"},
        ]
        bad = {
            "garbage": lambda: setattr(jwks_server, "body", b"<html>not json"),
            "not a set": lambda: setattr(jwks_server, "body", b'{"kids": []}'),
            "10 MB body": lambda: setattr(jwks_server, "body", b" " * (10 * 1024 * 1024)),
            "slow": lambda: setattr(jwks_server, "delay", 1.0),
            "only unusable keys": lambda: jwks_server.publish(extra=unusable),
            "status 500": lambda: setattr(jwks_server, "status", 500),
        }
        for name, spoil in bad.items():
            jwks_server.publish(key)
            spoil()
            failed, fetches = e.stat("keygate.jwks_fetch_failed") or 0, jwks_server.count()
            time.sleep(1.1)
            # An unknown kid makes the worker refetch; the answer is refused.
            r = e.get(Key("ed").token())
            assert_code(r, 401, "token_unknown_key")
            assert jwks_server.count() > fetches, name
            assert e.stat("keygate.jwks_fetch_failed") > failed, name
            assert e.proc.poll() is None, f"Envoy died on {name}"
            assert all(r.status == 200 for r in each_worker(e, key.token(), 4)), name
        logs = e.logs()
        for why in ["not a JWK Set: the body is not JSON", "has no `keys` array",
                    "over the 65536-byte limit", "no answer within 300 ms",
                    "no usable key (3 skipped", "status 500, expected 200"]:
            assert why in logs, why
        assert key.jwk["x"] not in logs, "no key material in logs"
    finally:
        e.stop()


# --- random kids ----------------------------------------------------------------------------

def test_random_kids_cost_one_fetch_per_vm_per_floor(upstream, jwks_server):
    floor = 3
    key = Key("ed")
    jwks_server.publish(key).start()
    e = RemoteEnvoy(plugin(remote(jwks_server.port, min_refetch_secs=floor)), upstream,
                    jwks_server.port)
    try:
        e.probe = key.token()
        wait_for(started(e), 10, "the first key set")
        time.sleep(floor + 0.1)
        before = jwks_server.count()
        signer = Key("ed")
        tokens = [signer.token(kid=uuid.uuid4().hex) for _ in range(1000)]

        def burst(chunk):
            conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
            codes = []
            for t in chunk:
                conn.request("GET", "/records", headers={"authorization": f"Bearer {t}"})
                r = conn.getresponse()
                codes.append((r.status, json.loads(r.read())["error"]))
            conn.close()
            return codes

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = [c for part in pool.map(burst, [tokens[i::8] for i in range(8)]) for c in part]
        took = time.monotonic() - t0
        fetched = jwks_server.count() - before
        assert codes == [(401, "token_unknown_key")] * 1000
        vms = 2
        bound = vms * (1 + int(took // floor))
        assert 1 <= fetched <= bound, (fetched, bound, took)
    finally:
        e.stop()


# --- mixed sets, inline + remote, waiting requests ------------------------------------------

def test_idp_style_mixed_set(upstream, jwks_server):
    ed, es, rs = Key("ed"), Key("es256"), Key("rs256")
    enc, p384 = Key("rs256", use="enc"), Key("es384")
    jwks_server.publish(enc, p384, ed, es, rs, extra=[{"kty": "kyber", "kid": "pq", "x": "AA"}])
    jwks_server.start()
    e = RemoteEnvoy(plugin(remote(jwks_server.port)), upstream, jwks_server.port)
    try:
        e.probe = ed.token()
        wait_for(started(e), 10, "the key set")
        for k in (ed, es, rs):
            assert all(r.status == 200 for r in each_worker(e, k.token(), 4)), k.alg
        assert e.stat("keygate.jwks_keys") == 3
        assert_code(e.get(enc.token()), 401, "token_unknown_key")
        assert_code(e.get(p384.token()), 401, "token_algorithm_not_allowed")
        assert "3 keys (3 skipped: `keys[0].use`" in e.logs()
    finally:
        e.stop()


def test_symmetric_keys_in_a_fetched_set_are_skipped_unless_allowed(upstream, jwks_server):
    # A JWKS is public: an HMAC secret published in it would let any reader mint tokens.
    ed = Key("ed")
    secret = b"s" * 32
    oct_jwk = {"kty": "oct", "kid": "o1", "alg": "HS256",
               "k": jwt.utils.base64url_encode(secret).decode()}
    now = int(time.time())
    forged = jwt.encode({"sub": "mallory", "type": "access", "roles": ["admin"], "iat": now,
                         "exp": now + 900, "iss": ISS, "aud": AUD}, secret, algorithm="HS256",
                        headers={"kid": "o1"})
    jwks_server.publish(ed, extra=[oct_jwk]).start()
    e = RemoteEnvoy(plugin(remote(jwks_server.port)), upstream, jwks_server.port)
    try:
        e.probe = ed.token()
        wait_for(started(e), 10, "the key set")
        assert_code(e.get(forged), 401, "token_unknown_key")
        assert "insecure_allow_symmetric" in e.logs()
        assert e.stat("keygate.jwks_keys") == 1
    finally:
        e.stop()
    e = RemoteEnvoy(plugin(remote(jwks_server.port, insecure_allow_symmetric=True)), upstream,
                    jwks_server.port)
    try:
        e.probe = ed.token()
        wait_for(started(e), 10, "the key set")
        assert e.get(forged).status == 200  # the explicit opt-in
    finally:
        e.stop()


def test_inline_and_remote_together(upstream, jwks_server):
    inline, fetched = Key("es256"), Key("ed")
    jwks_server.publish(fetched).start()
    e = RemoteEnvoy(plugin(remote(jwks_server.port), inline=[inline.jwk]), upstream,
                    jwks_server.port)
    try:
        e.probe = fetched.token()
        wait_for(started(e), 10, "the key set")
        assert all(r.status == 200 for r in each_worker(e, inline.token(), 4))
        # The issuer down and every fetched key gone: inline keys still verify.
        jwks_server.publish()
        jwks_server.stop()
        assert all(r.status == 200 for r in each_worker(e, inline.token(), 4))
    finally:
        e.stop()


def test_waiting_request_with_body_is_held_then_decided(upstream, jwks_server):
    old, new = Key("ed"), Key("ed")
    jwks_server.publish(old).start()
    e = RemoteEnvoy(plugin(remote(jwks_server.port, timeout_ms=3000)), upstream,
                    jwks_server.port)
    try:
        e.probe = old.token()
        wait_for(started(e), 10, "the first key set")
        jwks_server.publish(old, new)
        jwks_server.delay = 0.5
        time.sleep(1.1)
        # The body arrives while the request waits for the refetch: nothing reaches the
        # upstream before the decision, and the resumed request gets its claim headers.
        r = e.request("POST", "/api/records", token=new.token(sub="bob"), body=b"x" * 5000,
                      headers={"x-user-id": "forged"})
        assert r.status == 200, r
        assert r.body["header_values"]["x-user-id"] == ["bob"]
        assert "ratelimit" in r.headers, "response headers of a resumed request"
        time.sleep(1.1)
        r = e.request("POST", "/api/records", token=Key("ed").token(), body=b"y" * 5000)
        assert_code(r, 401, "token_unknown_key")
    finally:
        e.stop()


# --- with issue 8: shadow mode, forward_token, duplicated tokens ----------------------------

def test_shadow_mode_with_remote_jwks(upstream, jwks_server):
    key, new = Key("ed"), Key("es256")
    jwks_server.publish(key)  # not started: connection refused
    cfg = plugin(remote(jwks_server.port))
    cfg["mode"] = "shadow"
    e = RemoteEnvoy(cfg, upstream, jwks_server.port, concurrency=1)
    try:
        t = key.token()
        # No key set yet: the would-be 503 is logged and counted, the request goes upstream
        # untouched except for the claim headers (forged ones stripped, none set).
        r = e.request("GET", "/records", token=t, headers={"x-user-id": "admin"})
        assert r.status == 200 and r.body["path"] == "/records", r
        assert "x-user-id" not in r.body["headers"], r.body
        assert r.body["headers"]["authorization"] == f"Bearer {t}"
        assert "retry-after" not in r.headers
        wait_for(lambda: (e.stat("keygate.shadow.jwks_unavailable") or 0) >= 1, 5,
                 "the shadow 503 counter")
        assert "would refuse 503 jwks_unavailable (rules[4]): GET /records" in e.logs()
        # The server comes up: verified tokens get their claim headers.
        jwks_server.start()

        def verified():
            r = e.get(t)
            return r.status == 200 and r.body["headers"].get("x-user-id") == "alice"

        wait_for(verified, 20, "the key set once the server is up")
        # A new kid waits for the refetch, then is decided (and allowed) on the new set.
        jwks_server.publish(key, new)
        time.sleep(1.1)
        fetches = jwks_server.count()
        r = e.request("GET", "/records", token=new.token(sub="bob"),
                      headers={"x-user-id": "admin"})
        assert r.status == 200 and r.body["header_values"]["x-user-id"] == ["bob"], r
        assert jwks_server.count() > fetches, "the request waited for a refetch"
        # Still unknown after the refetch: a would-be 401, logged after the resume.
        time.sleep(1.1)
        stranger = Key("ed").token()
        fetches, denied = jwks_server.count(), e.stat("keygate.shadow.denied_401") or 0
        r = e.request("GET", "/records?q=1", token=stranger, headers={"x-user-id": "admin"})
        assert r.status == 200 and "x-user-id" not in r.body["headers"], r
        assert jwks_server.count() > fetches, "the request waited for a refetch"
        wait_for(lambda: (e.stat("keygate.shadow.denied_401") or 0) > denied, 5,
                 "the shadow 401 counter")
        logs = e.logs()
        assert "would refuse 401 token_unknown_key (rules[4]): GET /records" in logs, logs[-3000:]
        assert (e.stat("keygate.shadow.allowed") or 0) >= 2
        for name in ("keygate.allowed", "keygate.denied_401", "keygate.jwks_unavailable"):
            assert e.stat(name) in (None, 0), name
        for token in (t, stranger):
            assert token.split(".")[2] not in logs, "never a token in the log"
        assert "q=1" not in logs
    finally:
        e.stop()


def test_forward_token_false_after_a_refetch_wait(upstream, jwks_server):
    old, new, newer = Key("ed"), Key("ed"), Key("es256")
    jwks_server.publish(old).start()
    cfg = plugin(remote(jwks_server.port, timeout_ms=3000))
    cfg["forward_token"] = False
    e = RemoteEnvoy(cfg, upstream, jwks_server.port)
    try:
        e.probe = old.token()
        wait_for(started(e), 10, "the first key set")
        # The token cookie on the second of two Cookie lines, its key not loaded yet: the
        # request waits for the refetch (slowed down), then goes up without the token cookie.
        jwks_server.publish(old, new)
        jwks_server.delay = 0.3
        time.sleep(1.1)
        fetches = jwks_server.count()
        r = e.raw("GET", "/records", [("cookie", "a=1"),
                                      ("cookie", f"__Host-access={new.token(sub='bob')}; b=2")])
        assert r.status == 200, r
        assert jwks_server.count() > fetches, "the request waited for a refetch"
        assert r.body["header_values"]["cookie"] == ["a=1; b=2"], r.body
        assert r.body["header_values"]["x-user-id"] == ["bob"], r.body
        # A Bearer token after a wait: the Authorization header is removed; the `sub` limit's
        # RateLimit headers still come back.
        jwks_server.publish(old, new, newer)
        time.sleep(1.1)
        fetches = jwks_server.count()
        r = e.request("GET", "/api/records", token=newer.token(sub="carol"))
        assert r.status == 200, r
        assert jwks_server.count() > fetches, "the request waited for a refetch"
        assert "authorization" not in r.body["header_values"], r.body
        assert r.body["header_values"]["x-user-id"] == ["carol"], r.body
        assert "ratelimit" in r.headers, r.headers
        # A token in two places is refused at once, without fetching for its unknown kid.
        time.sleep(1.1)
        stranger = Key("ed").token()
        fetches = jwks_server.count()
        r = e.request("GET", "/records", token=stranger,
                      headers={"cookie": f"__Host-access={stranger}"})
        assert_code(r, 400, "invalid_request")
        assert jwks_server.count() == fetches, "a duplicated token never waits for keys"
    finally:
        e.stop()


# --- configuration refused ------------------------------------------------------------------

BAD_REMOTE = {
    "remote_jwks.cluster": {"uri": "http://a/j"},
    "remote_jwks.uri": {"cluster": "jwks", "uri": "ftp://a/j"},
    "remote_jwks.cache_secs": {"cluster": "jwks", "uri": "http://a/j", "cache_secs": 10},
    "remote_jwks.timeout_ms": {"cluster": "jwks", "uri": "http://a/j", "timeout_ms": 50000},
    "remote_jwks.min_refetch_secs": {"cluster": "jwks", "uri": "http://a/j",
                                     "min_refetch_secs": 0},
    "remote_jwks.refresh": {"cluster": "jwks", "uri": "http://a/j", "refresh": 5},
}


@pytest.mark.parametrize("field", sorted(BAD_REMOTE))
def test_bad_remote_jwks_refused_naming_the_field(field):
    code, out = validate_config(json.dumps(plugin(BAD_REMOTE[field])))
    assert code != 0
    assert f"invalid config `{field}`" in out, out[-2000:]


def test_neither_jwks_nor_remote_refused():
    cfg = copy.deepcopy(BASE)
    del cfg["jwks"]
    code, out = validate_config(json.dumps(cfg))
    assert code != 0
    assert "invalid config `jwks`" in out, out[-2000:]


def test_remote_config_validates():
    code, out = validate_config(json.dumps(plugin(remote(free_port()))))
    assert code == 0, out[-2000:]
