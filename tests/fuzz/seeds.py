"""Writes the committed seed corpus of tests/fuzz (run once: `.venv/bin/python tests/fuzz/seeds.py`).
Tokens come from PyJWT (independent of keygate); configs from envoy/keygate.yaml."""
import json
import pathlib
import struct
import sys

import jwt
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SECRET = b"change-me-this-is-the-example-secret-32+bytes-long"


def write(target, name, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def main():
    now = 1_700_000_000
    claims = {"sub": "u1", "type": "access", "roles": ["admin"], "iat": now, "exp": now + 900}
    good = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})
    write("token_decode", "valid_hs256", good)
    write("token_decode", "no_kid", jwt.encode(claims, SECRET, algorithm="HS256"))
    write("token_decode", "alg_none", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.")
    write("token_decode", "array_header", "WyJIUzI1NiIsImsxIl0.e30.x")
    write("token_decode", "claims_json", json.dumps(claims))

    doc = yaml.safe_load((ROOT / "envoy/keygate.yaml").read_text())
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    config = hcm["typed_config"]["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
    write("config", "example", config)
    c = json.loads(config)
    c.update(mode="shadow", forward_token=False)
    write("config", "shadow", json.dumps(c))
    write("config", "array_rule", json.dumps({**c, "rules": [[None, "/", None, "public"]]}))
    write("config", "dup_member", config.replace('"leeway_secs": 30,', '"leeway_secs": 30, "leeway_secs": 1e400,'))
    write("config", "jwks", json.dumps(c["jwks"]))
    # The npm module's config (keygate::edge_config::EdgeConfig).
    write("config", "edge", json.dumps({
        "secret": SECRET.decode(), "issuer": "https://auth.example.com", "accessTokenTtl": "15m",
        "password": {"timeCost": 1, "memoryCost": 64, "parallelism": 1},
        "totp": {"digits": 6, "algorithm": "SHA1"}, "session": {"idleTimeout": "30m", "sameSite": "lax"},
    }))

    sep = lambda pairs: b"\xff".join(k + b"\xfe" + v for k, v in pairs)
    bearer = b"Bearer " + good.encode()
    write("token_sources", "bearer", sep([(b"authorization", bearer)]))
    write("token_sources", "two_bearers", sep([(b"authorization", bearer + b"," + bearer)]))
    write("token_sources", "cookie_lines", sep([(b"cookie", b"a=1"), (b"cookie", b"__Host-access=" + good.encode())]))
    write("token_sources", "header_and_cookie", sep([(b"authorization", bearer), (b"cookie", b"__Host-access=x")]))
    write("token_sources", "non_utf8", sep([(b"x-\xc3", b"\x80"), (b"cookie", b"q=\xc3; __Host-access=" + good.encode())]))
    pairs = [(b":method", b"GET"), (b":path", b"/pub"), (b"authorization", bearer)]
    raw = struct.pack("<I", len(pairs)) + b"".join(struct.pack("<II", len(k), len(v)) for k, v in pairs)
    raw += b"".join(k + b"\0" + v + b"\0" for k, v in pairs)
    write("token_sources", "proxy_wasm_map", raw)

    for i, line in enumerate(["GET /api/patients/7", "POST /admin/users", "GET /api/../admin",
                              "GET //admin", "GET /a/x/b/y", "GET /api/auth/login?x=1",
                              "GET /%2e%2e/admin"]):
        write("policy_path", f"p{i}", line)

    state = lambda fp, tats: bytes([1, len(tats)]) + struct.pack("<Q", fp) + b"".join(struct.pack("<Q", t) for t in tats)
    write("ratelimit_state", "one", state(7, [1_700_000_000_000_000]))
    write("ratelimit_state", "two", state(2**64 - 1, [0, 2**64 - 1]))
    write("ratelimit_state", "sentinel", b"\0")


if __name__ == "__main__":
    sys.exit(main())
