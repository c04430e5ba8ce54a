// Every export of the Node entry, the independent vectors (argon2-cffi, PyJWT, pyotp) and bad
// input. Run with `node --test test/` from js/ after `make build-js`.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  KeygateError, Keygate, MAX_INPUT_LENGTH,
  hashPassword, verifyPassword, needsRehash,
  generateTotpSecret, totpProvisioningUri, totpQrCode, totpQrSvg, verifyTotp, generateTotpCode,
  generateRecoveryCodes, verifyRecoveryCode, generateSigningKey,
} from "keygate";

const vectors = JSON.parse(readFileSync(new URL("../../tests/vectors/vectors.json", import.meta.url), "utf8"));
const CHEAP = { timeCost: 1, memoryCost: 64, parallelism: 1 };
const SECRET = "0123456789abcdef0123456789abcdef-test-secret";
const at = (secs) => ({ now: new Date(secs * 1000) });
const T0 = 1_700_000_000;

/** Asserts `fn` throws a KeygateError with `code` (and `field` when given). */
function throwsCode(fn, code, field) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof KeygateError, `expected KeygateError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.ok(e instanceof Error);
    assert.equal(e.name, "KeygateError");
    assert.equal(e.code, code, e.message);
    if (field !== undefined) assert.equal(e.field, field);
    assert.ok(e.message.length > 0);
    return true;
  });
}

describe("passwords", () => {
  test("hash → verify → needsRehash", () => {
    const h = hashPassword("correct horse", CHEAP);
    assert.match(h, /^\$argon2id\$v=19\$m=64,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    assert.equal(verifyPassword(h, "correct horse"), true);
    assert.equal(verifyPassword(h, "correct horsf"), false);
    assert.equal(needsRehash(h, CHEAP), false);
    assert.equal(needsRehash(h), true);
    assert.notEqual(hashPassword("correct horse", CHEAP), h, "fresh salt each time");
  });

  test("default parameters are the seed's", () => {
    const h = hashPassword("correct horse battery staple");
    assert.match(h, /^\$argon2id\$v=19\$m=65536,t=3,p=4\$/);
    assert.equal(needsRehash(h), false);
    assert.equal(verifyPassword(h, "correct horse battery staple"), true);
  });

  test("argon2-cffi vectors verify", () => {
    assert.ok(vectors.argon2.length >= 4);
    for (const v of vectors.argon2) {
      const params = { timeCost: v.time_cost, memoryCost: v.memory_cost, parallelism: v.parallelism };
      assert.equal(verifyPassword(v.phc, v.password), true, v.phc);
      assert.equal(verifyPassword(v.phc, v.password + "x"), false);
      assert.equal(needsRehash(v.phc, params), false);
    }
  });

  test("policy and bad hashes", () => {
    throwsCode(() => hashPassword("short", CHEAP), "password_too_short");
    throwsCode(() => hashPassword("", CHEAP), "password_too_short");
    throwsCode(() => hashPassword("x".repeat(1025), CHEAP), "password_too_long");
    throwsCode(() => hashPassword("long enough", { timeCost: 0 }), "config_invalid", "options.timeCost");
    throwsCode(() => hashPassword("long enough", { memoryCost: 1.5 }), "config_invalid", "options.memoryCost");
    throwsCode(() => hashPassword("long enough", { bogus: 1 }), "config_invalid", "options.bogus");
    throwsCode(() => hashPassword("long enough", "fast"), "invalid_input", "options");
    for (const bad of ["", "nope", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
      "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=64,t=1,p=1$$$"]) {
      throwsCode(() => verifyPassword(bad, "password"), "hash_invalid");
    }
    throwsCode(() => needsRehash("garbage"), "hash_invalid");
  });
});

describe("totp", () => {
  test("secret, URI, codes, replay", () => {
    const secret = generateTotpSecret();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.notEqual(generateTotpSecret(), secret);
    const code = generateTotpCode(secret, at(T0));
    assert.match(code, /^\d{6}$/);
    const step = verifyTotp(secret, code, at(T0));
    assert.equal(step, Math.floor(T0 / 30));
    assert.equal(verifyTotp(secret, code, { ...at(T0), lastUsedStep: step }), null, "replay refused");
    assert.equal(verifyTotp(secret, code, at(T0 + 30)), step, "window 1 accepts the previous step");
    assert.equal(verifyTotp(secret, code, at(T0 + 90)), null, "outside the window");
    assert.equal(verifyTotp(secret, code, { ...at(T0 + 30), window: 0 }), null);
    assert.equal(verifyTotp(secret, "12345", at(T0)), null);
    assert.equal(verifyTotp(secret, "", at(T0)), null);
    assert.equal(verifyTotp(secret, "abcdef", at(T0)), null);
  });

  test("pyotp vectors", () => {
    assert.ok(vectors.totp.codes.length > 10);
    for (const v of vectors.totp.codes) {
      const o = { algorithm: v.algorithm, digits: v.digits, period: v.period };
      assert.equal(generateTotpCode(v.secret, { ...o, ...at(v.time) }), v.code, JSON.stringify(v));
      assert.equal(verifyTotp(v.secret, v.code, { ...o, ...at(v.time) }), Math.floor(v.time / v.period));
    }
    const u = vectors.totp.uri;
    assert.equal(totpProvisioningUri(u.secret, u.account, u.issuer), u.uri);
  });

  test("QR code PNG and SVG", () => {
    const uri = totpProvisioningUri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "alice@example.com", "MyApp");
    const png = Buffer.from(totpQrCode(uri), "base64");
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const svg = totpQrSvg(uri);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>$/);
    throwsCode(() => totpQrCode("x".repeat(4000)), "qr_too_long");
    throwsCode(() => totpQrSvg(""), "invalid_input", "uri");
  });

  test("bad secrets and labels", () => {
    for (const bad of ["", "not-base32!", "JBSWY3DP", "A".repeat(400)]) {
      throwsCode(() => verifyTotp(bad, "123456"), "totp_secret_invalid");
      throwsCode(() => totpProvisioningUri(bad, "a", "b"), "totp_secret_invalid");
    }
    throwsCode(() => totpProvisioningUri("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "", "b"), "totp_label_invalid");
    throwsCode(() => verifyTotp("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "123456", { window: 9 }), "config_invalid", "options.window");
    throwsCode(() => verifyTotp("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "123456", { lastUsedStep: -1 }), "invalid_input", "options.lastUsedStep");
    throwsCode(() => verifyTotp("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", 123456), "invalid_input", "code");
    throwsCode(() => verifyTotp("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "123456", { now: 5 }), "invalid_input", "options.now");
    throwsCode(() => verifyTotp("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "123456", { now: new Date(NaN) }), "invalid_input", "options.now");
  });
});

describe("recovery codes and keys", () => {
  test("generate, spend once", () => {
    const { codes, hashes } = generateRecoveryCodes(5);
    assert.equal(codes.length, 5);
    assert.equal(hashes.length, 5);
    for (const c of codes) assert.match(c, /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
    const left = verifyRecoveryCode(hashes, codes[2].toUpperCase().replaceAll("-", " "));
    assert.deepEqual(left, hashes.filter((_, i) => i !== 2));
    assert.equal(verifyRecoveryCode(left, codes[2]), null);
    assert.equal(verifyRecoveryCode(hashes, ""), null);
    assert.equal(generateRecoveryCodes().codes.length, 10);
    throwsCode(() => generateRecoveryCodes(0), "config_invalid", "n");
    throwsCode(() => generateRecoveryCodes(21), "config_invalid", "n");
    throwsCode(() => generateRecoveryCodes(2.5), "invalid_input", "n");
    throwsCode(() => verifyRecoveryCode("nope", "x"), "invalid_input", "hashes");
    throwsCode(() => verifyRecoveryCode([1], "x"), "invalid_input", "hashes[0]");
  });

  test("generateSigningKey", () => {
    for (const alg of ["HS256", "HS384", "HS512", "EdDSA", "ES256"]) {
      const jwk = generateSigningKey(alg, { kid: "k1" });
      assert.equal(jwk.alg, alg);
      assert.equal(jwk.kid, "k1");
      const kg = new Keygate({ signingKey: jwk, session: { secret: SECRET } });
      const t = kg.createAccessToken("u", ["r"]);
      assert.equal(kg.verifyAccessToken(t).sub, "u");
      assert.equal(kg.jwks().keys.length, alg.startsWith("HS") ? 0 : 1);
    }
    throwsCode(() => generateSigningKey("RS256"), "invalid_input", "algorithm");
    throwsCode(() => generateSigningKey("none"), "invalid_input", "algorithm");
    throwsCode(() => generateSigningKey("EdDSA", { kid: "" }), "invalid_input", "options.kid");
  });
});

describe("Keygate config", () => {
  test("bad config names the field", () => {
    const cases = [
      [undefined, ""], [null, ""], ["secret", ""], [{}, "secret"], [{ secret: "short" }, "secret"],
      [{ secret: SECRET, bogus: 1 }, "bogus"], [{ secret: SECRET, accessTokenTtl: "soon" }, "accessTokenTtl"],
      [{ secret: SECRET, accessTokenTtl: 5 }, "accessTokenTtl"],
      [{ secret: SECRET, refreshTokenTtl: 60, accessTokenTtl: 900 }, "refreshTokenTtl"],
      [{ secret: SECRET, password: { timeCost: 99 } }, "password.timeCost"],
      [{ secret: SECRET, password: 5 }, "password"],
      [{ secret: SECRET, totp: { digits: 4 } }, "totp.digits"],
      [{ secret: SECRET, session: { cookieName: "sid" } }, "session.cookieName"],
      [{ secret: SECRET, session: { idleTimeout: 7200 } }, "session.idleTimeout"],
      [{ secret: SECRET, algorithm: "RS256" }, "algorithm"],
      [{ secret: SECRET, signingKey: generateSigningKey("EdDSA") }, "signingKey"],
      [{ signingKey: { kty: "OKP", crv: "Ed25519", alg: "EdDSA", d: "AA" } }, "signingKey.d"],
      [{ signingKey: "not json" }, "signingKey"],
      [{ signingKey: generateSigningKey("EdDSA"), session: {} }, "session.secret"],
      [{ secret: SECRET, issuer: 5 }, "issuer"],
      [{ secret: 10n }, ""],
    ];
    for (const [config, field] of cases) {
      throwsCode(() => new Keygate(config), "config_invalid", field);
    }
  });

  test("Uint8Array secret, durations, PEM-free JWK as JSON text", () => {
    const kg = new Keygate({ secret: new TextEncoder().encode(SECRET), accessTokenTtl: "10m", refreshTokenTtl: "7d" });
    const r = kg.issueTokens({ id: "u1", roles: ["a"] }, at(T0));
    assert.equal(r.expires_in, 600);
    const jwk = generateSigningKey("ES256");
    const kg2 = new Keygate({ signingKey: JSON.stringify(jwk), session: { secret: SECRET } });
    assert.equal(kg2.jwks().keys[0].kty, "EC");
    assert.equal(kg2.jwks().keys[0].d, undefined, "never publishes the private scalar");
    const sig = new Keygate({ signingKey: generateSigningKey("EdDSA") });
    throwsCode(() => sig.createSession("u"), "config_invalid", "session.secret");
  });
});

describe("tokens", () => {
  const kg = new Keygate({ secret: SECRET, password: CHEAP });

  test("access token: seed shape and semantics", () => {
    const t = kg.createAccessToken("user-1", ["admin", "user"], at(T0));
    const [h, p] = t.split(".").slice(0, 2).map((s) => JSON.parse(Buffer.from(s, "base64url")));
    assert.deepEqual(h, { alg: "HS256", typ: "JWT" });
    assert.deepEqual(Object.keys(p).slice(0, 5), ["sub", "type", "roles", "iat", "exp"]);
    assert.equal(p.exp - p.iat, 900);
    const c = kg.verifyAccessToken(t, at(T0 + 60));
    assert.equal(c.sub, "user-1");
    assert.deepEqual(c.roles, ["admin", "user"]);
    assert.equal(kg.verifyAccessToken(t, at(T0 + 931)), null, "expired (30 s leeway)");
    assert.equal(kg.verifyAccessToken(t, at(T0 + 929)).sub, "user-1");
    assert.equal(kg.verifyAccessToken(t.slice(0, -2) + "AA", at(T0)), null);
    assert.equal(kg.verifyAccessToken("", at(T0)), null);
    assert.equal(kg.verifyAccessToken("a.b.c"), null);
    assert.equal(new Keygate({ secret: SECRET + "x" }).verifyAccessToken(t, at(T0)), null, "other secret");
    assert.deepEqual(kg.createAccessToken("u").length > 0, true);
    assert.equal(kg.verifyAccessToken(kg.createAccessToken("u")).roles.length, 0);
  });

  test("verifyToken throws the reason and claim", () => {
    const t = kg.createAccessToken("u", [], at(T0));
    assert.throws(() => kg.verifyToken(t, "access", at(T0 + 5000)), (e) => e.code === "token_expired" && e.claim === "exp");
    throwsCode(() => kg.verifyToken(t, "refresh", at(T0)), "token_wrong_type");
    throwsCode(() => kg.verifyToken("x", "access"), "token_malformed");
    throwsCode(() => kg.verifyToken(t, "session"), "invalid_input", "type");
  });

  test("wrong type is never accepted", () => {
    const mfa = kg.createMfaToken("u2", at(T0));
    assert.equal(kg.verifyMfaToken(mfa, at(T0 + 10)), "u2");
    assert.equal(kg.verifyAccessToken(mfa, at(T0 + 10)), null);
    assert.equal(kg.verifyMfaToken(mfa, at(T0 + 400)), null, "5-minute MFA token");
    const access = kg.createAccessToken("u2", [], at(T0));
    assert.equal(kg.verifyMfaToken(access, at(T0)), null);
    const { refresh_token, family } = kg.createRefreshToken("u2", { ...at(T0), roles: ["r"] });
    assert.equal(kg.verifyAccessToken(refresh_token, at(T0)), null);
    const rc = kg.verifyRefreshToken(refresh_token, at(T0));
    assert.equal(rc.fam, family.familyId);
    assert.equal(rc.gen, 0);
    assert.deepEqual(family, { familyId: family.familyId, userId: "u2", generation: 0, rotatedAt: T0, createdAt: T0, passwordFingerprint: null, revoked: false });
  });

  test("PyJWT vectors", () => {
    const jw = vectors.jwt;
    const keyFor = (alg) => {
      if (alg.startsWith("HS")) return { ...jw.hs_jwk, alg };
      return jw.private_jwks.keys.find((k) => k.alg === alg);
    };
    let checked = 0;
    for (const v of jw.tokens) {
      const key = keyFor(v.alg);
      if (!key) continue; // RS256 is verify-only in keygate: no signing key to build a Keygate from
      const cfg = { signingKey: key, session: { secret: SECRET } };
      if (v.claims.iss) cfg.issuer = v.claims.iss;
      if (v.claims.aud) cfg.audience = Array.isArray(v.claims.aud) ? v.claims.aud[0] : v.claims.aud;
      const kg = new Keygate(cfg);
      const now = at(v.now);
      if (v.expect === "ok") {
        assert.deepEqual(kg.verifyToken(v.token, "access", now).sub, v.claims.sub, v.name);
        assert.equal(kg.verifyAccessToken(v.token, now).sub, v.claims.sub, v.name);
      } else {
        throwsCode(() => kg.verifyToken(v.token, "access", now), v.expect);
        assert.equal(kg.verifyAccessToken(v.token, now), null, v.name);
      }
      checked++;
    }
    assert.ok(checked >= 12, `checked ${checked}`);
  });
});

describe("login flow", () => {
  const kg = new Keygate({ secret: SECRET, password: CHEAP });
  const hash = hashPassword("correct horse", CHEAP);

  test("no MFA: ok with tokens; family is server-side only", () => {
    const r = kg.login({ id: "u1", passwordHash: hash, roles: ["user"], email: "ignored@x" }, "correct horse", at(T0));
    assert.equal(r.status, "ok");
    assert.equal(r.newPasswordHash, undefined);
    assert.deepEqual(Object.keys(r.tokens).sort(), ["access_token", "expires_in", "refresh_token", "token_type"]);
    assert.equal(r.tokens.token_type, "Bearer");
    assert.equal(r.tokens.expires_in, 900);
    assert.deepEqual(r.tokens.family, r.family);
    assert.equal(JSON.stringify(r.tokens).includes("family"), false);
    assert.equal(kg.verifyAccessToken(r.tokens.access_token, at(T0)).sub, "u1");
  });

  test("wrong password, unknown user: same answer", () => {
    assert.deepEqual(kg.login({ id: "u1", passwordHash: hash }, "wrong horse", at(T0)), { status: "invalid" });
    assert.deepEqual(kg.login(null, "whatever", at(T0)), { status: "invalid" });
    assert.deepEqual(kg.login(undefined, "", at(T0)), { status: "invalid" });
    assert.deepEqual(kg.login({ id: "u1", passwordHash: hash }, "x".repeat(5000), at(T0)), { status: "invalid" });
    throwsCode(() => kg.login({ id: "u1", passwordHash: "broken" }, "correct horse"), "hash_invalid");
    throwsCode(() => kg.login({ id: "u1" }, "correct horse"), "invalid_input", "user.passwordHash");
    throwsCode(() => kg.login({ id: 7, passwordHash: hash }, "x"), "invalid_input", "user.id");
    throwsCode(() => kg.login({ id: "u", passwordHash: hash }, null), "invalid_input", "password");
  });

  test("rehash on outdated parameters", () => {
    const old = hashPassword("correct horse", { ...CHEAP, timeCost: 2 });
    const r = kg.login({ id: "u1", passwordHash: old }, "correct horse", at(T0));
    assert.equal(r.status, "ok");
    assert.match(r.newPasswordHash, /m=64,t=1,p=1/);
    assert.equal(verifyPassword(r.newPasswordHash, "correct horse"), true);
  });

  test("MFA: TOTP, attempts cap, single use, recovery code", () => {
    const secret = generateTotpSecret();
    const user = { id: "u9", passwordHash: hash, roles: ["admin"], mfaEnabled: true, mfaSecret: secret };
    const r = kg.login(user, "correct horse", at(T0));
    assert.equal(r.status, "mfa_required");
    assert.equal(kg.verifyMfaToken(r.mfa_token, at(T0)), "u9");

    let state = null;
    const bad = kg.verifyMfa(r.mfa_token, "000000", user, state, at(T0));
    assert.equal(bad.status, "error");
    assert.ok(["totp_invalid", "mfa_invalid"].includes(bad.error), bad.error);
    assert.equal(bad.state.failedAttempts, 1);
    state = bad.state;

    const code = generateTotpCode(secret, at(T0));
    const ok = kg.verifyMfa(r.mfa_token, code, user, state, at(T0));
    assert.equal(ok.status, "ok", JSON.stringify(ok));
    assert.equal(ok.method, "totp");
    assert.equal(ok.state.lastTotpStep, Math.floor(T0 / 30));
    assert.deepEqual(kg.verifyAccessToken(ok.tokens.access_token, at(T0)).amr, ["pwd", "otp"]);
    assert.equal(JSON.stringify(ok.tokens).includes("familyId"), false);
    state = ok.state;

    assert.equal(kg.verifyMfa(r.mfa_token, code, user, state, at(T0)).error, "mfa_token_used");
    // A new login: the same code is a replay.
    const r2 = kg.login(user, "correct horse", at(T0 + 1));
    assert.equal(kg.verifyMfa(r2.mfa_token, code, user, state, at(T0 + 1)).error, "totp_replayed");

    // Attempts are capped per pending token (default 5).
    const r3 = kg.login(user, "correct horse", at(T0 + 2));
    let s3 = state;
    for (let i = 0; i < 5; i++) s3 = kg.verifyMfa(r3.mfa_token, "111111", user, s3, at(T0 + 2)).state;
    const capped = kg.verifyMfa(r3.mfa_token, generateTotpCode(secret, at(T0 + 60)), user, s3, at(T0 + 60));
    assert.equal(capped.error, "mfa_attempts_exceeded");
    // Going back to an older pending token does not buy fresh attempts.
    assert.equal(kg.verifyMfa(r2.mfa_token, "222222", user, s3, at(T0 + 60)).error, "mfa_token_used");
    assert.equal(s3.consecutiveFailures, 5);

    // Wrong codes in a row across sign-ins lock MFA (mfaMaxFailures).
    const strict = new Keygate({ secret: SECRET, password: CHEAP, mfaMaxFailures: 3 });
    let ls = null;
    for (let i = 0; i < 3; i++) {
      const t = strict.createMfaToken("u9", at(T0 + 10 + i));
      ls = strict.verifyMfa(t, "333333", user, ls, at(T0 + 10 + i)).state;
    }
    const locked = strict.verifyMfa(strict.createMfaToken("u9", at(T0 + 20)), generateTotpCode(secret, at(T0 + 20)), user, ls, at(T0 + 20));
    assert.equal(locked.error, "mfa_locked");
    throwsCode(() => new Keygate({ secret: SECRET, mfaMaxFailures: 1000 }), "config_invalid", "mfaMaxFailures");
    throwsCode(() => new Keygate({ secret: SECRET, refreshFamilyTtl: "1h" }), "config_invalid", "refreshFamilyTtl");

    // Recovery code.
    const { codes, hashes } = generateRecoveryCodes(2);
    const r4 = kg.login(user, "correct horse", at(T0 + 3));
    const rec = kg.verifyMfa(r4.mfa_token, codes[0], user, { ...state, recoveryHashes: hashes }, at(T0 + 3));
    assert.equal(rec.status, "ok");
    assert.equal(rec.method, "recovery");
    assert.deepEqual(rec.state.recoveryHashes, [hashes[1]]);

    // Someone else's MFA token.
    const other = kg.createMfaToken("someone-else", at(T0));
    assert.equal(kg.verifyMfa(other, code, user, null, at(T0)).error, "token_mismatch");
    assert.equal(kg.verifyMfa("garbage", code, user, null, at(T0)).error, "token_malformed");
    throwsCode(() => kg.verifyMfa(r.mfa_token, code, user, { failedAttempts: -1 }), "invalid_input", "state.failedAttempts");
    // A secret without mfaEnabled (e.g. a snake_case column) is refused, never "MFA off".
    throwsCode(() => kg.login({ id: "u9", passwordHash: hash, mfa_enabled: 1, mfaSecret: secret }, "correct horse"), "invalid_input", "user.mfaEnabled");
    // Inherited properties are not read.
    const proto = Object.create({ roles: ["admin"] });
    proto.id = "u10";
    const t = kg.issueTokens(proto, at(T0));
    assert.deepEqual(kg.verifyAccessToken(t.access_token, at(T0)).roles, []);
  });

  test("refresh rotation, grace, reuse revokes the family", () => {
    const first = kg.issueTokens({ id: "u5", roles: ["user"] }, at(T0));
    const fam0 = first.family;
    assert.equal(Object.keys(first).includes("family"), false);
    const r1 = kg.refresh(first.refresh_token, fam0, at(T0 + 60));
    assert.equal(r1.status, "ok");
    assert.equal(r1.family.generation, 1);
    assert.deepEqual(kg.verifyAccessToken(r1.tokens.access_token, at(T0 + 60)).roles, ["user"]);
    // A concurrent twin within the grace window gets tokens, the family does not advance.
    const twin = kg.refresh(first.refresh_token, r1.family, at(T0 + 65));
    assert.equal(twin.status, "ok");
    assert.equal(twin.family.generation, 1);
    // Later reuse of the rotated token revokes everything.
    const reuse = kg.refresh(first.refresh_token, r1.family, at(T0 + 200));
    assert.equal(reuse.status, "error");
    assert.equal(reuse.error, "refresh_reused");
    assert.equal(reuse.family.revoked, true);
    const dead = kg.refresh(r1.tokens.refresh_token, reuse.family, at(T0 + 201));
    assert.equal(dead.error, "refresh_revoked");
    assert.equal(dead.family, undefined);
    // Roles can be refreshed; other families and garbage are refused.
    const other = kg.issueTokens({ id: "u6" }, at(T0));
    assert.equal(kg.refresh(other.refresh_token, r1.family, at(T0)).error, "token_mismatch");
    assert.equal(kg.refresh("x.y.z", r1.family).error, "token_malformed");
    // With the user record, the new access token carries the user's current roles…
    const r2 = kg.refresh(other.refresh_token, other.family, { ...at(T0 + 1), user: { id: "u6", roles: ["admin"] } });
    assert.deepEqual(kg.verifyAccessToken(r2.tokens.access_token, at(T0 + 1)).roles, ["admin"]);
    assert.equal(kg.refresh(r2.tokens.refresh_token, r2.family, { ...at(T0 + 2), user: { id: "u7" } }).error, "token_mismatch");
    // …and a password change ends every family opened before it.
    const pw = { id: "u8", passwordHash: hash };
    const bound = kg.issueTokens(pw, at(T0));
    assert.equal(bound.family.passwordFingerprint.length > 0, true);
    const changed = { ...pw, passwordHash: hashPassword("another password", CHEAP) };
    assert.equal(kg.refresh(bound.refresh_token, bound.family, { ...at(T0 + 1), user: changed }).error, "refresh_revoked");
    assert.equal(kg.refresh(bound.refresh_token, bound.family, { ...at(T0 + 1), user: pw }).status, "ok");
    throwsCode(() => kg.refresh(other.refresh_token, { familyId: "x" }), "invalid_input", "family.userId");
    throwsCode(() => kg.refresh(other.refresh_token, null), "invalid_input", "family");
  });

  test("password reset tokens are bound to the current hash", () => {
    const user = { id: "u7", passwordHash: hash };
    const t = kg.createPasswordResetToken(user, at(T0));
    assert.equal(kg.verifyPasswordResetToken(t, user, at(T0 + 60)), "u7");
    assert.equal(kg.verifyPasswordResetToken(t, user, at(T0 + 3600)), null, "30 minutes");
    assert.equal(kg.verifyPasswordResetToken(t, { ...user, passwordHash: hashPassword("new password", CHEAP) }, at(T0)), null);
    assert.equal(kg.verifyPasswordResetToken(t, { ...user, id: "u8" }, at(T0)), null);
    assert.equal(kg.verifyAccessToken(t, at(T0)), null);
  });
});

describe("sessions", () => {
  const kg = new Keygate({ secret: SECRET, session: { absoluteTimeout: "1h", idleTimeout: "30m" } });

  test("create, read, slide, expire, destroy", () => {
    const s = kg.createSession("u1", at(T0));
    assert.match(s.cookie, /^__Host-session=[^;]+; Max-Age=3600; Path=\/; Secure; HttpOnly; SameSite=Strict$/);
    assert.equal(s.userId, "u1");
    assert.equal(s.createdAt, T0);
    assert.equal(s.expiresAt, T0 + 3600);
    const header = `theme=dark; ${s.cookie.split(";")[0]}`;
    const r = kg.readSession(header, at(T0 + 600));
    assert.equal(r.userId, "u1");
    assert.equal(r.sessionId, s.sessionId);
    assert.equal(r.lastSeen, T0 + 600);
    assert.match(r.cookie, /Max-Age=3000;/);
    assert.equal(kg.readSession(header, at(T0 + 600 + 1800)), null, "idle");
    assert.equal(kg.readSession(r.cookie.split(";")[0], at(T0 + 2300)).userId, "u1", "slid");
    assert.equal(kg.readSession(header, at(T0 + 3600)), null, "absolute");
    // Change one MAC character for certain (replacing it with "A" is a no-op 1 time in 64).
    const tampered = header.slice(0, -5) + (header.at(-5) === "A" ? "B" : "A") + header.slice(-4);
    assert.equal(kg.readSession(tampered, at(T0)), null, "tampered");
    assert.equal(kg.readSession(null), null);
    assert.equal(kg.readSession(undefined), null);
    assert.equal(kg.readSession(""), null);
    assert.equal(kg.readSession(`${header}; ${header}`, at(T0)), null, "duplicate cookie");
    assert.match(kg.destroySessionCookie(), /^__Host-session=; Max-Age=0;/);
    throwsCode(() => kg.createSession(""), "session_user_id_invalid");
    throwsCode(() => kg.readSession(42), "invalid_input", "cookieHeader");
  });
});

describe("bad input never crashes", () => {
  const kg = new Keygate({ secret: SECRET, password: CHEAP });
  const huge = "a".repeat(10 * 1024 * 1024);
  const wrong = [undefined, null, 1, true, {}, [], Symbol("s"), () => 1, 10n];

  test("10 MB strings → input_too_large everywhere", () => {
    assert.ok(huge.length > MAX_INPUT_LENGTH);
    const calls = [
      () => hashPassword(huge), () => verifyPassword(huge, "x"), () => verifyPassword("x", huge),
      () => needsRehash(huge), () => totpProvisioningUri(huge, "a", "b"), () => totpQrCode(huge),
      () => totpQrSvg(huge), () => verifyTotp(huge, "1"), () => verifyTotp("A", huge),
      () => verifyRecoveryCode([huge], "x"), () => verifyRecoveryCode([], huge),
      () => kg.createAccessToken(huge), () => kg.verifyAccessToken(huge), () => kg.verifyMfaToken(huge),
      () => kg.login({ id: "u", passwordHash: huge }, "x"), () => kg.login(null, huge),
      () => kg.verifyMfa(huge, "1", { id: "u" }), () => kg.refresh(huge, {}),
      () => kg.readSession(huge), () => kg.createSession(huge), () => kg.issueTokens({ id: huge }),
      () => new Keygate({ secret: huge }),
    ];
    for (const c of calls) {
      assert.throws(c, (e) => e instanceof KeygateError && ["input_too_large", "config_invalid"].includes(e.code), c.toString());
    }
  });

  test("strings just under the cap are refused by the core, not crashed on", () => {
    const big = "a".repeat(MAX_INPUT_LENGTH);
    throwsCode(() => verifyPassword(big, "x"), "hash_invalid");
    throwsCode(() => verifyPassword(hashPassword("password", CHEAP), big), "password_too_long");
    assert.equal(kg.verifyAccessToken(big), null);
    assert.equal(kg.readSession(big), null);
    throwsCode(() => kg.createAccessToken(big), "token_claim_too_large");
    throwsCode(() => totpQrCode(big), "qr_too_long");
    assert.equal(verifyRecoveryCode([big], big), null);
  });

  test("wrong types → invalid_input", () => {
    for (const w of wrong) {
      if (w === undefined || w === null) continue;
      throwsCode(() => hashPassword(w), "invalid_input", "password");
      throwsCode(() => verifyPassword("x", w), "invalid_input", "password");
      throwsCode(() => kg.verifyAccessToken(w), "invalid_input", "token");
      throwsCode(() => kg.createAccessToken(w), "invalid_input", "userId");
      throwsCode(() => kg.issueTokens(w), "invalid_input");
      throwsCode(() => totpQrCode(w), "invalid_input", "uri");
    }
    throwsCode(() => hashPassword(), "invalid_input", "password");
    throwsCode(() => kg.createAccessToken("u", "admin"), "invalid_input", "roles");
    throwsCode(() => kg.createAccessToken("u", [1]), "invalid_input", "roles[0]");
    throwsCode(() => kg.createAccessToken("u", new Array(2000).fill("r")), "input_too_large", "roles");
    throwsCode(() => kg.createAccessToken("u", new Array(65).fill("r")), "token_claim_too_large");
    throwsCode(() => kg.createAccessToken("u", [], { now: "yesterday" }), "invalid_input", "options.now");
    throwsCode(() => kg.login({ id: "u", passwordHash: "x", mfaEnabled: "yes" }, "x"), "invalid_input", "user.mfaEnabled");
  });

  test("malformed tokens, hashes and cookies", () => {
    const samples = ["", ".", "..", "a.b.c", "eyJ.eyJ.sig", "x".repeat(9000), "\u0000\uffff", "e30.e30.", "🙂.🙂.🙂"];
    const alg = Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url");
    const body = Buffer.from(JSON.stringify({ sub: "u", type: "access", roles: [], iat: T0, exp: T0 + 900 })).toString("base64url");
    samples.push(`${alg}.${body}.`);
    for (const s of samples) {
      assert.equal(kg.verifyAccessToken(s), null, s.slice(0, 20));
      assert.equal(kg.verifyMfaToken(s), null);
      assert.equal(kg.verifyRefreshToken(s), null);
      assert.equal(kg.readSession(s), null);
      assert.throws(() => kg.verifyToken(s, "access"), (e) => e instanceof KeygateError && e.code.startsWith("token_"));
      throwsCode(() => verifyPassword(s, "password"), "hash_invalid");
      assert.equal(kg.verifyPasswordResetToken(s, { id: "u", passwordHash: "h" }), null);
    }
    // The module still works after all of that.
    assert.equal(kg.verifyAccessToken(kg.createAccessToken("u")).sub, "u");
  });
});
