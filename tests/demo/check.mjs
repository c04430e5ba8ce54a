// `make demo-check`: start the demo stack on free ports with a fresh data dir, run the whole
// story over HTTP through Envoy, stop everything. Exit code 0 only if every step passed.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPublicKey, verify } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Stack, assertNoKeyMaterial } from "./stack.mjs";
import { request, claimsOf, totpCode } from "./client.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "keygate-demo-check-"));
const rotationDir = mkdtempSync(join(tmpdir(), "keygate-demo-rotation-"));
let stack = new Stack({ dataDir });
const started = Date.now();
let step = 0;

async function check(name, fn) {
  step += 1;
  const t0 = Date.now();
  await fn();
  console.log(`  ✓ ${String(step).padStart(2)} ${name} (${Date.now() - t0} ms)`);
}

const call = (method, path, opts) => request(stack.url, method, path, opts);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const kidOf = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[0], "base64url").toString("utf8")).kid;
const TOKEN_FIELDS = ["access_token", "expires_in", "refresh_token", "token_type"];

function assertTokens(r, ttl = 900) {
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(Object.keys(r.json).sort(), TOKEN_FIELDS, "the seed's token response shape");
  assert.equal(r.json.token_type, "Bearer");
  assert.equal(r.json.expires_in, ttl);
  return r.json;
}

function zbar(pngBase64) {
  const file = join(dataDir, "qr.png");
  writeFileSync(file, Buffer.from(pngBase64, "base64"));
  return execFileSync("zbarimg", ["--raw", "-q", file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
}

let failed = false;
try {
  await stack.start();
  console.log(`demo-check: stack up at ${stack.url} in ${Date.now() - started} ms`);
  const seed = Object.fromEntries(stack.seeded.users.map((u) => [u.email.split("@")[0], u]));
  const email = `alice-${Date.now()}@example.com`;
  const password = "correct horse battery staple";
  let access, refresh0, mfaSecret, enrolStep, userId;

  await check("login page and JWKS are served through Envoy; Envoy holds no key and no secret (remote_jwks)", async () => {
    const page = await call("GET", "/");
    assert.equal(page.status, 200);
    assert.match(page.text, /<title>keygate demo/);
    const jwks = await call("GET", "/.well-known/jwks.json");
    assert.equal(jwks.status, 200);
    assert.equal(jwks.json.keys[0].kty, "OKP");
    assert.equal(jwks.json.keys[0].d, undefined, "no private part in the JWKS");
    assert.equal(jwks.json.keys[0].kid, stack.keys.signingKey.kid, "SIGNING_KEY seeded the worker's first key");
    const plugin = assertNoKeyMaterial(stack.envoyConfig, [stack.keys.signingKey.d, stack.keys.sessionSecret]);
    assert.equal(plugin.remote_jwks.cluster, "auth_worker");
    assert.equal(plugin.jwks, undefined);
    assert.ok((await stack.envoyStat("keygate.jwks_fetched")) >= 1, "Envoy fetched the worker's JWKS");
    assert.equal((await call("POST", "/__demo/seed")).status, 404, "runner-only endpoint hidden");
  });

  await check("register → 202; the outbox link → 201; the same email again → the same 202; a short password → 400", async () => {
    const r = await call("POST", "/api/auth/register", { body: { email, password } });
    assert.equal(r.status, 202, r.text);
    const mail = await stack.outbox(email);
    assert.equal(mail.kind, "confirm-signup");
    const made = await call("POST", "/api/auth/register/confirm", { body: { email, token: mail.token } });
    assert.equal(made.status, 201, made.text);
    assert.equal(made.json.email, email);
    userId = made.json.id;
    const again = await call("POST", "/api/auth/register", { body: { email, password } });
    assert.equal(again.status, 202, "no enumeration: the same answer for a taken address");
    assert.equal(again.text, r.text);
    const short = await call("POST", "/api/auth/register", { body: { email: "b@example.com", password: "x" } });
    assert.equal(short.status, 400);
    assert.ok(short.json.error, "error code present");
  });

  await check("login → tokens + __Host-session cookie; wrong password → 401", async () => {
    const bad = await call("POST", "/api/auth/login", { body: { email, password: "wrong password!" } });
    assert.equal(bad.status, 401);
    assert.equal(bad.json.error, "invalid_credentials");
    const r = await call("POST", "/api/auth/login", { body: { email, password } });
    access = assertTokens(r).access_token;
    assert.match(String(r.headers["set-cookie"]), /^__Host-session=[^;]+;.*HttpOnly.*SameSite=Strict/);
  });

  await check("MFA setup → QR PNG that decodes to the provisioning URI, and the secret", async () => {
    const r = await call("POST", "/api/auth/mfa/setup", { token: access });
    assert.equal(r.status, 200, r.text);
    mfaSecret = r.json.secret;
    assert.match(mfaSecret, /^[A-Z2-7]{16,}$/);
    assert.match(r.json.provisioning_uri, /^otpauth:\/\/totp\//);
    assert.ok(r.json.provisioning_uri.includes(`secret=${mfaSecret}`));
    assert.equal(zbar(r.json.qr_code), r.json.provisioning_uri);
  });

  await check("MFA verify: wrong code → 400, otpauth's code → 200 + recovery codes", async () => {
    const bad = await call("POST", "/api/auth/mfa/verify", { token: access, body: { code: "000000" } });
    assert.equal(bad.status, 400);
    const r = await call("POST", "/api/auth/mfa/verify", { token: access, body: { code: totpCode(mfaSecret) } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.success, true);
    assert.equal(r.json.recovery_codes.length, 10);
    enrolStep = Math.floor(Date.now() / 30000);
  });

  let firstRefresh;
  await check("logout → session cookie cleared", async () => {
    const r = await call("POST", "/api/auth/logout", { body: {} });
    assert.equal(r.status, 200);
    assert.match(String(r.headers["set-cookie"]), /^__Host-session=; Max-Age=0/);
  });

  let mfaToken;
  await check("login again → {mfa_required: true, mfa_token}", async () => {
    const r = await call("POST", "/api/auth/login", { body: { email, password } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.mfa_required, true);
    assert.equal(claimsOf(r.json.mfa_token).type, "mfa");
    mfaToken = r.json.mfa_token;
    // An MFA-pending token is not an access token: Envoy refuses it.
    const api = await call("GET", "/api/me", { token: mfaToken });
    assert.equal(api.status, 401);
    assert.equal(api.json.error, "token_wrong_type");
  });

  await check("MFA: the enrolment code replayed → 401; the next period's code → tokens", async () => {
    if (Math.floor(Date.now() / 30000) === enrolStep) {
      const replay = await call("POST", "/api/auth/mfa", { body: { mfa_token: mfaToken, code: totpCode(mfaSecret) } });
      assert.equal(replay.status, 401, "a used TOTP step must not sign in again");
    }
    const r = await call("POST", "/api/auth/mfa", { body: { mfa_token: mfaToken, code: totpCode(mfaSecret, 1) } });
    const t = assertTokens(r);
    access = t.access_token;
    refresh0 = t.refresh_token;
    assert.equal(claimsOf(access).sub, userId);
    assert.deepEqual(claimsOf(access).amr, ["pwd", "otp"]);
  });

  await check("protected API → 200 with x-user-id / x-user-roles from the token (forged ones stripped)", async () => {
    const sub = claimsOf(access).sub;
    const r = await call("GET", "/api/me", { token: access, headers: { "x-user-id": "admin", "x-user-roles": "admin" } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.seen["x-user-id"], sub);
    assert.equal(r.json.seen["x-user-roles"], "user");
    const anon = await call("GET", "/api/me");
    assert.equal(anon.status, 401);
    assert.match(anon.headers["www-authenticate"], /^Bearer realm="keygate"/);
  });

  let adminAccess;
  await check("admin route: plain user → 403 (insufficient_scope), admin → 200", async () => {
    const denied = await call("GET", "/admin/users", { token: access });
    assert.equal(denied.status, 403);
    assert.match(denied.headers["www-authenticate"], /error="insufficient_scope"/);
    assert.equal((await call("GET", "/api/patients/1", { token: access })).status, 403);
    const r = await call("POST", "/api/auth/login", { body: { email: seed.admin.email, password: seed.admin.password } });
    adminAccess = assertTokens(r).access_token;
    const ok = await call("GET", "/admin/users", { token: adminAccess });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.seen["x-user-roles"], "admin");
  });

  await check("GET /api/patients/* needs patients:read: doctor → 200", async () => {
    const r = await call("POST", "/api/auth/login", { body: { email: seed.doctor.email, password: seed.doctor.password } });
    const doctor = assertTokens(r).access_token;
    const p = await call("GET", "/api/patients/1", { token: doctor });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.patient.id, "1");
    assert.equal((await call("GET", "/admin/users", { token: doctor })).status, 403);
  });

  let refresh2;
  await check("refresh rotation: r0 → r1 → r2, each a new working pair", async () => {
    const r1 = assertTokens(await call("POST", "/api/auth/refresh", { body: { refresh_token: refresh0 } }));
    assert.notEqual(r1.refresh_token, refresh0);
    assert.equal((await call("GET", "/api/me", { token: r1.access_token })).status, 200);
    const r2 = assertTokens(await call("POST", "/api/auth/refresh", { body: { refresh_token: r1.refresh_token } }));
    refresh2 = r2.refresh_token;
    firstRefresh = refresh0;
  });

  await check("old refresh token reused → 401 refresh_reused, and the family is revoked", async () => {
    const reuse = await call("POST", "/api/auth/refresh", { body: { refresh_token: firstRefresh } });
    assert.equal(reuse.status, 401);
    assert.equal(reuse.json.error, "refresh_reused");
    const latest = await call("POST", "/api/auth/refresh", { body: { refresh_token: refresh2 } });
    assert.equal(latest.status, 401, "the newest token of a revoked family is dead too");
    assert.equal(latest.json.error, "refresh_revoked");
  });

  await check("password reset: same answer for known/unknown email; link works once; 4th request/hour → 429", async () => {
    const known = await call("POST", "/api/auth/password-reset", { body: { email: seed.user.email } });
    const unknown = await call("POST", "/api/auth/password-reset", { body: { email: "nobody@example.com" } });
    assert.equal(known.status, 200);
    assert.equal(known.text, unknown.text);
    const mail = await stack.outbox(seed.user.email);
    const newPassword = "a brand new passphrase";
    const r = await call("POST", "/api/auth/password-reset/confirm", { body: { token: mail.token, password: newPassword } });
    assert.equal(r.status, 200, r.text);
    seed.user.password = newPassword;
    const again = { body: { token: mail.token, password: "yet another passphrase" } };
    const limited = await call("POST", "/api/auth/password-reset/confirm", again);
    assert.equal(limited.status, 429, "password reset: 3/hour per IP");
    // Straight to the worker (past Envoy's limit): the link was bound to the old password hash.
    const reused = await request(stack.workerUrl, "POST", "/api/auth/password-reset/confirm", again);
    assert.equal(reused.status, 400, reused.text);
  });

  await check("worker restarted (SIGTERM, waited for exit) → accounts, MFA and keys still there", async () => {
    await stack.restartWorker();
    // From a fresh client address: 127.0.0.1 has spent its 5 logins/minute by now.
    const r = await call("POST", "/api/auth/login", { body: { email, password }, localAddress: "127.0.0.3" });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.mfa_required, true, "the account and its MFA enrolment survived");
    const u = await request(stack.workerUrl, "POST", "/api/auth/login", { body: { email: seed.user.email, password: seed.user.password } });
    assertTokens(u); // the reset password survived (straight to the worker: not rate limited)
    assert.equal((await call("GET", "/admin/users", { token: adminAccess })).status, 200, "same signing key");
  });

  await check("login limit 5/minute per IP: 6th login from 127.0.0.2 within a minute → 429", async () => {
    const statuses = [];
    let last;
    for (let i = 0; i < 6; i++) {
      last = await call("POST", "/api/auth/login", { body: { email, password: "not the password" }, localAddress: "127.0.0.2" });
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    assert.equal(last.json.error, "rate_limited");
    assert.ok(Number(last.headers["retry-after"]) > 0, "Retry-After");
    assert.ok(last.headers["ratelimit-policy"], "RateLimit-Policy");
  });

  await check("per-user limit on /api/ping (5/minute by sub): 6th → 429", async () => {
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await call("GET", "/api/ping", { token: adminAccess })).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
  });

  // The rotation story, on a second stack whose worker issues 30 s access tokens with no
  // leeway, so a retirement comes 31 s after the rotation (accessTokenTtl + leeway + the
  // worker's 1 s key cache) instead of 15 minutes.
  await stack.stop();
  stack = new Stack({ dataDir: rotationDir, accessTokenTtl: 30, leeway: 0, seedSigningKey: false });
  const rotationStarted = Date.now();
  await check("rotation stack up (accessTokenTtl 30 s, leeway 0, no SIGNING_KEY: the worker generates its first key)", async () => {
    await stack.start();
    const jwks = await call("GET", "/.well-known/jwks.json");
    assert.equal(jwks.json.keys.length, 1);
    assert.notEqual(jwks.json.keys[0].kid, stack.keys.signingKey.kid);
    assert.equal(jwks.json.keys[0].crv, "Ed25519");
  });
  const rseed = Object.fromEntries(stack.seeded.users.map((u) => [u.email.split("@")[0], u]));
  const signIn = async (u) => assertTokens(await call("POST", "/api/auth/login", { body: { email: u.email, password: u.password } }), 30).access_token;
  let oldToken, oldRefresh, oldKid, newToken, newKid, rotatedAt;
  await check("rotate: a plain user → 403 (Envoy, and the worker itself); an admin → a new EdDSA key, the old one kept", async () => {
    const userToken = await signIn(rseed.user);
    const adminTokens = assertTokens(await call("POST", "/api/auth/login", { body: { email: rseed.admin.email, password: rseed.admin.password } }), 30);
    oldToken = adminTokens.access_token;
    oldRefresh = adminTokens.refresh_token;
    oldKid = kidOf(oldToken);
    assert.equal(kidOf(oldRefresh), oldKid);
    assert.equal(kidOf(userToken), oldKid);
    const viaEnvoy = await call("POST", "/api/auth/keys/rotate", { token: userToken });
    assert.equal(viaEnvoy.status, 403, viaEnvoy.text);
    const direct = await request(stack.workerUrl, "POST", "/api/auth/keys/rotate", { token: userToken });
    assert.equal(direct.status, 403, direct.text);
    assert.equal(direct.json.error, "forbidden");
    assert.equal((await call("POST", "/api/auth/keys/rotate")).status, 401, "no credential");
    // The admin's session cookie, straight to the worker: a state change needs this site's Origin.
    const login = await request(stack.workerUrl, "POST", "/api/auth/login", { body: { email: rseed.admin.email, password: rseed.admin.password } });
    const cookie = String(login.headers["set-cookie"]).split(";")[0];
    const csrf = await request(stack.workerUrl, "POST", "/api/auth/keys/rotate", { headers: { cookie, origin: "https://evil.example" } });
    assert.equal(csrf.status, 403, csrf.text);
    assert.equal(csrf.json.error, "origin_mismatch");
    const r = await call("POST", "/api/auth/keys/rotate", { token: oldToken });
    rotatedAt = Date.now();
    assert.equal(r.status, 200, r.text);
    newKid = r.json.current;
    assert.notEqual(newKid, oldKid);
    assert.deepEqual(r.json.previous.map((p) => p.kid), [oldKid]);
    const published = Date.parse(r.json.previous[0].published_until);
    assert.ok(Math.abs(published - (rotatedAt + 31_000)) < 2000, `published 31 s after the rotation: ${r.json.previous[0].published_until}`);
    const verified = Date.parse(r.json.previous[0].verified_until);
    assert.ok(Math.abs(verified - (rotatedAt + 1_209_601_000)) < 2000, `verify-only for refreshTokenTtl: ${r.json.previous[0].verified_until}`);
    const jwks = await call("GET", "/.well-known/jwks.json");
    assert.deepEqual(jwks.json.keys.map((k) => k.kid), [newKid, oldKid], "both published, the new one first");
    assert.ok(jwks.json.keys.every((k) => k.kty === "OKP" && k.d === undefined));
    assert.equal(jwks.headers["cache-control"], "public, max-age=30");
  });

  await check("a fresh sign-in's token (new kid) passes Envoy at once (unknown-kid refetch); the older token still passes", async () => {
    // Past min_refetch_secs (1 s) since Envoy's first fetch at start, and past the worker's 1 s
    // key cache in isolates other than the one that rotated.
    await sleep(Math.max(0, rotatedAt + 1100 - Date.now()));
    const fetched = await stack.envoyStat("keygate.jwks_fetched");
    newToken = await signIn(rseed.doctor);
    assert.equal(kidOf(newToken), newKid, "signed with the new key");
    const r = await call("GET", "/api/gateway/ping", { token: newToken });
    assert.equal(r.status, 200, r.text);
    assert.ok((await stack.envoyStat("keygate.jwks_fetched")) > fetched, "Envoy refetched for the unknown kid");
    assert.equal((await call("GET", "/api/patients/1", { token: newToken })).status, 200, "and upstream");
    const old = await call("GET", "/api/gateway/ping", { token: oldToken });
    assert.equal(old.status, 200, old.text);
  });

  let retiredAnswer;
  await check("after retirement (accessTokenTtl + leeway) the old key leaves the JWKS, and Envoy answers 401", async () => {
    const deadline = rotatedAt + 31_000 + 5000;
    let kids;
    do {
      await sleep(500);
      kids = (await request(stack.workerUrl, "GET", "/.well-known/jwks.json")).json.keys.map((k) => k.kid);
    } while (kids.includes(oldKid) && Date.now() < deadline);
    assert.deepEqual(kids, [newKid], "the worker retired the old key");
    const retiredSeenAt = Date.now();
    assert.ok(retiredSeenAt - rotatedAt >= 30_000, "not before accessTokenTtl + leeway");
    // Envoy drops it at its next refresh (cache_secs 30 after its last fetch, per VM).
    const until = Date.now() + 65_000;
    do {
      retiredAnswer = await call("GET", "/api/gateway/ping", { token: oldToken });
      if (retiredAnswer.status === 401) break;
      await sleep(1000);
    } while (Date.now() < until);
    assert.equal(retiredAnswer.status, 401, retiredAnswer.text);
    assert.ok(["token_unknown_key", "token_expired"].includes(retiredAnswer.json.error), retiredAnswer.text);
    // Each Envoy worker VM has its own key-set cache: the first 401 comes from the first VM that
    // refreshed. Every VM has refreshed once cache_secs (30 s) have passed since the worker stopped
    // publishing the key; from then on no VM may accept the old token (each request: a new connection).
    await sleep(Math.max(0, retiredSeenAt + 32_000 - Date.now()));
    for (let i = 0; i < 6; i++) {
      const again = await call("GET", "/api/gateway/ping", { token: oldToken });
      assert.equal(again.status, 401, `every VM refuses the retired key (${again.text})`);
    }
    console.log(`       (old token: 401 ${retiredAnswer.json.error}, ${((Date.now() - rotatedAt) / 1000).toFixed(1)} s after the rotation)`);
    const fresh = await signIn(rseed.doctor);
    assert.equal((await call("GET", "/api/gateway/ping", { token: fresh })).status, 200);
    newToken = fresh;
  });

  await check("a refresh token from before the rotation still refreshes (its key is verify-only at the worker, never published)", async () => {
    const jwks = (await call("GET", "/.well-known/jwks.json")).json;
    assert.ok(!jwks.keys.some((k) => k.kid === oldKid), "the old key is not published");
    const r = assertTokens(await call("POST", "/api/auth/refresh", { body: { refresh_token: oldRefresh } }), 30);
    assert.equal(kidOf(r.access_token), newKid, "the new pair is signed with the current key");
    assert.equal(kidOf(r.refresh_token), newKid);
    // Checked independently (node:crypto) against the published JWKS.
    const [h, p, sig] = r.access_token.split(".");
    const jwk = jwks.keys.find((k) => k.kid === newKid);
    assert.ok(verify(null, Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: "jwk" }), Buffer.from(sig, "base64url")));
    assert.equal((await call("GET", "/api/gateway/ping", { token: r.access_token })).status, 200);
    // The old access token stays refused by Envoy.
    assert.equal((await call("GET", "/api/gateway/ping", { token: oldToken })).status, 401);
  });

  await check("rotations are bounded: with 8 previous keys published the next rotation → 409 too_many_keys", async () => {
    const login = await request(stack.workerUrl, "POST", "/api/auth/login", { body: { email: rseed.admin.email, password: rseed.admin.password } });
    const admin = assertTokens(login, 30).access_token;
    const statuses = [];
    for (let i = 0; i < 9; i++) {
      statuses.push((await request(stack.workerUrl, "POST", "/api/auth/keys/rotate", { token: admin })).status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 409]);
    const jwks = await request(stack.workerUrl, "GET", "/.well-known/jwks.json");
    assert.equal(jwks.json.keys.length, 9, "the current key and 8 previous ones");
    assert.ok(jwks.json.keys.some((k) => k.kid === newKid), "the token's key is still published");
  });

  await check("worker stopped → Envoy keeps its last good key set: current tokens pass, a failed refetch is counted", async () => {
    await stack.stopWorker();
    assert.equal((await call("GET", "/api/gateway/ping", { token: newToken })).status, 200);
    // An unknown kid makes Envoy refetch; the worker is down, so the fetch fails and the set is kept.
    const [h, p, sig] = newToken.split(".");
    const header = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(h, "base64url")), kid: "no-such-key" })).toString("base64url");
    const failedBefore = (await stack.envoyStat("keygate.jwks_fetch_failed")) ?? 0;
    await sleep(1100); // past min_refetch_secs
    const unknown = await call("GET", "/api/gateway/ping", { token: `${header}.${p}.${sig}` });
    assert.equal(unknown.status, 401, unknown.text);
    assert.equal(unknown.json.error, "token_unknown_key");
    assert.ok((await stack.envoyStat("keygate.jwks_fetch_failed")) > failedBefore, "keygate.jwks_fetch_failed counted");
    const still = await call("GET", "/api/gateway/ping", { token: newToken });
    assert.equal(still.status, 200, still.text);
  });
  console.log(`demo-check: the rotation story took ${((Date.now() - rotationStarted) / 1000).toFixed(1)} s`);
} catch (e) {
  failed = true;
  console.error(`\n  ✗ step ${step} failed: ${e.message}`);
  if (!e.demo) console.error(e.stack);
  console.error(`  logs kept in ${dataDir}`);
} finally {
  await stack.stop();
}
if (!failed) for (const d of [dataDir, rotationDir]) rmSync(d, { recursive: true, force: true });
console.log(failed ? "demo-check: FAILED" : `demo-check: all ${step} steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
