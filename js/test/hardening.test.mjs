// Issue 14 in Node: a polluted Object.prototype reaches no decision (every entry point), the
// email normal form, the Origin check, session revocation, MFA-pending tokens bound to the
// password, fresh proof for MFA changes, the MFA lock's unlock paths, and equal reset work.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  KeygateError, Keygate,
  hashPassword, verifyPassword, needsRehash,
  generateTotpSecret, totpProvisioningUri, verifyTotp, generateTotpCode,
  generateRecoveryCodes, verifyRecoveryCode, generateSigningKey,
  normalizeEmail, originAllowed, endAllSessions,
} from "keygate";

const CHEAP = { timeCost: 1, memoryCost: 64, parallelism: 1 };
const SECRET = "0123456789abcdef0123456789abcdef-test-secret";
const at = (secs) => ({ now: new Date(secs * 1000) });
const T0 = 1_700_000_000;
const NOW = () => Math.floor(Date.now() / 1000);
const kg = new Keygate({ secret: SECRET, password: CHEAP });

function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof KeygateError, `expected KeygateError, got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

/**
 * Runs `fn` with `props` set on Object.prototype (enumerable, as a `__proto__` merge does), and
 * always removes them again. Returns what `fn` returned or threw (as `{error}`).
 */
function polluted(props, fn) {
  const keys = Object.keys(props);
  for (const k of keys) Object.prototype[k] = props[k]; // eslint-disable-line no-extend-native
  try {
    return { value: fn() };
  } catch (error) {
    return { error };
  } finally {
    for (const k of keys) delete Object.prototype[k];
  }
}

describe("a polluted Object.prototype reaches no decision", () => {
  const hash = hashPassword("correct horse", CHEAP);
  const past = new Date(T0 * 1000);

  test("options.now: an expired token stays expired (every verify* and the session reader)", () => {
    const access = kg.createAccessToken("u1", [], at(T0));
    const { refresh_token } = kg.createRefreshToken("u1", at(T0));
    const mfa = kg.createMfaToken("u1", at(T0));
    const reset = kg.createPasswordResetToken({ id: "u1", passwordHash: hash }, at(T0));
    const session = kg.createSession("u1", at(T0)).cookie.split(";")[0];
    const r = polluted({ now: past }, () => [
      kg.verifyAccessToken(access),
      kg.verifyRefreshToken(refresh_token),
      kg.verifyMfaToken(mfa),
      kg.verifyPasswordResetToken(reset, { id: "u1", passwordHash: hash }),
      kg.readSession(session),
      kg.readSession(session, {}),
    ]);
    assert.deepEqual(r.value, [null, null, null, null, null, null]);
    const strict = polluted({ now: past }, () => kg.verifyToken(access, "access"));
    assert.equal(strict.error?.code, "token_expired");
  });

  test("TOTP: now and lastUsedStep are the caller's own", () => {
    const secret = generateTotpSecret();
    const old = generateTotpCode(secret, at(T0));
    const r = polluted({ now: past }, () => [generateTotpCode(secret), verifyTotp(secret, old)]);
    assert.equal(r.value[0], generateTotpCode(secret), "generated for the real time");
    assert.equal(r.value[1], null, "a code of 2023 is refused");
    const fresh = generateTotpCode(secret);
    const step = polluted({ lastUsedStep: Math.floor(NOW() / 30) }, () => verifyTotp(secret, fresh));
    assert.ok(step.value !== null, "no replay floor from the prototype");
    const opt = polluted({ digits: 8, period: 60 }, () => generateTotpCode(secret));
    assert.equal(opt.value.length, 6);
    const uri = polluted({ digits: 8 }, () => totpProvisioningUri(secret, "a@example.com", "x"));
    assert.doesNotMatch(uri.value, /digits=8/);
  });

  test("roles / amr / user: no minted privilege", () => {
    const r = polluted({ roles: ["admin"], amr: ["pwd", "otp"] }, () => [
      kg.createAccessToken("u1"),
      kg.createAccessToken("u1", [], {}),
      kg.createRefreshToken("u1", {}).refresh_token,
      kg.issueTokens({ id: "u1" }).access_token,
    ]);
    assert.equal(r.error, undefined, r.error?.message);
    for (const t of r.value) {
      const c = kg.verifyToken(t, t === r.value[2] ? "refresh" : "access");
      assert.deepEqual(c.roles ?? [], [], "roles");
      assert.deepEqual(c.amr ?? [], [], "amr");
    }
    // refresh: a polluted `user` must not become the record the new token is minted from.
    const issued = kg.issueTokens({ id: "u1", roles: ["user"], passwordHash: hash });
    const rot = polluted({ user: { id: "u1", roles: ["admin"], passwordHash: hash } }, () =>
      kg.refresh(issued.refresh_token, issued.family, {}));
    assert.equal(rot.value.status, "ok", rot.error?.message);
    assert.deepEqual(kg.verifyToken(rot.value.tokens.access_token, "access").roles, ["user"]);
  });

  test("toJSON on the prototype does not replace what keygate receives", () => {
    const forged = function toJSON() { return { id: "admin", roles: ["admin"] }; };
    const r = polluted({ toJSON: forged }, () => kg.issueTokens({ id: "u1", roles: ["user"] }).access_token);
    assert.equal(r.error, undefined, r.error?.message);
    const c = kg.verifyToken(r.value, "access");
    assert.equal(c.sub, "u1");
    assert.deepEqual(c.roles, ["user"]);
    const cfg = polluted({ toJSON: () => ({ secret: SECRET, accessTokenTtl: 86400 }) }, () =>
      new Keygate({ secret: SECRET }).createAccessToken("u1"));
    const claims = kg.verifyToken(cfg.value, "access");
    assert.equal(claims.exp - claims.iat, 900);
  });

  test("createAccessToken: options.claims from the prototype adds no claim", () => {
    for (const options of [undefined, {}, { now: new Date() }]) {
      const r = polluted({ claims: { tenant: "evil", admin: true } }, () => kg.createAccessToken("u1", ["user"], options));
      assert.equal(r.error, undefined, r.error?.message);
      const c = kg.verifyToken(r.value, "access");
      assert.equal(c.tenant, undefined, "no inherited claims");
      assert.equal(c.admin, undefined);
    }
    const own = kg.verifyToken(kg.createAccessToken("u1", [], { claims: { tenant: "acme" } }), "access");
    assert.equal(own.tenant, "acme", "own claims still work");
  });

  test("enrolMfa: recovery hashes are the caller's own elements", () => {
    const secret = generateTotpSecret();
    const { hashes } = generateRecoveryCodes(1);
    const hole = polluted({ 0: hashes[0] }, () => kg.enrolMfa(secret, generateTotpCode(secret), [, hashes[0]], {})); // eslint-disable-line no-sparse-arrays
    assert.equal(hole.error?.code, "invalid_input");
  });

  test("config: inherited settings are not settings", () => {
    const r = polluted({ accessTokenTtl: 86400, issuer: "https://evil.example" }, () =>
      new Keygate({ secret: SECRET }).createAccessToken("u1"));
    const c = kg.verifyToken(r.value, "access");
    assert.equal(c.exp - c.iat, 900);
    assert.equal(c.iss, undefined);
    const key = polluted({ kid: "attacker" }, () => generateSigningKey("EdDSA", {}));
    assert.notEqual(key.value.kid, "attacker");
    const pw = polluted({ timeCost: 1, memoryCost: 8 }, () => hashPassword("correct horse"));
    assert.doesNotMatch(pw.value, /m=8,t=1/);
    assert.equal(polluted({ timeCost: 9 }, () => needsRehash(pw.value)).value, false);
    assert.equal(verifyPassword(pw.value, "correct horse"), true);
  });

  test("family: a member missing from the stored object is not read from the prototype", () => {
    const issued = kg.issueTokens({ id: "u1", passwordHash: hash });
    const { revoked: _, ...partial } = issued.family;
    const r = polluted({ revoked: false }, () => kg.refresh(issued.refresh_token, partial));
    assert.equal(r.error?.code, "invalid_input");
    assert.equal(r.error?.field, "family.revoked");
  });

  test("MFA state and user: no recovery hash, counter or flag from the prototype", () => {
    const secret = generateTotpSecret();
    const user = { id: "u7", passwordHash: hash, mfaEnabled: true, mfaSecret: secret };
    const { codes, hashes } = generateRecoveryCodes(1);
    const login = kg.login(user, "correct horse");
    assert.equal(login.status, "mfa_required");
    const r = polluted({ recoveryHashes: hashes, completed: false, consecutiveFailures: 0 }, () =>
      kg.verifyMfa(login.mfa_token, codes[0], user, {}));
    assert.equal(r.value.status, "error", "an attacker's recovery code on the prototype is no code");
    assert.equal(r.value.error, "mfa_invalid");
    // mfaEnabled inherited: the record says nothing, so MFA-on records with a secret must say so.
    const u = polluted({ mfaEnabled: false }, () => kg.login({ id: "u7", passwordHash: hash, mfaSecret: secret }, "correct horse"));
    assert.equal(u.error?.code, "invalid_input");
    // Holes in lists read Object.prototype["0"]: refused.
    const hole = polluted({ 0: hashes[0] }, () => verifyRecoveryCode([, "x"], codes[0])); // eslint-disable-line no-sparse-arrays
    assert.equal(hole.error?.code, "invalid_input");
  });

  test("sessions, MFA change, reset, change password: state and proof are own members only", () => {
    const state = endAllSessions({}); // epoch 1
    const made = polluted({ sessionState: { epoch: 7 } }, () => kg.createSession("u1", {}));
    assert.equal(made.value.epoch, 0);
    const cookie = kg.createSession("u1", { sessionState: state }).cookie.split(";")[0];
    const read = polluted({ epoch: 1, revoked: [] }, () => kg.readSession(cookie, { sessionState: {} }));
    assert.equal(read.value, null, "the stored state {} is epoch 0: the epoch-1 cookie is refused");
    const user = { id: "u1", passwordHash: hash };
    const proof = polluted({ authTime: NOW(), password: "correct horse" }, () => kg.authorizeMfaChange(user, {}, {}));
    assert.equal(proof.error?.code, "invalid_input");
    const reset = kg.createPasswordResetToken(user);
    const done = polluted({ sessionState: { epoch: 40 }, mfaState: { recoveryHashes: ["x"] } }, () =>
      kg.resetPassword(reset, user, "a new passphrase"));
    assert.equal(done.error, undefined, done.error?.message);
    assert.equal(done.value.sessionState.epoch, 1);
    assert.equal(done.value.mfaState, null);
    const changed = polluted({ sessionState: { epoch: 40 } }, () =>
      kg.changePassword(user, "correct horse", "another passphrase", {}));
    assert.equal(changed.value.sessionState.epoch, 1);
    const origin = polluted({ 0: "https://evil.example" }, () => originAllowed("https://evil.example", [, "https://a.example"])); // eslint-disable-line no-sparse-arrays
    assert.equal(origin.error?.code, "invalid_input");
  });

  test("KeygateError details are own members", () => {
    const r = polluted({ field: "x", claim: "exp", cause: "y" }, () => new KeygateError("c", "m"));
    assert.equal(Object.hasOwn(r.value, "field"), false);
    assert.equal(Object.hasOwn(r.value, "claim"), false);
    assert.equal(Object.hasOwn(r.value, "cause"), false);
  });
});

describe("normalizeEmail: one account per visible address", () => {
  test("variants of one address normalise to one key", () => {
    const key = normalizeEmail("alice@example.com");
    for (const v of ["Alice@Example.COM", "ａｌｉｃｅ@ｅｘａｍｐｌｅ.ｃｏｍ", " alice@example.com "]) {
      assert.equal(normalizeEmail(v), key, v);
    }
    assert.equal(normalizeEmail("jose\u0301@example.com"), normalizeEmail("jos\u00e9@example.com"));
    assert.equal(normalizeEmail("STRASSE@example.com"), normalizeEmail("straße@example.com"));
  });

  test("control, invisible and mixed-script addresses are refused", () => {
    for (const v of ["ali\u200bce@example.com", "alice\u0000@example.com", "\u0430dmin@example.com",
      "alice@ex\u0430mple.com", "al\u00adice@example.com", "alice@example", "", "a b@example.com"]) {
      throwsCode(() => normalizeEmail(v), "email_invalid");
    }
    throwsCode(() => normalizeEmail(42), "invalid_input");
  });
});

describe("originAllowed", () => {
  test("same origin passes; others, null and a missing header do not", () => {
    const allowed = ["http://127.0.0.1:8080"];
    assert.equal(originAllowed("http://127.0.0.1:8080", allowed), true);
    assert.equal(originAllowed("HTTP://127.0.0.1:8080", allowed), true);
    for (const o of ["https://evil.example", "null", "http://127.0.0.1:8081", undefined, null]) {
      assert.equal(originAllowed(o, allowed), false, String(o));
    }
  });
});

describe("sessions that end", () => {
  test("logout revokes one session; endAllSessions ends every one", () => {
    let state = {};
    const a = kg.createSession("u1", { sessionState: state }).cookie.split(";")[0];
    const b = kg.createSession("u1", { sessionState: state }).cookie.split(";")[0];
    assert.equal(kg.readSession(a, { sessionState: state }).userId, "u1");
    state = kg.revokeSession(a, state);
    assert.equal(state.revoked.length, 1);
    assert.equal(kg.readSession(a, { sessionState: state }), null, "a kept copy of the logged-out cookie");
    assert.equal(kg.readSession(b, { sessionState: state }).userId, "u1");
    state = endAllSessions(state);
    assert.deepEqual(state, { epoch: 1, revoked: [] });
    assert.equal(kg.readSession(b, { sessionState: state }), null);
    const c = kg.createSession("u1", { sessionState: state });
    assert.equal(c.epoch, 1);
    assert.equal(kg.readSession(c.cookie.split(";")[0], { sessionState: state }).epoch, 1);
    // Without a state nothing is checked (the documented first read to learn the user id).
    assert.equal(kg.readSession(b).userId, "u1");
  });
});

describe("the second factor needs the factor", () => {
  const hash = hashPassword("correct horse", CHEAP);

  test("an MFA-pending token from before a password change does not sign in", () => {
    const secret = generateTotpSecret();
    const user = { id: "u8", passwordHash: hash, mfaEnabled: true, mfaSecret: secret };
    const { mfa_token } = kg.login(user, "correct horse");
    const after = { ...user, passwordHash: hashPassword("a new passphrase", CHEAP) };
    const r = kg.verifyMfa(mfa_token, generateTotpCode(secret), after, {});
    assert.equal(r.status, "error");
    assert.equal(r.error, "mfa_token_stale");
  });

  test("MFA change: fresh proof or nothing; re-enrolment keeps pending tokens single-use", () => {
    const secret = generateTotpSecret();
    const user = { id: "u9", passwordHash: hash, mfaEnabled: true, mfaSecret: secret };
    const { mfa_token } = kg.login(user, "correct horse");
    const signedIn = kg.verifyMfa(mfa_token, generateTotpCode(secret), user, {});
    assert.equal(signedIn.status, "ok");
    const authTime = kg.verifyToken(signedIn.tokens.access_token, "access").auth_time;
    assert.ok(Math.abs(authTime - NOW()) < 5, "access tokens carry auth_time");
    const stale = kg.authorizeMfaChange(user, signedIn.state, { authTime: NOW() - 301 });
    assert.equal(stale.error, "reauthentication_required");
    assert.equal(kg.authorizeMfaChange(user, signedIn.state, { authTime: new Date() }).status, "ok");
    assert.equal(kg.authorizeMfaChange(user, signedIn.state, { password: "nope" }).error, "reauthentication_required");
    assert.equal(kg.authorizeMfaChange(user, signedIn.state, { password: "correct horse" }).status, "ok");
    // Re-enrol: the already used pending token never signs in again.
    const next = generateTotpSecret();
    const { hashes } = generateRecoveryCodes(2);
    const bad = kg.enrolMfa(next, "000000", hashes, signedIn.state);
    assert.equal(bad.status, "error");
    const enrolled = kg.enrolMfa(next, generateTotpCode(next), hashes, signedIn.state);
    assert.equal(enrolled.status, "ok", enrolled.message);
    const reused = kg.verifyMfa(mfa_token, generateTotpCode(next, { now: new Date(Date.now() + 30000) }),
      { ...user, mfaSecret: next }, enrolled.state, { now: new Date(Date.now() + 30000) });
    assert.equal(reused.error, "mfa_token_used");
  });

  test("MFA lock: a recovery code or a password reset opens it", () => {
    const secret = generateTotpSecret();
    const user = { id: "u10", passwordHash: hash, mfaEnabled: true, mfaSecret: secret };
    const { codes, hashes } = generateRecoveryCodes(2);
    const locked = { recoveryHashes: hashes, consecutiveFailures: 100 };
    const { mfa_token } = kg.login(user, "correct horse");
    const totp = kg.verifyMfa(mfa_token, generateTotpCode(secret), user, locked);
    assert.equal(totp.error, "mfa_locked");
    const rec = kg.verifyMfa(mfa_token, codes[0], user, totp.state);
    assert.equal(rec.status, "ok", rec.message);
    assert.equal(rec.state.consecutiveFailures, 0);
    const reset = kg.createPasswordResetToken(user);
    const done = kg.resetPassword(reset, user, "a new passphrase", { mfaState: locked, sessionState: { epoch: 2 } });
    assert.equal(done.mfaState.consecutiveFailures, 0);
    assert.deepEqual(done.mfaState.recoveryHashes, hashes);
    assert.equal(done.sessionState.epoch, 3);
    assert.equal(verifyPassword(done.passwordHash, "a new passphrase"), true);
    throwsCode(() => kg.resetPassword(reset, { ...user, passwordHash: done.passwordHash }, "x".repeat(12)), "reset_token_stale");
  });

  test("requestPasswordReset: a token for a known account, null after the same work for an unknown one", () => {
    const user = { id: "u11", passwordHash: hash };
    const t = kg.requestPasswordReset(user);
    assert.equal(kg.verifyPasswordResetToken(t, user), "u11");
    assert.equal(kg.requestPasswordReset(null), null);
  });
});

describe("access tokens at account endpoints: the session epoch (sep)", () => {
  const hash = hashPassword("correct horse", CHEAP);

  test("a token of an older epoch, or without sep, is refused with sessionState; stateless without", () => {
    const state = { epoch: 2 };
    const t = kg.issueTokens({ id: "u1", passwordHash: hash, sessionState: state }).access_token;
    assert.equal(kg.verifyAccessToken(t).sep, 2);
    assert.equal(kg.verifyAccessToken(t, { sessionState: state })?.sub, "u1");
    const ended = endAllSessions(state); // password change, reset, sign out everywhere
    assert.equal(kg.verifyAccessToken(t, { sessionState: ended }), null);
    assert.equal(kg.verifyAccessToken(t)?.sub, "u1", "APIs stay stateless: the token lives its TTL there");
    const bare = kg.createAccessToken("u1");
    assert.equal(kg.verifyAccessToken(bare, { sessionState: {} }), null, "no sep: not from a sign-in");
    const none = kg.issueTokens({ id: "u1", passwordHash: hash }).access_token;
    assert.equal(kg.verifyAccessToken(none, { sessionState: undefined })?.sub, "u1", "a new user is epoch 0");
    throwsCode(() => kg.createAccessToken("u1", [], { claims: { sep: 2 } }), "invalid_input");
    // Refresh with the current record carries the current epoch.
    const issued = kg.issueTokens({ id: "u1", passwordHash: hash, sessionState: state });
    const r = kg.refresh(issued.refresh_token, issued.family, { user: { id: "u1", passwordHash: hash, sessionState: ended } });
    assert.equal(r.status, "ok");
    assert.equal(kg.verifyAccessToken(r.tokens.access_token, { sessionState: ended })?.sub, "u1");
    // The epoch on Object.prototype is no epoch.
    const p = polluted({ sessionState: ended }, () => kg.verifyAccessToken(t, {}));
    assert.equal(p.value?.sub, "u1");
  });
});
