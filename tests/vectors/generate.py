#!/usr/bin/env python3
"""Known-answer vectors for keygate from independent implementations.

argon2-cffi (Argon2id PHC strings), PyJWT + cryptography (JWTs and JWKs), pyotp (TOTP codes and
provisioning URIs). Everything is deterministic except ECDSA signatures, so `--check` regenerates
the file in memory and requires it to equal the committed one, ES256 tokens excepted: those are
verified with PyJWT instead. Without `--check` it rewrites vectors.json.
"""
import argparse
import base64
import json
import pathlib
import sys

import argon2
import jwt
import pyotp
from argon2.low_level import Type, hash_secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "vectors.json"
RSA_PEM = HERE / "rsa_test_key.pem"  # test-only key, generated once and committed

IAT = 1_700_000_000
HS_SECRET = b"keygate-test-secret-0123456789abcdef-keygate-test-secret-0123456"  # 64 bytes


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def argon2_vectors():
    out = []
    cases = [
        ("correct horse battery staple", b"saltsaltsalt1234", 3, 65536, 4),
        ("hunter22", b"0123456789abcdef", 1, 64, 1),
        ("pässwörd ✓ unicode", b"fedcba9876543210", 2, 256, 2),
        ("x" * 64, b"AAAAAAAAAAAAAAAA", 1, 128, 1),
    ]
    for password, salt, t, m, p in cases:
        phc = hash_secret(password.encode(), salt, time_cost=t, memory_cost=m, parallelism=p,
                          hash_len=32, type=Type.ID).decode()
        assert argon2.PasswordHasher().verify(phc, password)
        out.append({"password": password, "phc": phc, "time_cost": t, "memory_cost": m,
                    "parallelism": p})
    return out


def keys():
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    es = ec.derive_private_key(0x1F2E3D4C5B6A79880123456789ABCDEF0123456789ABCDEF0123456789ABCDEF,
                               ec.SECP256R1())
    if not RSA_PEM.exists():
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        RSA_PEM.write_bytes(pem)
    rs = serialization.load_pem_private_key(RSA_PEM.read_bytes(), password=None)
    return ed, es, rs


def jwk_of(alg_cls, key, kid, alg, private):
    jwk = json.loads(alg_cls.to_jwk(key if private else key.public_key()))
    jwk.update({"kid": kid, "alg": alg})
    return dict(sorted(jwk.items()))


def jwt_vectors():
    ed, es, rs = keys()
    hs_jwk = {"kty": "oct", "kid": "hs", "k": b64u(HS_SECRET)}
    jwks_public = {"keys": [
        jwk_of(OKPAlgorithm, ed, "ed", "EdDSA", False),
        jwk_of(ECAlgorithm, es, "es", "ES256", False),
        jwk_of(RSAAlgorithm, rs, "rs", "RS256", False),
    ]}
    private_jwks = {"keys": [
        jwk_of(OKPAlgorithm, ed, "ed", "EdDSA", True),
        jwk_of(ECAlgorithm, es, "es", "ES256", True),
    ]}
    signers = {
        "HS256": (HS_SECRET, "hs"), "HS384": (HS_SECRET, "hs"), "HS512": (HS_SECRET, "hs"),
        "EdDSA": (ed, "ed"), "ES256": (es, "es"), "RS256": (rs, "rs"),
    }
    access = {"sub": "user-42", "type": "access", "roles": ["doctor", "nurse"],
              "iat": IAT, "exp": IAT + 900}
    tokens = []
    for alg, (key, kid) in signers.items():
        tokens.append({"name": f"access_{alg}", "alg": alg, "claims": access,
                       "token": jwt.encode(access, key, algorithm=alg, headers={"kid": kid}),
                       "now": IAT + 60, "expect": "ok"})
    extra = [
        ("expired", dict(access, exp=IAT + 900), IAT + 900 + 31, "token_expired"),
        ("within_leeway", dict(access, exp=IAT + 900), IAT + 900 + 29, "ok"),
        ("not_yet_valid", dict(access, nbf=IAT + 600), IAT + 60, "token_not_yet_valid"),
        ("refresh_type", dict(access, type="refresh"), IAT + 60, "token_wrong_type"),
        ("mfa_type", dict(access, type="mfa"), IAT + 60, "token_wrong_type"),
        ("iss_aud", dict(access, iss="https://auth.example.com", aud=["api"]), IAT + 60, "ok"),
    ]
    for name, claims, now, expect in extra:
        tokens.append({"name": name, "alg": "HS256", "claims": claims,
                       "token": jwt.encode(claims, HS_SECRET, algorithm="HS256",
                                           headers={"kid": "hs"}),
                       "now": now, "expect": expect})
    # No kid in the header: the key is chosen by algorithm.
    tokens.append({"name": "no_kid_HS256", "alg": "HS256", "claims": access,
                   "token": jwt.encode(access, HS_SECRET, algorithm="HS256"),
                   "now": IAT + 60, "expect": "ok"})
    return {"hs_secret_b64u": b64u(HS_SECRET), "hs_jwk": hs_jwk, "public_jwks": jwks_public,
            "private_jwks": private_jwks, "tokens": tokens}


def totp_vectors():
    out = []
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    for digest, name in ((None, "sha1"), ("sha256", "sha256"), ("sha512", "sha512")):
        import hashlib
        for digits in (6, 8):
            kwargs = {"digits": digits}
            if digest:
                kwargs["digest"] = getattr(hashlib, digest)
            totp = pyotp.TOTP(secret, **kwargs)
            for t in (59, 1_111_111_109, 1_234_567_890, 2_000_000_000):
                out.append({"secret": secret, "algorithm": name, "digits": digits, "period": 30,
                            "time": t, "code": totp.at(t)})
    uri = pyotp.TOTP(secret).provisioning_uri(name="alice@example.com",
                                                          issuer_name="MyApp")
    return {"codes": out, "uri": {"secret": secret, "account": "alice@example.com",
                                  "issuer": "MyApp", "uri": uri}}


def build():
    return {"generated_by": "tests/vectors/generate.py (argon2-cffi, PyJWT, pyotp)",
            "argon2": argon2_vectors(), "jwt": jwt_vectors(), "totp": totp_vectors()}


def check(fresh):
    committed = json.loads(OUT.read_text())
    pub = {k["kid"]: k for k in committed["jwt"]["public_jwks"]["keys"]}
    for tok in committed["jwt"]["tokens"]:
        if tok["alg"] == "ES256":  # ECDSA is randomized: verify instead of comparing
            key = ECAlgorithm.from_jwk(json.dumps(pub["es"]))
            claims = jwt.decode(tok["token"], key, algorithms=["ES256"],
                                options={"verify_exp": False})
            assert claims == tok["claims"], tok["name"]
            tok["token"] = None
    for tok in fresh["jwt"]["tokens"]:
        if tok["alg"] == "ES256":
            tok["token"] = None
    if committed != fresh:
        sys.exit("vectors.json differs from what the reference libraries produce now: "
                 "run `python tests/vectors/generate.py` and review the diff")
    print("vectors.json matches argon2-cffi, PyJWT and pyotp")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="compare instead of rewriting")
    args = ap.parse_args()
    fresh = build()
    if args.check:
        check(json.loads(json.dumps(fresh)))
    else:
        OUT.write_text(json.dumps(fresh, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
