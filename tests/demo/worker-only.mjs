// Worker-only mode (issue 13): the auth worker in a real workerd with no Envoy in front and
// WORKER_ONLY=1 applies the seed's rate limits itself, with its state in Durable Objects.
// Run by `make test-demo`. Exit code 0 only if every step passed.
//
// The client address: the worker reads CF-Connecting-IP, which Cloudflare's edge sets on every
// request; here the test plays that edge and sends the header itself. "Reaching the password
// check" is observable: a wrong password answers 401 invalid_credentials, a request stopped by
// a limit answers 429 rate_limited before the account's Durable Object sees it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import { Stack } from "./stack.mjs";
import { request, totpCode } from "./client.mjs";

const root = mkdtempSync(join(tmpdir(), "keygate-worker-only-"));
const stacks = [];
const started = Date.now();
let step = 0;
const notes = [];

async function check(name, fn) {
  step += 1;
  const t0 = Date.now();
  await fn();
  console.log(`  ✓ ${String(step).padStart(2)} ${name} (${Date.now() - t0} ms)`);
}

async function start(name, workerEnv, opts) {
  const s = new Stack({ dataDir: join(root, name), workerEnv });
  stacks.push(s);
  return s.startWorkerOnly(opts);
}

let addr = 0;
/** A fresh documentation address (RFC 5737) per call unless one is given. */
const fresh = () => `198.51.100.${++addr}`;
const call = (stack, method, path, { ip, ...opts } = {}) =>
  request(stack.workerUrl, method, path, { ...opts, headers: { "cf-connecting-ip": ip ?? fresh(), ...opts.headers } });
const parallel = (n, f) => Promise.all(Array.from({ length: n }, (_, i) => f(i)));

/** Counts the answers by `status error`; asserts every 429 carries the limit's headers. */
function tally(answers, policy) {
  const counts = {};
  for (const r of answers) {
    const key = `${r.status} ${r.json?.error}`;
    counts[key] = (counts[key] ?? 0) + 1;
    if (r.status === 429) {
      assert.match(r.headers["retry-after"] ?? "", /^[1-9][0-9]*$/, "429 without Retry-After");
      assert.equal(r.headers["ratelimit-policy"], policy);
      assert.match(r.headers.ratelimit ?? "", /;r=0;t=[0-9]+$/);
    }
  }
  return counts;
}

/** POSTs an endless login body; resolves with the status and how much was sent by then. */
function endlessBody(s) {
  const url = new URL("/api/auth/login", s.workerUrl);
  return new Promise((ok, ko) => {
    let sent = 0;
    let done = false;
    let failed = null;
    const req = http.request(url, { method: "POST", headers: { "content-type": "application/json", "cf-connecting-ip": fresh() } }, (res) => {
      done = true;
      res.resume();
      ok({ status: res.statusCode, sent });
      req.destroy();
    });
    // The server may close the connection while we still write (EPIPE): its answer is
    // read anyway; only no answer at all is a failure.
    // A server that answers and closes while we still write may reset the connection before
    // the answer is read (TCP discards it): then the cut is proven by `sent` and by the worker
    // answering the next request (see bodyCutOff), not by the status.
    req.on("error", (e) => {
      failed ??= e;
      setTimeout(() => done || (["EPIPE", "ECONNRESET"].includes(failed.code) ? ok({ status: "reset", sent }) : ko(failed)), 1000);
    });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const pump = () => {
      if (done || failed) return;
      if (sent >= 256 * 1024 * 1024) return req.end();
      sent += chunk.length;
      req.write(chunk, () => setTimeout(pump, 1));
    };
    req.write('{"email":"x@example.com","password":"');
    pump();
      });
}

/** The endless body is cut off early: 413, or the connection closed by the worker long before the
 * end of the body; either way the worker still answers afterwards (it did not buffer it all). */
async function bodyCutOff(s) {
  const { status, sent } = await endlessBody(s);
  assert.ok(status === 413 || status === "reset", `status ${status}`);
  assert.ok(sent < 64 * 1024 * 1024, `cut off after ${sent} bytes sent, not at the end`);
  const after = await call(s, "GET", "/.well-known/jwks.json", {});
  assert.equal(after.status, 200, "the worker still answers");
}

let failed = false;
try {
  const on = await start("on", { WORKER_ONLY: "1" });
  const users = Object.fromEntries(on.seeded.users.map((u) => [u.email, u]));
  const LOGIN = '"5/minute";q=5;w=60';

  await check("20 parallel wrong logins from one address: exactly 5 reach the password check", async () => {
    const ip = "203.0.113.7";
    const answers = await parallel(20, () =>
      call(on, "POST", "/api/auth/login", { ip, body: { email: "user@example.com", password: "wrong password" } }));
    assert.deepEqual(tally(answers, LOGIN), { "401 invalid_credentials": 5, "429 rate_limited": 15 });
    // The admitted answers carry the RateLimit headers too (the per-address quota).
    const ok = answers.find((r) => r.status === 401);
    assert.equal(ok.headers["ratelimit-policy"], LOGIN);
    assert.match(ok.headers.ratelimit, /^"5\/minute";r=[0-4];t=[0-9]+$/);
    // The address is spent for every account, the right password included.
    const right = await call(on, "POST", "/api/auth/login", { ip, body: { email: "admin@example.com", password: users["admin@example.com"].password } });
    assert.equal(right.status, 429, right.text);
  });

  await check("20 parallel wrong logins at one account from 20 addresses: exactly 5 reach the password check", async () => {
    const answers = await parallel(20, () =>
      call(on, "POST", "/api/auth/login", { body: { email: "doctor@example.com", password: "wrong password" } }));
    assert.deepEqual(tally(answers, LOGIN), { "401 invalid_credentials": 5, "429 rate_limited": 15 });
    // The account is spent from any address, for its own right password too; another is not.
    const doctor = await call(on, "POST", "/api/auth/login", { body: { email: "Doctor@Example.com", password: users["doctor@example.com"].password } });
    assert.equal(doctor.status, 429, "the account limit keys on the normalised email");
    const admin = await call(on, "POST", "/api/auth/login", { body: { email: "admin@example.com", password: users["admin@example.com"].password } });
    assert.equal(admin.status, 200, admin.text);
  });

  await check("an unknown account is limited exactly like a real one (a 429 tells nothing)", async () => {
    const answers = await parallel(20, () =>
      call(on, "POST", "/api/auth/login", { body: { email: "nobody@example.com", password: "wrong password" } }));
    assert.deepEqual(tally(answers, LOGIN), { "401 invalid_credentials": 5, "429 rate_limited": 15 });
  });

  await check("MFA: 5/minute per address and per account (the MFA token's user)", async () => {
    const MFA = '"5/minute";q=5;w=60';
    const bad = await parallel(20, () =>
      call(on, "POST", "/api/auth/mfa", { ip: "203.0.113.9", body: { mfa_token: "not-a-token", code: "123456" } }));
    assert.deepEqual(tally(bad, MFA), { "401 mfa_token_invalid": 5, "429 rate_limited": 15 });
    // An account with MFA on; then 20 guesses at its code from 20 addresses.
    const ip = fresh();
    const pw = users["admin@example.com"].password;
    const login = await call(on, "POST", "/api/auth/login", { ip, body: { email: "admin@example.com", password: pw } });
    assert.equal(login.status, 200, login.text);
    const token = login.json.access_token;
    const setup = await call(on, "POST", "/api/auth/mfa/setup", { token, body: { password: pw } });
    assert.equal(setup.status, 200, setup.text);
    const verify = await call(on, "POST", "/api/auth/mfa/verify", { token, body: { code: totpCode(setup.json.secret) } });
    assert.equal(verify.status, 200, verify.text);
    const pending = await call(on, "POST", "/api/auth/login", { body: { email: "admin@example.com", password: pw } });
    assert.equal(pending.json?.mfa_required, true, pending.text);
    const guesses = await parallel(20, () =>
      call(on, "POST", "/api/auth/mfa", { body: { mfa_token: pending.json.mfa_token, code: "000000" } }));
    const counts = tally(guesses, MFA);
    assert.equal(counts["429 rate_limited"], 15, JSON.stringify(counts));
    // The 5 that reached the account were answered by the account's MFA check (wrong code).
    assert.equal(guesses.filter((r) => r.status === 401).length, 5, JSON.stringify(counts));
  });

  await check("password reset: 3/hour per address and per account", async () => {
    const RESET = '"3/hour";q=3;w=3600';
    const ip = fresh();
    const byAddress = [];
    for (let i = 0; i < 5; i++) {
      byAddress.push(await call(on, "POST", "/api/auth/password-reset", { ip, body: { email: `reset-${i}@example.com` } }));
    }
    assert.deepEqual(tally(byAddress, RESET), { "200 undefined": 3, "429 rate_limited": 2 });
    const byAccount = await parallel(8, () => call(on, "POST", "/api/auth/password-reset", { body: { email: "reset-target@example.com" } }));
    assert.deepEqual(tally(byAccount, RESET), { "200 undefined": 3, "429 rate_limited": 5 });
  });

  await check("other endpoints: the defaults, 200/day + 50/hour per address", async () => {
    const ip = fresh();
    const answers = [];
    for (let i = 0; i < 51; i++) answers.push(await call(on, "POST", "/api/auth/refresh", { ip, body: { refresh_token: "x" } }));
    const counts = tally(answers, '"200/day";q=200;w=86400, "50/hour";q=50;w=3600');
    assert.deepEqual(counts, { "401 refresh_revoked": 50, "429 rate_limited": 1 });
    assert.match(answers[0].headers.ratelimit, /"50\/hour";r=49/);
  });

  await check("sign-up refuses a password made of the service's name or the address (password_blocklisted)", async () => {
    for (const [email, password] of [["ann@example.com", "my keygate demo password"], ["ann.lee@example.com", "ann.lee-is-the-best"]]) {
      const r = await call(on, "POST", "/api/auth/register", { body: { email, password } });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error, "password_blocklisted");
    }
    const ok = await call(on, "POST", "/api/auth/register", { body: { email: "ann@example.com", password: "correct horse battery staple" } });
    assert.equal(ok.status, 202, ok.text);
  });

  await check("IPv6: one /64 is one client, however the address is written", async () => {
    const spellings = (i) => [`2001:DB8:0:7::${(i + 1).toString(16)}`, `2001:db8:0:7:0:0:${i}:1`, `2001:0db8:0000:0007:ffff::${i}`][i % 3];
    const answers = await parallel(20, (i) =>
      call(on, "POST", "/api/auth/login", { ip: spellings(i), body: { email: `v6-${i}@example.com`, password: "wrong password" } }));
    assert.deepEqual(tally(answers, LOGIN), { "401 invalid_credentials": 5, "429 rate_limited": 15 });
    const other = await call(on, "POST", "/api/auth/login", { ip: "2001:db8:0:8::1", body: { email: "v6@example.com", password: "wrong password" } });
    assert.equal(other.status, 401, "another /64 is another client");
    // Not an address: one shared bucket, not one each.
    const junk = await parallel(8, (i) =>
      call(on, "POST", "/api/auth/login", { ip: `junk-${i}`, body: { email: `junk-${i}@example.com`, password: "wrong password" } }));
    assert.deepEqual(tally(junk, LOGIN), { "401 invalid_credentials": 5, "429 rate_limited": 3 });
  });

  await check("successful logins are not charged to the account (10 in a row sign in)", async () => {
    const pw = users["admin@example.com"].password;
    for (let i = 0; i < 10; i++) {
      const r = await call(on, "POST", "/api/auth/login", { body: { email: "admin@example.com", password: pw } });
      assert.equal(r.status, 200, `login ${i}: ${r.text}`);
    }
  });

  await check("password proofs (password change, MFA setup) count toward the account's login limit", async () => {
    const email = "ann@example.com";
    const mail = await on.outbox(email);
    assert.equal(mail?.kind, "confirm-signup", JSON.stringify(mail));
    const made = await call(on, "POST", "/api/auth/register/confirm", { body: { email, token: mail.token } });
    assert.equal(made.status, 201, made.text);
    const login = await call(on, "POST", "/api/auth/login", { body: { email, password: "correct horse battery staple" } });
    assert.equal(login.status, 200, login.text);
    const token = login.json.access_token;
    const guesses = await parallel(20, () =>
      call(on, "POST", "/api/auth/password", { token, body: { current_password: "a wrong guess", new_password: "another passphrase" } }));
    assert.deepEqual(tally(guesses, LOGIN), { "403 reauthentication_required": 5, "429 rate_limited": 15 });
    // The same account bucket as a login.
    const again = await call(on, "POST", "/api/auth/login", { body: { email, password: "correct horse battery staple" } });
    assert.equal(again.status, 429, again.text);
    const setup = await call(on, "POST", "/api/auth/mfa/setup", { token, body: { password: "a wrong guess" } });
    assert.equal(setup.status, 429, setup.text);
  });

  await check("register: 5/minute + 30/hour per address (as envoy/demo.yaml)", async () => {
    const ip = fresh();
    const answers = [];
    for (let i = 0; i < 6; i++) {
      answers.push(await call(on, "POST", "/api/auth/register", { ip, body: { email: `reg-${i}@example.com`, password: "correct horse battery staple" } }));
    }
    assert.deepEqual(tally(answers, '"5/minute";q=5;w=60, "30/hour";q=30;w=3600'), { "202 undefined": 5, "429 rate_limited": 1 });
  });

  await check("an endless body is cut off at 16 KiB with 413 (never buffered)", async () => {
    await bodyCutOff(on);
  });

  await check("a key's state is forgotten by its alarm (then fresh again, not broken)", async () => {
    // Its own worker, whose states are forgotten 2 s after the last admission (tests only:
    // see limits.js), so the alarm runs inside the test.
    const alarmed = await start("alarm", { WORKER_ONLY: "1", LIMITS_FORGET_AFTER_MS: "2000" }, { seed: false });
    const ip = fresh();
    const burst = async () => parallel(6, (i) => call(alarmed, "POST", "/api/auth/login", { ip, body: { email: `alarm-${i}-${Date.now()}@example.com`, password: "wrong password" } }));
    assert.deepEqual(tally(await burst(), LOGIN), { "401 invalid_credentials": 5, "429 rate_limited": 1 });
    await new Promise((r) => setTimeout(r, 3500)); // LIMITS_FORGET_AFTER_MS 2000 + the alarm's run
    assert.deepEqual(tally(await burst(), LOGIN), { "401 invalid_credentials": 5, "429 rate_limited": 1 });
  });

  await check("switch off (behind Envoy): no limits in the worker, no RateLimit headers", async () => {
    const off = await start("off", {});
    const answers = await parallel(8, () =>
      call(off, "POST", "/api/auth/login", { ip: "203.0.113.7", body: { email: "user@example.com", password: "wrong password" } }));
    assert.deepEqual(tally(answers, ""), { "401 invalid_credentials": 8 });
    assert.ok(answers.every((r) => r.headers.ratelimit === undefined && r.headers["ratelimit-policy"] === undefined));
    await bodyCutOff(off); // the body cap holds with the switch off too
    // Measured, not asserted: what the limit costs a request (a refresh with a bad token: no
    // Argon2), 40 each, interleaved, one address on the limited side (one Durable Object).
    const ip = fresh();
    const times = { on: [], off: [] };
    for (let i = 0; i < 40; i++) {
      for (const [name, s] of [["on", on], ["off", off]]) {
        const t = performance.now();
        const r = await call(s, "POST", "/api/auth/refresh", { ip, body: { refresh_token: "x" } });
        times[name].push(performance.now() - t);
        assert.equal(r.status, 401, r.text);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    notes.push(`refresh (bad token) median: worker-only ${median(times.on).toFixed(2)} ms, switch off ${median(times.off).toFixed(2)} ms`);
  });

  await check("a switch value that is neither on nor off: every API request refused (500), never unlimited", async () => {
    const typo = await start("typo", { WORKER_ONLY: "yes" }, { seed: false });
    const r = await call(typo, "POST", "/api/auth/login", { body: { email: "user@example.com", password: "wrong password" } });
    assert.equal(r.status, 500, r.text);
    assert.equal(r.json.error, "internal_error");
  });
} catch (e) {
  failed = true;
  console.error(`\n  ✗ step ${step} failed: ${e.message}`);
  if (!e.demo) console.error(e.stack);
  console.error(`  logs kept in ${root}`);
} finally {
  for (const s of stacks) await s.stop();
}
for (const n of notes) console.log(`  · ${n}`);
if (!failed) rmSync(root, { recursive: true, force: true });
console.log(failed ? "worker-only: FAILED" : `worker-only: all ${step} steps passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
