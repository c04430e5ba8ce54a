"""keygate's Envoy filter, end to end: a real Envoy with dist/keygate_envoy.wasm, tokens from
PyJWT (independent) and from the keygate core (tests/support/mint.rs)."""
import base64
import concurrent.futures
import copy
import http.client
import json
import pathlib
import subprocess
import threading
import time
import uuid

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm

from conftest import ROOT, Envoy, example_plugin_config, validate_config

VECTORS = json.loads((ROOT / "tests/vectors/vectors.json").read_text())
PUBLIC = {k["kid"]: k for k in VECTORS["jwt"]["public_jwks"]["keys"]}
PRIVATE = {k["kid"]: k for k in VECTORS["jwt"]["private_jwks"]["keys"]}
MINT = ROOT / "target/debug/examples/mint"


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


CONFIG = example_plugin_config()
# The example's HS256 key, plus the test vectors' asymmetric public keys.
CONFIG["jwks"]["keys"] += [PUBLIC["ed"], PUBLIC["es"], PUBLIC["rs"]]
SECRET = b64u_decode(CONFIG["jwks"]["keys"][0]["k"])
ISS, AUD = CONFIG["issuer"], CONFIG["audiences"][0]


def claims(sub=None, roles=("doctor",), ttl=900, **extra):
    now = int(time.time())
    c = {"sub": sub or f"u-{uuid.uuid4().hex[:12]}", "type": "access", "roles": list(roles),
         "iat": now, "exp": now + ttl, "iss": ISS, "aud": AUD}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def pyjwt(c, alg="HS256", kid="k1", key=SECRET):
    return jwt.encode(c, key, algorithm=alg, headers={"kid": kid} if kid else None)


def core_token(c, jwk):
    """A token minted by keygate's own core (SigningKey::from_jwk + encode)."""
    if not MINT.exists():
        pytest.fail(f"{MINT} missing: `make build` builds it")
    out = subprocess.run([str(MINT), json.dumps(c), json.dumps(jwk)], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def envoy(upstream, envoy_bin):
    e = Envoy(CONFIG, upstream)
    yield e
    # Envoy must still be serving after everything the suite threw at it.
    assert e.proc.poll() is None, "Envoy died during the suite"
    assert e.request("GET", "/api/auth/ping").status == 200
    e.stop()


def assert_401(r, code):
    assert r.status == 401, r
    assert r.body["error"] == code, r
    assert r.body["message"]
    www = r.headers["www-authenticate"]
    assert www.startswith('Bearer realm="keygate"'), www
    assert 'error="invalid_token"' in www, www
    assert "error_description=" in www


# --- allow / deny by rule -----------------------------------------------------------------

def test_public_route_needs_no_token(envoy):
    r = envoy.request("GET", "/api/auth/ping")
    assert r.status == 200 and r.body["path"] == "/api/auth/ping"


def test_missing_token_is_401_without_error_attribute(envoy):
    r = envoy.request("GET", "/api/records")
    assert r.status == 401 and r.body["error"] == "token_missing", r
    assert r.headers["www-authenticate"] == 'Bearer realm="keygate"'
    assert r.headers["content-type"].startswith("application/json")


def test_pyjwt_token_allowed_with_claim_headers(envoy):
    c = claims(roles=["doctor", "nurse"])
    r = envoy.request("GET", "/api/records", token=pyjwt(c))
    assert r.status == 200, r
    assert r.body["headers"]["x-user-id"] == c["sub"]
    assert r.body["headers"]["x-user-roles"] == "doctor,nurse"
    assert "authorization" in r.body["headers"]  # the token still reaches the upstream


@pytest.mark.parametrize("kid", ["k1", "ed", "es"])
def test_core_minted_tokens_allowed(envoy, kid):
    jwk = ({"kty": "oct", "kid": "k1", "alg": "HS256", "k": CONFIG["jwks"]["keys"][0]["k"]}
           if kid == "k1" else PRIVATE[kid])
    c = claims()
    r = envoy.request("GET", "/api/records", token=core_token(c, jwk))
    assert r.status == 200, r
    assert r.body["headers"]["x-user-id"] == c["sub"]


@pytest.mark.parametrize("alg,kid", [("EdDSA", "ed"), ("ES256", "es"), ("RS256", "rs")])
def test_pyjwt_asymmetric_tokens_allowed(envoy, alg, kid):
    key = RSAAlgorithm.from_jwk(json.dumps(_rsa_private_jwk())) if alg == "RS256" else None
    if alg == "EdDSA":
        key = jwt.algorithms.OKPAlgorithm.from_jwk(json.dumps(PRIVATE["ed"]))
    if alg == "ES256":
        key = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(PRIVATE["es"]))
    r = envoy.request("GET", "/api/records", token=pyjwt(claims(), alg=alg, kid=kid, key=key))
    assert r.status == 200, r


def _rsa_private_jwk():
    from cryptography.hazmat.primitives import serialization
    pem = (ROOT / "tests/vectors/rsa_test_key.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    return json.loads(RSAAlgorithm.to_jwk(key))


def test_cookie_token_source(envoy):
    c = claims()
    r = envoy.request("GET", "/api/records", headers={"cookie": f"a=b; __Host-access={pyjwt(c)}"})
    assert r.status == 200, r
    assert r.body["headers"]["x-user-id"] == c["sub"]


def test_forged_identity_headers_are_stripped(envoy):
    r = envoy.request("GET", "/api/auth/ping", headers={"x-user-id": "admin",
                                                          "x-user-roles": "admin"})
    assert r.status == 200
    assert "x-user-id" not in r.body["headers"] and "x-user-roles" not in r.body["headers"]
    c = claims(roles=["nurse"])
    r = envoy.request("GET", "/api/records", token=pyjwt(c),
                      headers={"x-user-id": "admin", "x-user-roles": "admin"})
    assert r.body["headers"]["x-user-id"] == c["sub"]
    assert r.body["headers"]["x-user-roles"] == "nurse"


def test_underscore_variant_of_identity_header_refused(envoy):
    # Some upstreams (CGI/WSGI) read x_user_id as x-user-id; the example config makes Envoy
    # refuse such requests outright.
    r = envoy.request("GET", "/api/auth/ping", headers={"x_user_id": "admin"})
    assert r.status == 400, r


def assert_400(r):
    assert r.status == 400, r
    assert r.body["error"] == "invalid_request", r
    www = r.headers["www-authenticate"]
    assert www.startswith('Bearer realm="keygate", error="invalid_request"'), www


def test_duplicate_token_cookie_refused(envoy):
    a, b = pyjwt(claims(roles=["nurse"])), pyjwt(claims(roles=["admin"]))
    r = envoy.request("GET", "/api/records",
                      headers={"cookie": f"__Host-access={a}; __Host-access={b}"})
    assert_400(r)


def test_every_cookie_line_is_read(envoy):
    # HTTP/1.1: Envoy keeps repeated Cookie lines as separate headers.
    good, forged = pyjwt(claims(roles=["nurse"])), _tamper(pyjwt(claims(roles=["nurse"])))
    for lines in ([("cookie", f"__Host-access={good}"), ("cookie", f"__Host-access={forged}")],
                  [("cookie", "a=1"), ("cookie", f"x=2; __Host-access={good}"),
                   ("cookie", f"__Host-access={good}")]):
        for path in ("/api/records", "/admin/users", "/api/auth/ping"):
            assert_400(envoy.raw("GET", path, lines))
    c = claims()
    r = envoy.raw("GET", "/api/records", [("cookie", "a=b"), ("cookie", f"__Host-access={pyjwt(c)}")])
    assert r.status == 200, r
    assert r.body["headers"]["x-user-id"] == c["sub"]


def test_token_in_header_and_cookie_refused(envoy):
    a, b = pyjwt(claims(roles=["nurse"])), pyjwt(claims(roles=["admin"]))
    assert_400(envoy.request("GET", "/admin/users", token=b, headers={"cookie": f"__Host-access={a}"}))
    assert_400(envoy.raw("GET", "/api/records", [("authorization", f"Bearer {a}"),
                                                  ("cookie", "z=1"), ("cookie", f"__Host-access={b}")]))


def test_forward_token_false_removes_it(upstream):
    cfg = copy.deepcopy(CONFIG)
    cfg["forward_token"] = False
    e = Envoy(cfg, upstream)
    try:
        c = claims()
        r = e.request("GET", "/api/records", token=pyjwt(c))
        assert r.status == 200, r
        assert "authorization" not in r.body["header_values"], r.body
        assert r.body["headers"]["x-user-id"] == c["sub"]
        r = e.raw("GET", "/api/records", [("cookie", f"a=1; __Host-access={pyjwt(c)}"),
                                           ("cookie", "b=2")])
        assert r.status == 200, r
        assert r.body["header_values"]["cookie"] == ["a=1; b=2"], r.body
        r = e.raw("GET", "/api/auth/ping", [("cookie", "__Host-access=junk")])
        assert r.status == 200 and "cookie" not in r.body["header_values"], r.body
        # A comma-joined pair is a cookie of its own: only the token goes.
        r = e.raw("GET", "/api/records", [("cookie", f"a=1, __Host-access={pyjwt(c)}; b=2")])
        assert r.status == 200, r
        assert r.body["header_values"]["cookie"] == ["a=1; b=2"], r.body
    finally:
        e.stop()
    # Shadow mode keeps `forward_token: false`: a rollout must not leak what is kept back.
    cfg["mode"] = "shadow"
    e = Envoy(cfg, upstream)
    try:
        r = e.request("GET", "/admin/users", token=pyjwt(claims(roles=["nurse"])))
        assert r.status == 200 and "authorization" not in r.body["header_values"], r.body
    finally:
        e.stop()


def test_repeated_forged_identity_headers_are_replaced(envoy):
    # The filter sets claim headers with replace semantics instead of remove + set: every
    # incoming copy must be gone, only the verified value reaches the upstream.
    c = claims(roles=["nurse"])
    conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10)
    try:
        conn.putrequest("GET", "/api/records")
        conn.putheader("authorization", f"Bearer {pyjwt(c)}")
        for forged in ("admin", "root"):
            conn.putheader("x-user-id", forged)
            conn.putheader("x-user-roles", forged)
        conn.endheaders()
        r = conn.getresponse()
        body = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 200
    assert body["header_values"]["x-user-id"] == [c["sub"]]
    assert body["header_values"]["x-user-roles"] == ["nurse"]


def test_duplicate_authorization_header_refused(envoy):
    # Whether Envoy keeps both lines or folds them, no single copy may be trusted.
    a, b = pyjwt(claims(roles=["nurse"])), pyjwt(claims(roles=["admin"]))
    conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=10)
    try:
        conn.putrequest("GET", "/admin/users")
        conn.putheader("authorization", f"Bearer {a}")
        conn.putheader("authorization", f"Bearer {b}")
        conn.endheaders()
        r = conn.getresponse()
        body = json.loads(r.read())
    finally:
        conn.close()
    assert r.status == 400 and body["error"] == "invalid_request", body


def test_admin_role_required(envoy):
    r = envoy.request("GET", "/admin/users", token=pyjwt(claims(roles=["doctor"])))
    assert r.status == 403, r
    assert r.body["error"] == "forbidden"
    www = r.headers["www-authenticate"]
    assert www.startswith('Bearer realm="keygate"') and 'error="insufficient_scope"' in www
    assert envoy.request("GET", "/admin/users", token=pyjwt(claims(roles=["admin"]))).status == 200
    assert envoy.request("GET", "/admin/users").status == 401


def test_permissions_via_roles_map(envoy):
    assert envoy.request("GET", "/api/patients/7", token=pyjwt(claims(roles=["nurse"]))).status == 200
    assert envoy.request("GET", "/api/patients/7", token=pyjwt(claims(roles=["admin"]))).status == 200
    r = envoy.request("GET", "/api/patients/7", token=pyjwt(claims(roles=["guest"])))
    assert r.status == 403 and r.body["error"] == "forbidden"
    # A permissions claim grants directly.
    c = claims(roles=[], permissions=["patients:read"])
    assert envoy.request("GET", "/api/patients/7", token=pyjwt(c)).status == 200
    # Every other method needs patients:write: the GET-only rule's other methods must not fall
    # through to the catch-all (issue 14's trap; the example carries the second rule).
    r = envoy.request("POST", "/api/patients/7", token=pyjwt(claims(roles=["guest"])), body=b"{}")
    assert r.status == 403 and r.body["error"] == "forbidden"
    r = envoy.request("DELETE", "/api/patients/7", token=pyjwt(claims(roles=["nurse"])))
    assert r.status == 403
    assert envoy.request("POST", "/api/patients/7", token=pyjwt(claims(roles=["doctor"])),
                         body=b"{}").status == 200


def test_request_and_response_bodies_pass(envoy):
    # The module exports no response-body callback (filters/exports.json): Envoy passes the
    # response body on by itself. A request body passes the filter's on_request_body whole.
    body, c = b"z" * 65536, claims(roles=["doctor"])
    r = envoy.request("POST", "/api/patients/7", token=pyjwt(c), body=body)
    assert r.status == 200, r
    assert r.body["method"] == "POST"
    assert r.body["header_values"]["content-length"] == [str(len(body))]
    assert r.body["header_values"]["x-user-id"] == [c["sub"]]


def test_dot_segments_cannot_reach_admin(envoy):
    tok = pyjwt(claims(roles=["doctor"]))
    for path in ("/api/../admin/users", "/api/auth/../../admin/users", "//admin/users"):
        r = envoy.request("GET", path, token=tok)
        assert r.status in (400, 403, 404), (path, r)
    r = envoy.request("GET", "/api/auth/%2e%2e/%2e%2e/admin/users", token=tok)
    assert r.status != 200 or r.body["path"] != "/admin/users", r


def test_no_rule_matched_is_403(upstream):
    cfg = copy.deepcopy(CONFIG)
    cfg["rules"] = [{"prefix": "/open", "allow": "public"}]
    cfg["rate_limits"] = []
    e = Envoy(cfg, upstream)
    try:
        assert e.request("GET", "/open/x").status == 200
        r = e.request("GET", "/elsewhere", token=pyjwt(claims(roles=["admin"])))
        assert r.status == 403 and r.body["error"] == "forbidden", r
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        # RFC 6750 §3.1: no credentials, no `error` attribute, on a 403 too.
        r = e.request("GET", "/elsewhere")
        assert r.status == 403 and r.headers["www-authenticate"] == 'Bearer realm="keygate"', r
    finally:
        e.stop()


def test_trailing_slash_never_skips_the_rule_as_written(upstream):
    # Review finding: an exact `path` rule also matched the path with a trailing slash, so a
    # public `/api/items` took `/api/items/` from the admin-only `/api/items/` prefix written for
    # it. Now a rule met only through the other spelling also needs the rule the path as written
    # meets (`/api/items/` needs admin), while a rule the path as written meets first decides
    # alone (`/api/items` and `/health` stay public before an authenticated catch-all), and
    # `/admin/users/` still meets the exact `/admin/users` rule.
    cfg = copy.deepcopy(CONFIG)
    cfg["rules"] = [
        {"path": "/api/items", "allow": "public"},
        {"prefix": "/api/items/", "roles": ["admin"]},
        {"path": "/admin/users", "roles": ["admin"]},
        {"path": "/x", "permissions": ["patients:read"]},
        {"prefix": "/x/", "roles": ["doctor"]},
        {"path": "/health", "allow": "public"},
        {"prefix": "/", "allow": "authenticated"},
    ]
    cfg["rate_limits"] = []
    e = Envoy(cfg, upstream)
    try:
        admin, nurse = pyjwt(claims(roles=["admin"])), pyjwt(claims(roles=["nurse"]))
        for path in ("/api/items", "/health"):
            r = e.request("GET", path)
            assert r.status == 200 and r.body["path"] == path, (path, r)
        for path in ("/api/items/",):
            r = e.request("GET", path)
            assert r.status == 401 and r.body["error"] == "token_missing", (path, r)
            r = e.request("GET", path, token=nurse)
            assert r.status == 403 and r.body["error"] == "forbidden", (path, r)
            r = e.request("GET", path, token=admin)
            assert r.status == 200 and r.body["path"] == path, (path, r)
        r = e.request("GET", "/health/")
        assert r.status == 401 and r.body["error"] == "token_missing", r
        for path in ("/admin/users", "/admin/users/", "/Admin/Users/"):
            r = e.request("GET", path, token=nurse)
            assert r.status == 403, (path, r)
            assert e.request("GET", path, token=admin).status == 200, path
    finally:
        e.stop()
    # Shadow mode logs both rules where both apply (patients:read and the doctor role: neither
    # covers the other), one where the path as written meets its rule first.
    cfg["mode"] = "shadow"
    e = Envoy(cfg, upstream, concurrency=1)
    try:
        assert e.request("GET", "/x").status == 200
        assert e.request("GET", "/x/").status == 200
        time.sleep(0.3)
        logs = e.logs()
        assert "would refuse 401 token_missing (rules[3]): GET /x" in logs, logs
        assert "would refuse 401 token_missing (rules[4] and rules[3]): GET /x/" in logs, logs
    finally:
        e.stop()


def test_trailing_slash_rule_meets_the_path_without_it(upstream):
    # Review finding F1: a rule written with a trailing `/` was dodged by the spelling without
    # it: `/admin` and `/ADMIN` went to the public catch-all, and upstreams serving both
    # spellings as one route served the admin root.
    cfg = copy.deepcopy(CONFIG)
    cfg["rules"] = [
        {"prefix": "/admin/", "roles": ["admin"]},
        {"path": "/api/*/", "methods": ["GET"], "roles": ["admin"]},
        {"path": "/docs/", "roles": ["admin"]},
        {"prefix": "/", "allow": "public"},
    ]
    cfg["rate_limits"] = [{"prefix": "/api/auth/login/", "key": "ip", "limit": "2/minute"}]
    e = Envoy(cfg, upstream)
    try:
        admin, nurse = pyjwt(claims(roles=["admin"])), pyjwt(claims(roles=["nurse"]))
        for path in ("/admin/", "/admin", "/ADMIN", "/admin?x=1", "/api/v1", "/api/v1/", "/docs"):
            r = e.request("GET", path)
            assert r.status == 401 and r.body["error"] == "token_missing", (path, r)
            assert e.request("GET", path, token=nurse).status == 403, path
            assert e.request("GET", path, token=admin).status == 200, path
        assert e.request("POST", "/api/v1").status == 200
        assert e.request("GET", "/adminx").status == 200
        assert e.request("GET", "/").status == 200
        # A limit written with the slash meters the spelling without it.
        statuses = [e.request("POST", "/api/auth/login").status for _ in range(3)]
        assert statuses == [200, 200, 429], statuses
    finally:
        e.stop()


# --- every bad token refused with its code -------------------------------------------------

def _rs_public_pem():
    key = RSAAlgorithm.from_jwk(json.dumps(PUBLIC["rs"]))
    from cryptography.hazmat.primitives import serialization
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _unsigned(c):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'none', 'typ': 'JWT'})}.{enc(c)}."


def _tamper(token):
    h, p, s = token.split(".")
    body = json.loads(b64u_decode(p))
    body["roles"] = ["admin"]
    p2 = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{h}.{p2}.{s}"


BAD_TOKENS = {
    "expired": (lambda: pyjwt(claims(iat=int(time.time()) - 4000, exp=int(time.time()) - 60)),
                "token_expired"),
    "not_yet_valid": (lambda: pyjwt(claims(nbf=int(time.time()) + 600)), "token_not_yet_valid"),
    "wrong_issuer": (lambda: pyjwt(claims(iss="https://evil.example.com")), "token_issuer_invalid"),
    "wrong_audience": (lambda: pyjwt(claims(aud="other")), "token_audience_invalid"),
    "tampered": (lambda: _tamper(pyjwt(claims())), "token_invalid"),
    "wrong_secret": (lambda: pyjwt(claims(), key=b"x" * 32), "token_invalid"),
    "alg_none": (lambda: _unsigned(claims()), "token_algorithm_not_allowed"),
    "hs_rs_confusion": (lambda: _hs_with_rsa_public(), "token_algorithm_not_allowed"),
    "wrong_kid": (lambda: pyjwt(claims(), kid="nope"), "token_unknown_key"),
    "refresh_type": (lambda: pyjwt(claims(type="refresh")), "token_wrong_type"),
    "mfa_type": (lambda: pyjwt(claims(type="mfa")), "token_wrong_type"),
    "reset_type": (lambda: pyjwt(claims(type="reset")), "token_wrong_type"),
    "garbage": (lambda: "not-a-jwt", "token_malformed"),
    "four_segments": (lambda: pyjwt(claims()) + ".x", "token_malformed"),
    # Bytes >= 0x80 (obs-text) reach the filter; control characters never do (next test).
    "binary_junk": (lambda: "\xff\xfe%%%.@@@.\x80###", "token_malformed"),
}


def test_control_characters_refused_before_the_filter(envoy):
    # Envoy's HTTP/1 codec answers 400 itself to control characters in a header value, so such
    # a token can never reach (or crash) the filter.
    r = envoy.request("GET", "/api/records", token="\x7f\x01%%%.@@@.###")
    assert r.status == 400, r


def _hs_with_rsa_public():
    # The classic confusion: sign HS256 using the RSA public key bytes as the HMAC secret.
    import hashlib, hmac as hm
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
    si = f"{enc({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rs'})}.{enc(claims())}"
    sig = hm.new(_rs_public_pem(), si.encode(), hashlib.sha256).digest()
    return f"{si}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_tokens_refused(envoy, name):
    make, code = BAD_TOKENS[name]
    tok = make()
    try:
        r = envoy.request("GET", "/api/records", token=tok)
    except (ValueError, http.client.InvalidURL):  # header http.client refuses to send
        pytest.fail("test token not sendable")
    assert_401(r, code)
    assert tok not in json.dumps(r.body)  # never echoed back


def test_oversized_token_refused_before_decoding(envoy):
    c = claims(pad="x" * 9000)
    r = envoy.request("GET", "/api/records", token=pyjwt(c))
    assert_401(r, "token_too_large")


def test_oversized_authorization_header_variants(envoy):
    r = envoy.request("GET", "/api/records", headers={"authorization": "Bearer " + "a" * 20000})
    assert r.status in (401, 431), r
    if r.status == 401:
        assert r.body["error"] == "token_too_large"


def test_token_never_logged(envoy):
    tok = pyjwt(claims())
    envoy.request("GET", "/api/records", token=tok)
    envoy.request("GET", "/api/records", token=_tamper(tok))
    time.sleep(0.2)
    logs = envoy.logs()
    assert tok.split(".")[2] not in logs
    assert CONFIG["jwks"]["keys"][0]["k"] not in logs


# --- rate limiting -------------------------------------------------------------------------

def test_login_rate_limit_5_per_minute(envoy):
    statuses, last = [], None
    for _ in range(6):
        last = envoy.request("POST", "/api/auth/login", body=b"{}")
        statuses.append(last.status)
        if last.status == 200:
            assert "ratelimit" in last.headers, last.headers
    assert statuses == [200] * 5 + [429], statuses
    assert last.body["error"] == "rate_limited"
    assert 1 <= int(last.headers["retry-after"]) <= 60
    assert "q=5" in last.headers["ratelimit-policy"] and "w=60" in last.headers["ratelimit-policy"]
    assert "r=0" in last.headers["ratelimit"]
    # Other routes are not affected by the login limit.
    assert envoy.request("GET", "/api/auth/ping").status == 200


def test_per_subject_limit_is_per_user(upstream):
    cfg = copy.deepcopy(CONFIG)
    cfg["rate_limits"] = [{"prefix": "/api/", "key": "sub", "limit": ["3/hour", "200/day"]}]
    e = Envoy(cfg, upstream)
    try:
        alice, bob = pyjwt(claims(sub="alice")), pyjwt(claims(sub="bob"))
        got = [e.request("GET", "/api/records", token=alice).status for _ in range(4)]
        assert got == [200, 200, 200, 429], got
        assert e.request("GET", "/api/records", token=bob).status == 200
        pol = e.request("GET", "/api/records", token=bob).headers.get("ratelimit-policy", "")
        assert "q=3" in pol and "q=200" in pol, pol
        # A bad token is refused with 401, never counted as "alice", but counted against the
        # client address: a flood of bad signatures is metered.
        forged = [e.request("GET", "/api/records", token=_tamper(alice)).status for _ in range(4)]
        assert forged == [401, 401, 401, 429], forged
        assert e.request("GET", "/api/records", token=bob).status == 200
    finally:
        e.stop()


def test_header_keyed_limit(upstream):
    cfg = copy.deepcopy(CONFIG)
    cfg["rate_limits"] = [{"prefix": "/api/auth/", "key": "header:x-api-key", "limit": "2/minute"}]
    e = Envoy(cfg, upstream)
    try:
        a = [e.request("GET", "/api/auth/x", headers={"x-api-key": "a"}).status for _ in range(3)]
        assert a == [200, 200, 429], a
        assert e.request("GET", "/api/auth/x", headers={"x-api-key": "b"}).status == 200
    finally:
        e.stop()


def test_concurrent_burst_never_over_admits(upstream):
    """--concurrency 2, limit 100/hour, 1000 requests on 100 connections: exactly the quota
    (plus what refills during the burst: one per 36 s) is admitted."""
    cfg = copy.deepcopy(CONFIG)
    cfg["rules"] = [{"prefix": "/", "allow": "public"}]
    cfg["rate_limits"] = [{"prefix": "/", "key": "ip", "limit": "100/hour"}]
    e = Envoy(cfg, upstream, concurrency=2)
    counts = {"ok": 0, "limited": 0, "other": 0}
    lock = threading.Lock()

    def worker(_):
        conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
        try:
            for _ in range(10):
                conn.request("GET", "/burst")
                r = conn.getresponse()
                r.read()
                key = {200: "ok", 429: "limited"}.get(r.status, "other")
                with lock:
                    counts[key] += 1
        finally:
            conn.close()

    try:
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(100) as pool:
            list(pool.map(worker, range(100)))
        elapsed = time.monotonic() - t0
        refill = int(elapsed // 36) + 1
        assert counts["other"] == 0, counts
        assert counts["ok"] + counts["limited"] == 1000
        assert 100 <= counts["ok"] <= 100 + refill, (counts, elapsed)
        assert e.stat("keygate.rate_limited") == counts["limited"]
    finally:
        e.stop()


def test_key_spray_is_bounded(upstream):
    """10^4 distinct header keys against 64 slots: all answered, memory bounded by slots."""
    cfg = copy.deepcopy(CONFIG)
    cfg["rules"] = [{"prefix": "/", "allow": "public"}]
    cfg["rate_limits"] = [{"prefix": "/", "key": "header:x-k", "limit": "1000/minute",
                           "slots": 64}]
    e = Envoy(cfg, upstream, concurrency=1)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
        for i in range(3000):
            conn.request("GET", "/", headers={"x-k": f"key-{i}"})
            r = conn.getresponse()
            r.read()
            assert r.status in (200, 429)
        conn.close()
        assert e.stat("keygate.rate_limit_slots") in (None, 64)
        assert e.request("GET", "/", headers={"x-k": "fresh"}).status in (200, 429)
    finally:
        e.stop()


# --- metrics -------------------------------------------------------------------------------

def test_metrics_visible_in_stats(envoy):
    envoy.request("GET", "/api/records", token=pyjwt(claims()))
    envoy.request("GET", "/api/records")
    envoy.request("GET", "/admin/x", token=pyjwt(claims(roles=["nurse"])))
    for name in ("keygate.allowed", "keygate.denied_400", "keygate.denied_401",
                 "keygate.denied_403", "keygate.rate_limited", "keygate.shadow.allowed"):
        assert envoy.stat(name) is not None, name
    assert envoy.stat("keygate.allowed") >= 1
    assert envoy.stat("keygate.denied_401") >= 1
    assert envoy.stat("keygate.denied_403") >= 1


# --- configuration refused -----------------------------------------------------------------

def _bad(mutate):
    cfg = copy.deepcopy(CONFIG)
    mutate(cfg)
    return json.dumps(cfg)


BAD_CONFIGS = {
    "unknown_field": (lambda c: c.update(isuser="x"), "isuser"),
    "bad_quota": (lambda c: c["rate_limits"][0].update(limit="5/fortnight"), "rate_limits[0].limit"),
    "short_key": (lambda c: c["jwks"]["keys"][0].update(k="c2hvcnQ"), "jwks"),
    "unknown_alg": (lambda c: c["jwks"]["keys"][0].update(alg="HS999"), "jwks"),
    "bad_rule": (lambda c: c["rules"].append({"prefix": "/x"}), "rules[5]"),
    "bad_key_kind": (lambda c: c["rate_limits"][0].update(key="cookie"), "rate_limits[0].key"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_refused_naming_the_field(name):
    mutate, field = BAD_CONFIGS[name]
    code, out = validate_config(_bad(mutate))
    assert code != 0, out[-2000:]
    # The filter's own log line names the field (not just Envoy echoing the config).
    assert any("keygate: invalid config" in line and field in line
               for line in out.splitlines()), out[-2000:]


def _raw(old, new):
    text = json.dumps(CONFIG)
    assert old in text, old
    return text.replace(old, new, 1)


RAW_BAD_CONFIGS = {
    # A rule written as an array would read its fields by position: every route public.
    "array_rule": (lambda: _bad(lambda c: c.update(rules=[[None, "/", None, "public", None, None]])),
                   "rules[0]"),
    "array_jwk": (lambda: _bad(lambda c: c["jwks"].update(keys=[["oct", "k1", "HS256"]])),
                  "jwks.keys[0]"),
    "dup_claim_header": (lambda: _raw('"claims_to_headers": {"sub": "x-user-id"',
                                      '"claims_to_headers": {"sub": "x-user-id", "sub": "x-subject"'),
                         "claims_to_headers.sub"),
    "dup_role": (lambda: _raw('"roles": {"admin": ["*"]', '"roles": {"admin": ["*"], "admin": []'),
                 "roles.admin"),
    "leeway_1e400": (lambda: _raw('"leeway_secs": 30', '"leeway_secs": 1e400'), "leeway_secs"),
    "slots_1e400": (lambda: _bad(lambda c: c["rate_limits"][0].update(slots=7)).replace(
        '"slots": 7', '"slots": 1e400'), "rate_limits[0].slots"),
    "too_many_slots": (lambda: _bad(lambda c: c.update(rate_limits=[
        {"prefix": "/", "key": "ip", "limit": "5/minute", "slots": 262144}] * 3)),
        "rate_limits[2].slots"),
    "mode": (lambda: _bad(lambda c: c.update(mode="audit")), "mode"),
}


@pytest.mark.parametrize("name", sorted(RAW_BAD_CONFIGS))
def test_hostile_config_refused_naming_the_field(name):
    make, field = RAW_BAD_CONFIGS[name]
    code, out = validate_config(make())
    assert code != 0, out[-2000:]
    assert any(f"keygate: invalid config `{field}`" in line for line in out.splitlines()), out[-2000:]


def test_config_error_with_a_line_break_stays_one_log_line():
    # A member name with a newline (and an escape sequence) is echoed into the error: escaped,
    # so it cannot forge a second `keygate:` line in Envoy's log.
    forged = "zz\nkeygate: invalid config `x`: \u001b[31m"
    code, out = validate_config(_bad(lambda c: c.update({forged: 1})))
    assert code != 0, out[-2000:]
    lines = [line for line in out.splitlines() if "keygate: invalid config" in line]
    assert len(lines) == 1, out[-2000:]
    assert "invalid config `zz\\nkeygate: invalid config `x`: \\u{1b}[31m`" in lines[0], lines
    assert "\x1b" not in out


def test_unparsable_config_refused():
    code, out = validate_config("{not json")
    assert code != 0
    assert "keygate: invalid config `configuration`" in out, out[-2000:]


def test_example_config_validates():
    code, out = validate_config(json.dumps(example_plugin_config()))
    assert code == 0, out[-2000:]


def test_ready_time_reported(envoy):
    # Not a timing assertion (see make bench); just that the filter did not stall startup.
    assert envoy.ready_secs < 15


# --- the client address behind the `ip` key -------------------------------------------------

def _default_hcm(hcm):
    # What an HCM left at Envoy's defaults looks like: X-Forwarded-For is trusted.
    hcm.pop("use_remote_address", None)
    hcm.pop("xff_num_trusted_hops", None)


@pytest.mark.parametrize("example_hcm", [True, False])
def test_ip_key_and_x_forwarded_for(upstream, example_hcm):
    e = Envoy(CONFIG, upstream, hcm=None if example_hcm else _default_hcm)
    try:
        got = [e.request("POST", "/api/auth/login", body=b"{}",
                         headers={"x-forwarded-for": f"198.51.100.{i}"}).status for i in range(8)]
        if example_hcm:
            # use_remote_address: true, xff_num_trusted_hops: 0 — made-up XFF values change
            # nothing, the 6th attempt is refused.
            assert got == [200] * 5 + [429] * 3, got
        else:
            # The README's warning, demonstrated: the client picks its own key.
            assert got == [200] * 8, got
    finally:
        e.stop()


# --- shadow mode ----------------------------------------------------------------------------

def test_shadow_mode(upstream):
    cfg = copy.deepcopy(CONFIG)
    cfg["mode"] = "shadow"
    e = Envoy(cfg, upstream, concurrency=1)
    try:
        nurse = pyjwt(claims(roles=["nurse"]))
        forged = _tamper(nurse)
        r = e.request("GET", "/api/records")  # would be 401 token_missing
        assert r.status == 200 and r.body["path"] == "/api/records", r
        r = e.request("GET", "/admin/users?q=1", token=nurse,
                      headers={"x-user-id": "admin"})  # would be 403, claim headers still set
        assert r.status == 200, r
        assert r.body["header_values"]["x-user-id"] == [jwt.decode(
            nurse, options={"verify_signature": False})["sub"]]
        assert "authorization" in r.body["headers"]  # the request is otherwise untouched
        r = e.request("GET", "/api/records", token=forged, headers={"x-user-id": "admin"})
        assert r.status == 200 and "x-user-id" not in r.body["headers"], r
        assert e.request("GET", "/api/records", token=nurse,
                         headers={"cookie": f"__Host-access={nurse}"}).status == 200
        logins = [e.request("POST", "/api/auth/login", body=b"{}") for _ in range(6)]
        assert [r.status for r in logins] == [200] * 6
        assert all("ratelimit" not in r.headers for r in logins)
        assert e.request("GET", "/api/records", token=nurse).status == 200
        time.sleep(0.3)
        assert e.stat("keygate.shadow.denied_401") == 2
        assert e.stat("keygate.shadow.denied_403") == 1
        assert e.stat("keygate.shadow.denied_400") == 1
        assert e.stat("keygate.shadow.rate_limited") == 1
        assert e.stat("keygate.shadow.allowed") == 6
        for name in ("keygate.allowed", "keygate.denied_401", "keygate.denied_403"):
            assert e.stat(name) in (None, 0), name
        logs = e.logs()
        lines = [l for l in logs.splitlines() if "keygate shadow: would refuse" in l]
        assert len(lines) == 5, lines
        assert any("401 token_missing (rules[4]): GET /api/records" in l for l in lines), lines
        assert any("403 forbidden (rules[1]): GET /admin/users" in l for l in lines), lines
        assert any("429 rate_limited (rate_limits[0]): POST /api/auth/login" in l for l in lines)
        assert nurse.split(".")[2] not in logs and forged.split(".")[1] not in logs
        assert "q=1" not in "".join(lines)
    finally:
        e.stop()


def test_shadow_refusal_before_the_token_keeps_claim_headers(upstream):
    # Review finding: in shadow mode a request an `ip` limit (evaluated before the token) would
    # refuse went upstream without its valid token's claim headers (evaluation stopped at the
    # would-be 429) and, with `forward_token: false`, with the token. Now it gets both; the
    # would-be 429 is counted and logged once, and the `sub` limit it never reached in enforce
    # mode is not metered.
    cfg = copy.deepcopy(CONFIG)
    cfg["mode"] = "shadow"
    cfg["forward_token"] = False
    cfg["rate_limits"] = [
        {"path": "/api/records", "key": "ip", "limit": "1/minute"},
        {"path": "/api/records", "key": "sub", "limit": "2/minute"},
    ]
    e = Envoy(cfg, upstream, concurrency=1)
    try:
        c = claims(sub="alice", roles=["nurse"])
        tok = pyjwt(c)
        got = []
        for i in range(2):
            r = e.request("GET", "/api/records", token=tok, headers={"x-user-id": "admin"})
            assert r.status == 200, r
            assert r.body["header_values"]["x-user-id"] == ["alice"], (i, r.body)
            assert r.body["header_values"]["x-user-roles"] == ["nurse"], (i, r.body)
            assert "authorization" not in r.body["header_values"], (i, r.body)
            got.append(r)
        time.sleep(0.3)
        assert e.stat("keygate.shadow.rate_limited") == 1
        assert e.stat("keygate.shadow.allowed") == 1
        lines = [l for l in e.logs().splitlines() if "keygate shadow: would refuse" in l]
        assert len(lines) == 1 and "429 rate_limited (rate_limits[0]): GET /api/records" in lines[0]
        assert tok.split(".")[2] not in e.logs()
    finally:
        e.stop()
    # A token sent twice (a would-be 400) goes upstream in shadow mode without either copy.
    e = Envoy(cfg, upstream, concurrency=1)
    try:
        r = e.raw("GET", "/api/patients/7", [("authorization", f"Bearer {tok}"),
                                             ("cookie", f"a=1; __Host-access={tok}; b=2")])
        assert r.status == 200, r
        assert "authorization" not in r.body["header_values"], r.body
        assert r.body["header_values"]["cookie"] == ["a=1; b=2"], r.body
        assert "x-user-id" not in r.body["header_values"], r.body
        time.sleep(0.3)
        assert e.stat("keygate.shadow.denied_400") == 1
    finally:
        e.stop()
    # The same two requests in enforce mode: the second is the 429, from the same rule.
    cfg["mode"] = "enforce"
    e = Envoy(cfg, upstream, concurrency=1)
    try:
        assert e.request("GET", "/api/records", token=tok).status == 200
        r = e.request("GET", "/api/records", token=tok)
        assert r.status == 429 and r.body["error"] == "rate_limited", r
        assert r.headers["ratelimit-policy"].startswith('"1/minute"'), r.headers
    finally:
        e.stop()


def test_more_header_lines_than_keygate_reads_is_invalid_request(upstream):
    # With Envoy's `max_headers_count` raised past keygate's 1,024-line cap, a second token could
    # sit in a line keygate never reads (review finding): such a request is refused like a
    # repeated token; under the cap the same request passes.
    def many_headers(hcm):
        hcm.setdefault("common_http_protocol_options", {})["max_headers_count"] = 4000
        hcm["max_request_headers_kb"] = 1024

    e = Envoy(CONFIG, upstream, hcm=many_headers)
    try:
        tok = pyjwt(claims(sub="alice"))
        fill = [(f"x-fill-{i}", "1") for i in range(1100)]
        lines = [("authorization", f"Bearer {tok}")] + fill
        r = e.raw("GET", "/api/records", lines)
        assert r.status == 400 and r.body["error"] == "invalid_request", r
        assert "1024 header lines" in r.headers["www-authenticate"]
        assert e.raw("GET", "/api/records", lines[:90]).status == 200
        # 1,000 lines pass keygate too (the echo upstream itself refuses over 100 headers: 431).
        r = e.raw("GET", "/api/records", lines[:1000])
        assert r.status == 431 and "got more than 100 headers" in str(r.body), r
    finally:
        e.stop()
