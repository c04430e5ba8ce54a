// The API edges of issue 11: KeygateError's constructor, verifyAccessToken(null), the
// `leeway` config, custom access-token claims (checked by jose), and the *Async functions
// (off the event loop in Node, inline where there are no threads).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as jose from "jose";
import {
  Keygate, KeygateError, hashPassword, hashPasswordAsync, verifyPassword, verifyPasswordAsync,
} from "../node.js";

const SECRET = "edges-test-secret-0123456789abcdef0123";
const KEY = new TextEncoder().encode(SECRET);
const FAST = { timeCost: 1, memoryCost: 256, parallelism: 1 };

test("KeygateError has a real constructor", () => {
  const e = new KeygateError("token_expired", "expired", { claim: "exp", cause: "c" });
  assert.ok(e instanceof Error && e instanceof KeygateError);
  assert.deepEqual([e.name, e.code, e.message, e.claim, e.field, e.cause], ["KeygateError", "token_expired", "expired", "exp", undefined, "c"]);
});

test("verifyAccessToken(null | undefined) is null; other non-strings still throw", () => {
  const kg = new Keygate({ secret: SECRET });
  assert.equal(kg.verifyAccessToken(null), null);
  assert.equal(kg.verifyAccessToken(undefined), null);
  assert.throws(() => kg.verifyAccessToken(42), { code: "invalid_input", field: "token" });
});

test("leeway: 0–300 s, default 30, refused above", () => {
  const issued = new Date("2026-01-01T00:00:00Z");
  const at = (s) => ({ now: new Date(issued.getTime() + (900 + s) * 1000) }); // 900 s = access TTL
  const token = new Keygate({ secret: SECRET }).createAccessToken("u1", [], { now: issued });
  const verify = (cfg, s) => new Keygate({ secret: SECRET, ...cfg }).verifyAccessToken(token, at(s)) !== null;
  assert.deepEqual([verify({}, 30), verify({}, 31)], [true, false]);
  assert.deepEqual([verify({ leeway: 0 }, 0), verify({ leeway: 0 }, 1)], [true, false]);
  assert.deepEqual([verify({ leeway: "5m" }, 300), verify({ leeway: 300 }, 301)], [true, false]);
  assert.throws(() => new Keygate({ secret: SECRET, leeway: 301 }), { code: "config_invalid", field: "leeway" });
  assert.throws(() => new Keygate({ secret: SECRET, leeway: -1 }), { code: "config_invalid", field: "leeway" });
});

test("custom claims on access tokens: read by jose, names keygate owns refused", async () => {
  const kg = new Keygate({ secret: SECRET, issuer: "edges" });
  const token = kg.createAccessToken("u1", ["admin"], { claims: { tenant: "acme", plan: { seats: 5 } } });
  const { payload } = await jose.jwtVerify(token, KEY, { issuer: "edges" });
  assert.deepEqual([payload.sub, payload.type, payload.tenant, payload.plan], ["u1", "access", "acme", { seats: 5 }]);
  assert.equal(kg.verifyAccessToken(token).tenant, "acme");
  for (const name of ["sub", "type", "roles", "exp", "iss", "aud", "jti", "permissions"]) {
    assert.throws(() => kg.createAccessToken("u1", [], { claims: { [name]: "x" } }),
      { name: "KeygateError", code: "invalid_input", field: `options.claims.${name}` }, name);
  }
  assert.throws(() => kg.createAccessToken("u1", [], { claims: "tenant=acme" }), { code: "invalid_input", field: "options.claims" });
  assert.throws(() => kg.createAccessToken("u1", [], { claims: { big: "x".repeat(5000) } }), { code: "invalid_input", field: "options.claims" });
});

test("hashPasswordAsync / verifyPasswordAsync / loginAsync: same results, the event loop keeps running", async () => {
  let turns = 0;
  let running = true;
  const spin = () => { turns++; if (running) setImmediate(spin); };
  spin();
  const before = turns;
  const hash = await hashPasswordAsync("correct horse battery staple");
  const during = turns - before;
  running = false;
  // A hash at the seed's parameters runs for a while: on the pool the loop turned meanwhile
  // (inline, no callback could run before the await resumed).
  assert.ok(during > 1, `event loop turned ${during} times during the hash`);
  assert.match(hash, /^\$argon2id\$v=19\$m=65536,t=3,p=4\$/);
  assert.equal(verifyPassword(hash, "correct horse battery staple"), true);
  assert.equal(await verifyPasswordAsync(hash, "correct horse battery staple"), true);
  assert.equal(await verifyPasswordAsync(hash, "wrong"), false);
  await assert.rejects(verifyPasswordAsync("garbage", "x"), (e) => e instanceof KeygateError && e.code === "hash_invalid");
  await assert.rejects(hashPasswordAsync("short", FAST), (e) => e instanceof KeygateError && e.code === "password_too_short");
  await assert.rejects(hashPasswordAsync(42), { code: "invalid_input", field: "password" });
  const many = await Promise.all([1, 2, 3, 4, 5].map((i) => hashPasswordAsync(`password number ${i}`, FAST)));
  assert.deepEqual(many.map((h, i) => verifyPassword(h, `password number ${i + 1}`)), [true, true, true, true, true]);

  const kg = new Keygate({ secret: SECRET });
  const user = { id: "u1", passwordHash: hashPassword("correct horse battery staple", FAST), roles: ["r"] };
  const r = await kg.loginAsync(user, "correct horse battery staple");
  assert.equal(r.status, "ok");
  assert.equal(kg.verifyAccessToken(r.tokens.access_token).sub, "u1");
  assert.equal(r.tokens.family.familyId, r.family.familyId, "the family rides along, non-enumerable");
  assert.deepEqual(Object.keys(r.tokens).sort(), ["access_token", "expires_in", "refresh_token", "token_type"]);
  assert.equal((await kg.loginAsync(user, "wrong password")).status, "invalid");
  assert.equal((await kg.loginAsync(null, "whatever password")).status, "invalid");
});

test("the *Async functions run inline where keygate installs no pool (inline.js: Deno, browsers)", () => {
  const inline = fileURLToPath(new URL("../inline.js", import.meta.url));
  const script = `
    const k = await import(${JSON.stringify(inline)});
    const h = await k.hashPasswordAsync("correct horse battery staple", { timeCost: 1, memoryCost: 256, parallelism: 1 });
    const kg = new k.Keygate({ secret: ${JSON.stringify(SECRET)} });
    const r = await kg.loginAsync({ id: "u1", passwordHash: h }, "correct horse battery staple");
    console.log(JSON.stringify([await k.verifyPasswordAsync(h, "correct horse battery staple"), r.status, !!r.tokens.family]));
  `;
  const out = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(out.status, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), [true, "ok", true]);
});
