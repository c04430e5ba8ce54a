// Issue 13: the seed's protections without Envoy — checkRateLimit (core GCRA, opaque state).
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkRateLimit, KeygateError } from "../node.js";

const T0 = new Date("2026-01-01T00:00:00Z");
const at = (s) => ({ now: new Date(T0.getTime() + s * 1000) });

test("checkRateLimit: 5/minute admits 5, refuses the 6th with Retry-After, state on every answer", () => {
  let state = null;
  for (let i = 0; i < 5; i++) {
    const r = checkRateLimit("5/minute", state, at(0));
    assert.equal(r.allowed, true, `request ${i}`);
    assert.equal(r.retryAfter, null);
    assert.deepEqual(r.headers, { "RateLimit-Policy": '"5/minute";q=5;w=60', RateLimit: `"5/minute";r=${4 - i};t=${12 * (i + 1)}` });
    state = r.state;
  }
  const no = checkRateLimit("5/minute", state, at(0));
  assert.equal(no.allowed, false);
  assert.equal(no.retryAfter, 12);
  assert.equal(no.headers["Retry-After"], "12");
  assert.equal(typeof no.state, "string");
  assert.equal(checkRateLimit("5/minute", no.state, at(11)).allowed, false);
  assert.equal(checkRateLimit("5/minute", no.state, at(12)).allowed, true);
});

test("checkRateLimit: the seed's defaults 200/day + 50/hour must both admit", () => {
  let state = null;
  let admitted = 0;
  for (let i = 0; i < 60; i++) {
    const r = checkRateLimit(["200/day", "50/hour"], state, at(0));
    state = r.state;
    admitted += r.allowed ? 1 : 0;
  }
  assert.equal(admitted, 50);
  const r = checkRateLimit(["200/day", "50/hour"], state, at(0));
  assert.equal(r.headers["RateLimit-Policy"], '"200/day";q=200;w=86400, "50/hour";q=50;w=3600');
  assert.equal(r.retryAfter, 72);
});

test("checkRateLimit: garbage, truncated or another limit's state is rate_limit_state_invalid", () => {
  const good = checkRateLimit("5/minute", null, at(0)).state;
  const other = checkRateLimit("3/hour", null, at(0)).state;
  for (const bad of ["", "garbage", good.slice(0, -3), other, good + "AAAA"]) {
    assert.throws(() => checkRateLimit("5/minute", bad, at(0)), (e) => e instanceof KeygateError && e.code === "rate_limit_state_invalid", bad);
  }
});

test("checkRateLimit: bad limits and arguments name the field", () => {
  assert.throws(() => checkRateLimit("5/fortnight", null), { code: "config_invalid", field: "limit" });
  assert.throws(() => checkRateLimit(["5/minute", "x"], null), { code: "config_invalid", field: "limit[1]" });
  assert.throws(() => checkRateLimit(5, null), { code: "invalid_input", field: "limit" });
  assert.throws(() => checkRateLimit("5/minute", 7), { code: "invalid_input", field: "state" });
  assert.throws(() => checkRateLimit("5/minute", null, { now: 5 }), { code: "invalid_input", field: "options.now" });
});

// ---- per-account throttling ---------------------------------------------------------------
import { Keygate, hashPassword } from "../node.js";

const FAST = { timeCost: 1, memoryCost: 256, parallelism: 1 };
const kg = new Keygate({ secret: "edge-limits-secret-0123456789abcdef", password: FAST });

test("login throttle: 10 failures lock the name, the right password then answers invalid; success resets", () => {
  const user = { id: "u1", passwordHash: hashPassword("correct horse", FAST), roles: [] };
  let failures = null;
  for (let i = 1; i <= 10; i++) {
    const r = kg.login(user, "wrong", { now: T0, failures });
    assert.equal(r.status, "invalid");
    failures = r.failures;
    assert.match(failures, new RegExp(`^af1\\.${i}\\.`));
  }
  const locked = kg.login(user, "correct horse", { ...at(29), failures });
  assert.deepEqual(locked, { status: "invalid", failures });
  // Unknown names are throttled the same way (the lock tells nothing about existence).
  assert.deepEqual(kg.login(null, "correct horse", { ...at(29), failures }), { status: "invalid", failures });
  const ok = kg.login(user, "correct horse", { ...at(30), failures });
  assert.equal(ok.status, "ok");
  assert.equal(ok.failures, null);
  // Without `failures` login is unchanged (no field).
  assert.equal("failures" in kg.login(user, "wrong", { now: T0 }), false);
});

test("login throttle: settings, garbage state and loginAsync", async () => {
  const user = { id: "u2", passwordHash: hashPassword("correct horse", FAST), roles: [] };
  const r1 = kg.login(user, "wrong", { now: T0, failures: null, throttle: { maxFailures: 1, baseDelay: 5 } });
  assert.equal(r1.failures, `af1.1.${T0.getTime() / 1000 + 5}`);
  const r2 = await kg.loginAsync(user, "correct horse", { ...at(4), failures: r1.failures });
  assert.deepEqual(r2, { status: "invalid", failures: r1.failures });
  assert.throws(() => kg.login(user, "x", { failures: "garbage" }), { code: "login_state_invalid" });
  assert.throws(() => kg.login(user, "x", { failures: null, throttle: { maxFailures: 0 } }), { code: "config_invalid", field: "options.throttle.maxFailures" });
  assert.throws(() => kg.login(user, "x", { failures: null, throttle: { nope: 1 } }), { code: "invalid_input", field: "options.throttle" });
});

// ---- breached and blocklisted passwords ---------------------------------------------------
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { passwordBreachCount, hashPasswordAsync, verifyPassword } from "../node.js";

// A local server in the range format: "password" is breached, padding lines (count 0) are
// added, /range/FFFFF answers 503 and /range/00000 garbage.
async function rangeServer() {
  const seen = [];
  const sha = (p) => createHash("sha1").update(p).digest("hex").toUpperCase();
  const breached = sha("password");
  const paddedOnly = sha("padded-only-password");
  const server = createServer((req, res) => {
    const prefix = req.url.replace("/range/", "");
    seen.push(prefix);
    if (prefix === "FFFFF") return res.writeHead(503).end("unavailable");
    if (prefix === "00000") return res.writeHead(200).end("<html>oops</html>");
    const lines = ["0018A45C4D1DEF81644B54AB7F969B88D65:1"];
    if (breached.startsWith(prefix)) lines.push(`${breached.slice(5)}:10434004`);
    if (paddedOnly.startsWith(prefix)) lines.push(`${paddedOnly.slice(5)}:0`);
    for (let i = 0; i < 50; i++) lines.push(`${createHash("sha1").update(String(i)).digest("hex").toUpperCase().slice(5)}:0`);
    res.writeHead(200, { "content-type": "text/plain" }).end(lines.join("\r\n"));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${server.address().port}/range/`;
  return { server, seen, base, sha };
}

test("passwordBreachCount: k-anonymity against a local range server, padding, errors", async () => {
  const { server, seen, base, sha } = await rangeServer();
  try {
    const fetchRange = (p) => fetch(base + p);
    assert.equal(await passwordBreachCount("password", fetchRange), 10434004);
    assert.deepEqual(seen, ["5BAA6"], "only the 5-hex prefix is sent");
    assert.equal(await passwordBreachCount("correct horse battery staple", async (p) => (await fetch(base + p)).text()), 0);
    assert.equal(await passwordBreachCount("padded-only-password", fetchRange), 0, "a padding entry is not a hit");
    // Server errors and garbage: a clear error, never a silent "not breached".
    const failing = (prefix) => (p) => fetch(base + prefix);
    await assert.rejects(passwordBreachCount("password", failing("FFFFF")), (e) => e instanceof KeygateError && e.code === "breach_check_failed" && /503/.test(e.message));
    await assert.rejects(passwordBreachCount("password", failing("00000")), { code: "breach_check_failed" });
    await assert.rejects(passwordBreachCount("password", () => { throw new Error("offline"); }), { code: "breach_check_failed" });
    await assert.rejects(passwordBreachCount("password", async () => 42), { code: "breach_check_failed" });
    await assert.rejects(passwordBreachCount("password", "nope"), { code: "invalid_input", field: "fetchRange" });
    assert.equal(sha("password").slice(0, 5), "5BAA6");
  } finally {
    server.close();
  }
});

test("hashPassword: breachCount and blocklist are refused with clear codes before hashing", async () => {
  assert.throws(() => hashPassword("password123", { ...FAST, breachCount: 3 }), { code: "password_breached" });
  assert.throws(() => hashPassword("MyKeygate!2026", { ...FAST, blocklist: ["keygate"] }), { code: "password_blocklisted" });
  assert.throws(() => hashPassword("alice.smith-rocks", { ...FAST, blocklist: ["alice.smith@example.com"] }), { code: "password_blocklisted" });
  await assert.rejects(hashPasswordAsync("MyKeygate!2026", { ...FAST, blocklist: ["keygate"] }), { code: "password_blocklisted" });
  const h = hashPassword("correct horse battery", { ...FAST, breachCount: 0, blocklist: ["keygate", "alice@example.com"] });
  assert.equal(verifyPassword(h, "correct horse battery"), true);
  assert.equal(verifyPassword(await hashPasswordAsync("correct horse battery", { ...FAST, breachCount: 0 }), "correct horse battery"), true);
  assert.throws(() => hashPassword("x".repeat(10), { breachCount: -1 }), { code: "invalid_input", field: "options.breachCount" });
  assert.throws(() => hashPassword("x".repeat(10), { blocklist: "keygate" }), { code: "invalid_input", field: "options.blocklist" });
});

test("changePassword / resetPassword: blocklist and breachCount checked on the new password by the core", () => {
  const user = { id: "u3", passwordHash: hashPassword("correct horse", FAST), roles: [] };
  assert.throws(() => kg.changePassword(user, "correct horse", "bob.jones-keygate", { blocklist: ["keygate"] }), { code: "password_blocklisted" });
  assert.throws(() => kg.changePassword(user, "correct horse", "bob.jones-2026!", { blocklist: ["bob.jones@example.com"] }), { code: "password_blocklisted" });
  assert.throws(() => kg.changePassword(user, "correct horse", "a new passphrase", { breachCount: 1 }), { code: "password_breached" });
  const changed = kg.changePassword(user, "correct horse", "a new passphrase", { breachCount: 0, blocklist: ["keygate", "bob.jones@example.com"] });
  assert.equal(verifyPassword(changed.passwordHash, "a new passphrase"), true);
  const token = kg.requestPasswordReset(user);
  assert.throws(() => kg.resetPassword(token, user, "keygate forever", { blocklist: ["keygate"] }), { code: "password_blocklisted" });
  assert.throws(() => kg.resetPassword(token, user, "a new passphrase", { breachCount: 7 }), { code: "password_breached" });
  // The refusals spent nothing: the same link still works.
  assert.equal(verifyPassword(kg.resetPassword(token, user, "another passphrase", { blocklist: ["keygate"] }).passwordHash, "another passphrase"), true);
  assert.throws(() => kg.changePassword(user, "correct horse", "a new passphrase", { blocklist: "keygate" }), { code: "invalid_input", field: "options.blocklist" });
});

import { clientAddressKey } from "../node.js";

test("clientAddressKey: the filter's address key (canonical, IPv6 by /64), null for a non-address", () => {
  assert.equal(clientAddressKey("203.0.113.7"), "ip:203.0.113.7");
  assert.equal(clientAddressKey("2001:DB8:1:2:0:0:0:7"), "ip:2001:db8:1:2::/64");
  assert.equal(clientAddressKey("2001:db8:1:2:ffff:ffff:ffff:ffff"), "ip:2001:db8:1:2::/64");
  assert.equal(clientAddressKey("[2001:db8:1:2::1]:443"), "ip:2001:db8:1:2::/64");
  assert.equal(clientAddressKey("::ffff:198.51.100.1"), "ip:198.51.100.1");
  for (const bad of ["", "not an ip", "1.2.3", "203.0.113.7 ", "x".repeat(100)]) assert.equal(clientAddressKey(bad), null, bad);
  assert.throws(() => clientAddressKey(5), { code: "invalid_input", field: "address" });
});
