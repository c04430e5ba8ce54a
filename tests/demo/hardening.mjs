// Issue 14 over HTTP against the demo stack (Envoy + filter + the auth worker in workerd): the
// classes of attack the independent tester ran, each as a check that fails on the old worker.
// Run by `make test-demo` (after demo-check). Exit code 0 only if every step passed.
//
// Requests that exercise the worker's own logic go straight to the worker (no Envoy rate
// limits in the way); those about Envoy's authorization go through Envoy.
import assert from "node:assert/strict";
import { createPrivateKey, randomBytes, sign } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Stack, ISSUER, AUDIENCE } from "./stack.mjs";
import { request, claimsOf, totpCode } from "./client.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "keygate-demo-hardening-"));
const stack = new Stack({ dataDir });
const started = Date.now();
let step = 0;
const notes = [];

async function check(name, fn) {
  step += 1;
  const t0 = Date.now();
  await fn();
  console.log(`  ✓ ${String(step).padStart(2)} ${name} (${Date.now() - t0} ms)`);
}

let ip = 10;
/** Through Envoy, each call from a fresh 127.0.0.x so per-IP limits stay out of the way. */
const viaEnvoy = (method, path, opts = {}) => request(stack.url, method, path, { localAddress: `127.0.0.${ip++ % 200 + 20}`, ...opts });
/** Straight to the worker. */
const w = (method, path, opts) => request(stack.workerUrl, method, path, opts);
const origin = () => ({ origin: stack.workerUrl });
const cookieOf = (r) => String(r.headers["set-cookie"] ?? "").split(";")[0];
const PASSWORD = "correct horse battery staple";
let n = 0;
const newEmail = (tag) => `${tag}-${Date.now()}-${n++}@example.com`;

async function signUp(email, password = PASSWORD) {
  const r = await w("POST", "/api/auth/register", { body: { email, password } });
  assert.equal(r.status, 202, r.text);
  const mail = await stack.outbox(email);
  assert.equal(mail?.kind, "confirm-signup", JSON.stringify(mail));
  const made = await w("POST", "/api/auth/register/confirm", { body: { email, token: mail.token } });
  assert.equal(made.status, 201, made.text);
  return made.json.id;
}

async function logIn(email, password = PASSWORD) {
  const r = await w("POST", "/api/auth/login", { body: { email, password } });
  assert.equal(r.status, 200, r.text);
  return { ...r.json, cookie: cookieOf(r) };
}

async function enrol(access) {
  const setup = await w("POST", "/api/auth/mfa/setup", { token: access });
  assert.equal(setup.status, 200, setup.text);
  const verify = await w("POST", "/api/auth/mfa/verify", { token: access, body: { code: totpCode(setup.json.secret) } });
  assert.equal(verify.status, 200, verify.text);
  return { secret: setup.json.secret, recovery: verify.json.recovery_codes };
}

async function resetPassword(email, password) {
  assert.equal((await w("POST", "/api/auth/password-reset", { body: { email } })).status, 200);
  const mail = await stack.outbox(email);
  assert.equal(mail.kind, "reset");
  const r = await w("POST", "/api/auth/password-reset/confirm", { body: { token: mail.token, password } });
  assert.equal(r.status, 200, r.text);
}

/** An access token signed with the worker's key, as a refresh long after sign-in would give. */
function accessTokenSignedInAt(sub, authTime, sep = 0) {
  const jwk = stack.keys.signingKey;
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: "EdDSA", typ: "JWT", kid: jwk.kid });
  const body = b64({ sub, type: "access", roles: ["user"], iat: now, exp: now + 600, iss: ISSUER, aud: AUDIENCE,
    jti: randomBytes(16).toString("base64url"), auth_time: authTime, sep });
  const key = createPrivateKey({ key: jwk, format: "jwk" });
  return `${head}.${body}.${sign(null, Buffer.from(`${head}.${body}`), key).toString("base64url")}`;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

let failed = false;
try {
  await stack.start();
  console.log(`hardening: stack up at ${stack.url} in ${Date.now() - started} ms`);
  const seed = Object.fromEntries(stack.seeded.users.map((u) => [u.email.split("@")[0], u]));

  await check("authorization: POST/PUT/PATCH/DELETE /api/patients/1 need patients:write; the API answers 405", async () => {
    const email = newEmail("mallory");
    await signUp(email);
    const { access_token: user } = await logIn(email);
    for (const m of ["POST", "PUT", "PATCH", "DELETE"]) {
      const r = await viaEnvoy(m, "/api/patients/1", { token: user, body: {} });
      assert.equal(r.status, 403, `${m} by a self-registered user: ${r.text}`);
      assert.equal(r.json.patient, undefined);
    }
    const doctor = (await logIn(seed.doctor.email, seed.doctor.password)).access_token;
    assert.equal((await viaEnvoy("GET", "/api/patients/1", { token: doctor })).status, 200);
    const post = await viaEnvoy("POST", "/api/patients/1", { token: doctor, body: {} });
    assert.equal(post.status, 405, post.text);
    assert.equal(post.headers.allow, "GET, HEAD");
    assert.equal(post.json.patient, undefined);
  });

  await check("JWKS: one Cache-Control", async () => {
    const r = await viaEnvoy("GET", "/.well-known/jwks.json");
    assert.equal(r.status, 200);
    assert.equal(r.headers["cache-control"], "public, max-age=30");
  });

  await check("logout revokes the session server side: a kept copy of the cookie is refused", async () => {
    const email = newEmail("logout");
    await signUp(email);
    const { cookie } = await logIn(email);
    assert.equal((await w("GET", "/api/auth/session", { headers: { cookie } })).status, 200);
    const out = await w("POST", "/api/auth/logout", { headers: { cookie, ...origin() } });
    assert.equal(out.status, 200, out.text);
    const replay = await w("GET", "/api/auth/session", { headers: { cookie } });
    assert.equal(replay.status, 401, "the old cookie after logout");
    const setup = await w("POST", "/api/auth/mfa/setup", { headers: { cookie, ...origin() } });
    assert.equal(setup.status, 401, "and it cannot touch MFA");
  });

  await check("password reset, password change and sign out everywhere end every session", async () => {
    const email = newEmail("reset");
    await signUp(email);
    const a = await logIn(email);
    const b = await logIn(email);
    await resetPassword(email, "a brand new passphrase");
    for (const c of [a.cookie, b.cookie]) assert.equal((await w("GET", "/api/auth/session", { headers: { cookie: c } })).status, 401);
    const refreshed = await w("POST", "/api/auth/refresh", { body: { refresh_token: a.refresh_token } });
    assert.equal(refreshed.status, 401, "refresh families end too");
    // Change (current password needed), from a cookie session.
    const c = await logIn(email, "a brand new passphrase");
    const d = await logIn(email, "a brand new passphrase");
    const wrong = await w("POST", "/api/auth/password", { headers: { cookie: c.cookie, ...origin() }, body: { current_password: "nope", new_password: "third passphrase here" } });
    assert.equal(wrong.status, 403, wrong.text);
    const changed = await w("POST", "/api/auth/password", { headers: { cookie: c.cookie, ...origin() }, body: { current_password: "a brand new passphrase", new_password: "third passphrase here" } });
    assert.equal(changed.status, 200, changed.text);
    assert.equal((await w("GET", "/api/auth/session", { headers: { cookie: d.cookie } })).status, 401);
    // Sign out everywhere.
    const e = await logIn(email, "third passphrase here");
    const f = await logIn(email, "third passphrase here");
    assert.equal((await w("POST", "/api/auth/logout-all", { headers: { cookie: e.cookie, ...origin() } })).status, 200);
    assert.equal((await w("GET", "/api/auth/session", { headers: { cookie: f.cookie } })).status, 401);
    assert.equal((await w("POST", "/api/auth/refresh", { body: { refresh_token: f.refresh_token } })).status, 401);
  });

  await check("an access token from before a reset, a password change or sign out everywhere opens no account endpoint", async () => {
    const email = newEmail("oldtoken");
    await signUp(email);
    const a = await logIn(email);
    assert.equal((await w("GET", "/api/auth/session", { token: a.access_token })).status, 200);
    await resetPassword(email, "a brand new passphrase");
    const refused = async (token, password) => {
      assert.equal((await w("GET", "/api/auth/session", { token })).status, 401);
      for (const path of ["/api/auth/mfa/setup", "/api/auth/mfa/disable", "/api/auth/logout-all"]) {
        const r = await w("POST", path, { token, body: { password } });
        assert.equal(r.status, 401, `${path}: ${r.text}`);
      }
      const pw = await w("POST", "/api/auth/password", { token, body: { current_password: password, new_password: "an attacker's choice here" } });
      assert.equal(pw.status, 401, pw.text);
    };
    await refused(a.access_token, PASSWORD);
    const b = await logIn(email, "a brand new passphrase");
    const c = await logIn(email, "a brand new passphrase");
    const changed = await w("POST", "/api/auth/password", { headers: { cookie: c.cookie, ...origin() }, body: { current_password: "a brand new passphrase", new_password: "third passphrase here" } });
    assert.equal(changed.status, 200, changed.text);
    await refused(b.access_token, "a brand new passphrase");
    const d = await logIn(email, "third passphrase here");
    const e = await logIn(email, "third passphrase here");
    assert.equal((await w("GET", "/api/auth/session", { token: d.access_token })).status, 200);
    assert.equal((await w("POST", "/api/auth/logout-all", { headers: { cookie: e.cookie, ...origin() } })).status, 200);
    await refused(d.access_token, "third passphrase here");
    // A sign-in after it works again.
    const f = await logIn(email, "third passphrase here");
    assert.equal((await w("GET", "/api/auth/session", { token: f.access_token })).status, 200);
  });

  await check("sign-up: a second registration does not replace an unexpired pending one", async () => {
    const email = newEmail("hijack");
    const first = await w("POST", "/api/auth/register", { body: { email, password: PASSWORD } });
    const mail = await stack.outbox(email);
    const second = await w("POST", "/api/auth/register", { body: { email: email.toUpperCase(), password: "the attacker's password" } });
    assert.equal(second.status, first.status);
    assert.equal(second.text, first.text, "the same answer");
    assert.equal((await stack.outbox(email)).token, mail.token, "no new link");
    const made = await w("POST", "/api/auth/register/confirm", { body: { email, token: mail.token } });
    assert.equal(made.status, 201, made.text);
    assert.equal((await w("POST", "/api/auth/login", { body: { email, password: "the attacker's password" } })).status, 401);
    await logIn(email);
  });

  let mfaUser;
  await check("an MFA-pending token from before a password reset does not sign in", async () => {
    const email = newEmail("pending");
    const id = await signUp(email);
    const { access_token } = await logIn(email);
    const { secret, recovery } = await enrol(access_token);
    const pending = await w("POST", "/api/auth/login", { body: { email, password: PASSWORD } });
    assert.equal(pending.json.mfa_required, true);
    await resetPassword(email, "a brand new passphrase");
    const r = await w("POST", "/api/auth/mfa", { body: { mfa_token: pending.json.mfa_token, code: totpCode(secret, 1) } });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error, "mfa_token_stale");
    mfaUser = { email, id, secret, recovery, password: "a brand new passphrase" };
  });

  await check("re-enrolment keeps each pending token single-use", async () => {
    const email = newEmail("reenrol");
    await signUp(email);
    const first = await enrol((await logIn(email)).access_token);
    const pending = (await w("POST", "/api/auth/login", { body: { email, password: PASSWORD } })).json.mfa_token;
    const done = await w("POST", "/api/auth/mfa", { body: { mfa_token: pending, code: totpCode(first.secret, 1) } });
    assert.equal(done.status, 200, done.text);
    const second = await enrol(done.json.access_token); // fresh sign-in: auth_time is recent
    const again = await w("POST", "/api/auth/mfa", { body: { mfa_token: pending, code: totpCode(second.secret, 1) } });
    assert.equal(again.status, 401, again.text);
    assert.equal(again.json.error, "mfa_token_used");
  });

  await check("changing the factor needs fresh proof: an old credential alone is refused", async () => {
    const { email, id, secret } = mfaUser;
    const old = accessTokenSignedInAt(id, Math.floor(Date.now() / 1000) - 600, 1); // epoch 1: one reset
    const bare = await w("POST", "/api/auth/mfa/setup", { token: old });
    assert.equal(bare.status, 403, bare.text);
    assert.equal(bare.json.error, "reauthentication_required");
    const disable = await w("POST", "/api/auth/mfa/disable", { token: old });
    assert.equal(disable.status, 403, "removing the factor too");
    const wrong = await w("POST", "/api/auth/mfa/setup", { token: old, body: { password: "not it" } });
    assert.equal(wrong.status, 403);
    const pw = await w("POST", "/api/auth/mfa/setup", { token: old, body: { password: mfaUser.password } });
    assert.equal(pw.status, 200, pw.text);
    const code = await w("POST", "/api/auth/mfa/setup", { token: old, body: { code: totpCode(secret, 1) } });
    assert.equal(code.status, 200, code.text);
    // Still the old factor: the unconfirmed setups changed nothing (its recovery codes work).
    const login = await w("POST", "/api/auth/login", { body: { email, password: mfaUser.password } });
    const r = await w("POST", "/api/auth/mfa", { body: { mfa_token: login.json.mfa_token, code: mfaUser.recovery[1] } });
    assert.equal(r.status, 200, r.text);
  });

  await check("cookie-authenticated state changes check Origin", async () => {
    const email = newEmail("origin");
    await signUp(email);
    const { cookie } = await logIn(email);
    for (const headers of [{ cookie }, { cookie, origin: "https://evil.example" }, { cookie, origin: "null" }]) {
      const r = await w("POST", "/api/auth/mfa/setup", { headers });
      assert.equal(r.status, 403, `${JSON.stringify(headers.origin)}: ${r.text}`);
      assert.equal(r.json.error, "origin_mismatch");
    }
    assert.equal((await w("POST", "/api/auth/logout-all", { headers: { cookie, origin: "https://evil.example" } })).status, 403);
    assert.equal((await w("POST", "/api/auth/mfa/setup", { headers: { cookie, ...origin() } })).status, 200);
  });

  await check("100 wrong codes lock MFA; a recovery code and a password reset unlock it", async () => {
    const { email, secret, recovery } = mfaUser;
    const wrongCode = () => (totpCode(secret) === "000000" ? "111111" : "000000");
    // Wrong codes until the lock: 5 per pending token, each token from a new second (a token
    // no newer than the last one seen is refused without counting).
    async function lock(password) {
      for (let logins = 0; logins < 40; logins++) {
        await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
        const l = await w("POST", "/api/auth/login", { body: { email, password } });
        for (let i = 0; i < 5; i++) {
          const r = await w("POST", "/api/auth/mfa", { body: { mfa_token: l.json.mfa_token, code: wrongCode() } });
          if (r.json.error === "mfa_locked") return;
        }
      }
      assert.fail("MFA never locked");
    }
    await lock(mfaUser.password);
    await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
    const login = await w("POST", "/api/auth/login", { body: { email, password: mfaUser.password } });
    const locked = await w("POST", "/api/auth/mfa", { body: { mfa_token: login.json.mfa_token, code: totpCode(secret, 1) } });
    assert.equal(locked.json.error, "mfa_locked", locked.text);
    const rec = await w("POST", "/api/auth/mfa", { body: { mfa_token: login.json.mfa_token, code: recovery[0] } });
    assert.equal(rec.status, 200, `a recovery code unlocks: ${rec.text}`);
    // Lock again, then a password reset unlocks.
    await lock(mfaUser.password);
    await resetPassword(email, "after the lock passphrase");
    await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
    const l2 = await w("POST", "/api/auth/login", { body: { email, password: "after the lock passphrase" } });
    const ok = await w("POST", "/api/auth/mfa", { body: { mfa_token: l2.json.mfa_token, code: totpCode(secret, 1) } });
    assert.equal(ok.status, 200, `reset unlocks: ${ok.text}`);
  });

  await check("concurrent account requests do not roll back MFA failure counts (read the body first)", async () => {
    const email = newEmail("race");
    await signUp(email);
    const { secret } = await enrol((await logIn(email)).access_token);
    const pending = await w("POST", "/api/auth/login", { body: { email, password: PASSWORD } });
    const done = await w("POST", "/api/auth/mfa", { body: { mfa_token: pending.json.mfa_token, code: totpCode(secret, 1) } });
    assert.equal(done.status, 200, done.text);
    const wrong = totpCode(secret) === "000000" ? "111111" : "000000";
    const burst = await Promise.all(Array.from({ length: 120 }, () =>
      w("POST", "/api/auth/mfa/setup", { token: done.json.access_token, body: { code: wrong } })));
    assert.ok(burst.every((r) => r.status === 403), burst.map((r) => r.text).join());
    await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
    const l = await w("POST", "/api/auth/login", { body: { email, password: PASSWORD } });
    const r = await w("POST", "/api/auth/mfa", { body: { mfa_token: l.json.mfa_token, code: totpCode(secret, 1) } });
    assert.equal(r.json.error, "mfa_locked", `every wrong code counted: ${r.text}`);
  });

  await check("sign-up does not tell whether an address has an account", async () => {
    const email = newEmail("taken");
    await signUp(email);
    const fresh = await w("POST", "/api/auth/register", { body: { email: newEmail("new"), password: PASSWORD } });
    const taken = await w("POST", "/api/auth/register", { body: { email, password: PASSWORD } });
    assert.equal(taken.status, fresh.status);
    assert.equal(taken.text, fresh.text);
    assert.equal((await stack.outbox(email)).kind, "account-exists", "the owner is told by mail, not the caller");
    const bad = await w("POST", "/api/auth/register/confirm", { body: { email, token: "x".repeat(43) } });
    assert.equal(bad.status, 400);
  });

  await check("emails: fullwidth / case / NFD variants are the same account; invisible, NUL, Cyrillic refused", async () => {
    const local = `zoe${Date.now()}`;
    const email = `${local}@example.com`;
    await signUp(email);
    const fullwidth = [...local].map((c) => String.fromCodePoint(c.codePointAt(0) + 0xfee0)).join("") + "@ＥＸＡＭＰＬＥ.com";
    const r = await w("POST", "/api/auth/register", { body: { email: fullwidth, password: PASSWORD } });
    assert.equal(r.status, 202);
    assert.equal((await stack.outbox(email)).kind, "account-exists", "no second account for the fullwidth spelling");
    const login = await w("POST", "/api/auth/login", { body: { email: email.toUpperCase(), password: PASSWORD } });
    assert.equal(login.status, 200, "the same account, whatever the case");
    const nfd = `jose\u0301${Date.now()}@example.com`;
    await signUp(nfd);
    const nfc = nfd.normalize("NFC");
    assert.equal((await w("POST", "/api/auth/login", { body: { email: nfc, password: PASSWORD } })).status, 200, "NFC finds the NFD account");
    for (const v of [`z\u200boe@example.com`, `zoe\u0000@example.com`, `\u0430dmin${Date.now()}@example.com`, `zo\u00ade@example.com`]) {
      const x = await w("POST", "/api/auth/register", { body: { email: v, password: PASSWORD } });
      assert.equal(x.status, 400, JSON.stringify(v));
      assert.equal(x.json.error, "invalid_email");
    }
  });

  await check("accounts are sharded: each account is its own Durable Object (the user id is its id)", async () => {
    const a = await signUp(newEmail("shard-a"));
    const b = await signUp(newEmail("shard-b"));
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.match(b, /^[0-9a-f]{64}$/);
    assert.notEqual(a, b);
    // Measured, not asserted (no timed tests): a login while another client runs 12 sign-ups.
    const email = newEmail("latency");
    await signUp(email);
    const alone = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await w("POST", "/api/auth/login", { body: { email, password: PASSWORD } });
      alone.push(performance.now() - t);
    }
    const burst = Array.from({ length: 12 }, () => w("POST", "/api/auth/register", { body: { email: newEmail("burst"), password: PASSWORD } }));
    const t = performance.now();
    await w("POST", "/api/auth/login", { body: { email, password: PASSWORD } });
    const during = performance.now() - t;
    await Promise.all(burst);
    notes.push(`login alone median ${median(alone).toFixed(0)} ms; during 12 parallel sign-ups ${during.toFixed(0)} ms`);
  });

  await check("password reset: one mail and one signed token for known and unknown addresses", async () => {
    const email = newEmail("equal");
    await signUp(email);
    const nobody = newEmail("nobody");
    assert.equal((await w("POST", "/api/auth/password-reset", { body: { email } })).text,
      (await w("POST", "/api/auth/password-reset", { body: { email: nobody } })).text);
    assert.equal((await stack.outbox(email)).kind, "reset");
    assert.equal((await stack.outbox(nobody)).kind, "reset-no-account", "the unknown path does the same write");
    // Measured, not asserted: 30 + 30 requests, interleaved.
    const known = [];
    const unknown = [];
    for (let i = 0; i < 30; i++) {
      for (const [list, e] of [[known, email], [unknown, nobody]]) {
        const t = performance.now();
        await w("POST", "/api/auth/password-reset", { body: { email: e } });
        list.push(performance.now() - t);
      }
    }
    notes.push(`password reset median: known ${median(known).toFixed(2)} ms, unknown ${median(unknown).toFixed(2)} ms`);
    assert.ok(claimsOf((await stack.outbox(email)).token).type === "reset");
  });
} catch (e) {
  failed = true;
  console.error(`\n  ✗ step ${step} failed: ${e.message}`);
  if (!e.demo) console.error(e.stack);
  console.error(`  logs kept in ${dataDir}`);
} finally {
  await stack.stop();
}
for (const n of notes) console.log(`  · ${n}`);
if (!failed) rmSync(dataDir, { recursive: true, force: true });
console.log(failed ? "hardening: FAILED" : `hardening: all ${step} steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
