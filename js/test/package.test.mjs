// The packed npm module as users get it: `npm pack` → install into an empty directory → import
// it from Node, and from a worker served by a real workerd on 127.0.0.1 (checked over HTTP).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, copyFileSync, existsSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as jose from "jose";
import * as OTPAuth from "otpauth";
import { freePort } from "../../tests/support/ports.mjs";

const require = createRequire(import.meta.url);
const PKG_DIR = fileURLToPath(new URL("..", import.meta.url));
const SESSION_SECRET = "workerd-session-secret-0123456789abcdef";

let dir; // temp dir: the tarball and the app that installs it
let app;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  assert.equal(r.error, undefined, `${cmd} could not run: ${r.error}`);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "keygate-pack-"));
  run("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: PKG_DIR });
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  assert.ok(tgz, "npm pack produced a tarball");
  app = join(dir, "app");
  run("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--silent", join(dir, tgz)], { cwd: app });
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the tarball installs into an empty project and imports in Node", () => {
  for (const f of ["package.json", "index.d.ts", "node.js", "workerd.js", "keygate/api.js", "keygate/keygate_js.js", "keygate/keygate_js_bg.wasm"]) {
    assert.ok(existsSync(join(app, "node_modules/keygate", f)), f);
  }
  const script = `
    import { hashPassword, verifyPassword, Keygate, KeygateError } from "keygate";
    const h = hashPassword("packed password", { timeCost: 1, memoryCost: 64, parallelism: 1 });
    const kg = new Keygate({ secret: "${SESSION_SECRET}" });
    const t = kg.issueTokens({ id: "u1" });
    let code; try { new Keygate({}); } catch (e) { code = e instanceof KeygateError && e.code; }
    console.log(JSON.stringify({ ok: verifyPassword(h, "packed password"), sub: kg.verifyAccessToken(t.access_token).sub, code }));
  `;
  const out = JSON.parse(run(process.execPath, ["--input-type=module", "-e", script], { cwd: app }));
  assert.deepEqual(out, { ok: true, sub: "u1", code: "config_invalid" });
});

describe("in workerd", () => {
  let proc;
  let base;
  let logs = "";
  let signingKey;

  before(async () => {
    const workerd = require("workerd");
    const bin = workerd.default;
    assert.ok(existsSync(bin), `workerd binary missing: ${bin} (make setup)`);
    copyFileSync(fileURLToPath(new URL("./workerd/worker.js", import.meta.url)), join(app, "worker.js"));
    // A fresh Ed25519 key from the package itself (in Node), handed to the worker as a binding.
    const { generateSigningKey } = await import(join(app, "node_modules/keygate/node.js"));
    signingKey = generateSigningKey("EdDSA", { kid: "workerd-test" });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // The four modules of the package, named as README documents for raw workerd configs.
    const capnp = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .w)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const w :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "keygate", esModule = embed "node_modules/keygate/workerd.js"),
    (name = "keygate/api.js", esModule = embed "node_modules/keygate/keygate/api.js"),
    (name = "keygate/keygate_js.js", esModule = embed "node_modules/keygate/keygate/keygate_js.js"),
    (name = "keygate/keygate_js_bg.wasm", wasm = embed "node_modules/keygate/keygate/keygate_js_bg.wasm"),
  ],
  bindings = [
    (name = "SIGNING_KEY", json = ${JSON.stringify(JSON.stringify(signingKey))}),
    (name = "SESSION_SECRET", text = "${SESSION_SECRET}"),
  ],
  compatibilityDate = "2025-01-01",
);
`;
    writeFileSync(join(app, "config.capnp"), capnp);
    proc = spawn(bin, ["serve", "config.capnp"], { cwd: app, stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout.on("data", (d) => (logs += d));
    proc.stderr.on("data", (d) => (logs += d));
    const deadline = Date.now() + 20_000;
    for (;;) {
      assert.equal(proc.exitCode, null, `workerd exited early:\n${logs}`);
      try {
        const r = await fetch(`${base}/.well-known/jwks.json`);
        if (r.ok) break;
      } catch {
        // not listening yet
      }
      assert.ok(Date.now() < deadline, `workerd did not start:\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  });

  async function call(method, path, body, headers = {}) {
    const r = await fetch(base + path, {
      method,
      headers: { "content-type": "application/json", ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null, headers: r.headers };
  }

  test("hash and verify at the seed's parameters; bad input is a KeygateError", async () => {
    const h = await call("POST", "/hash", { password: "correct horse battery staple" });
    assert.equal(h.status, 200, JSON.stringify(h.body));
    assert.match(h.body.hash, /^\$argon2id\$v=19\$m=65536,t=3,p=4\$/);
    const v = await call("POST", "/verify", { hash: h.body.hash, password: "correct horse battery staple" });
    assert.deepEqual(v.body, { ok: true, rehash: false });
    const wrong = await call("POST", "/verify", { hash: h.body.hash, password: "nope" });
    assert.equal(wrong.body.ok, false);
    const bad = await call("POST", "/verify", { hash: "garbage", password: "x" });
    assert.deepEqual([bad.status, bad.body.error], [400, "hash_invalid"]);
    const short = await call("POST", "/hash", { password: "short" });
    assert.deepEqual([short.status, short.body.error], [400, "password_too_short"]);
    const typed = await call("POST", "/hash", { password: 42 });
    assert.deepEqual([typed.status, typed.body.error, typed.body.field], [400, "invalid_input", "password"]);
  });

  test("TOTP: otpauth codes accepted, replay refused", async () => {
    const secret = new OTPAuth.Secret({ size: 20 }).base32;
    const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) }).generate();
    const ok = await call("POST", "/totp/verify", { secret, code });
    assert.equal(typeof ok.body.step, "number");
    const replay = await call("POST", "/totp/verify", { secret, code, lastUsedStep: ok.body.step });
    assert.equal(replay.body.step, null);
    const bad = await call("POST", "/totp/verify", { secret: "!!", code });
    assert.equal(bad.body.error, "totp_secret_invalid");
  });

  test("register → MFA enrolment → login → MFA → tokens → refresh rotation → reuse", async () => {
    const email = "alice@example.com";
    const password = "correct horse battery staple";
    assert.equal((await call("POST", "/register", { email, password })).status, 201);

    // Without MFA: tokens straight away, verifiable by jose through the worker's JWKS.
    const first = await call("POST", "/login", { email, password });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(Object.keys(first.body).sort(), ["access_token", "expires_in", "refresh_token", "token_type"]);
    const jwks = jose.createLocalJWKSet((await call("GET", "/.well-known/jwks.json")).body);
    const { payload } = await jose.jwtVerify(first.body.access_token, jwks, { issuer: "keygate-test", algorithms: ["EdDSA"] });
    assert.equal(payload.type, "access");
    assert.deepEqual(payload.roles, ["user"]);

    // Wrong password and unknown user look the same.
    const wrong = await call("POST", "/login", { email, password: "wrong password" });
    const unknown = await call("POST", "/login", { email: "nobody@example.com", password });
    assert.deepEqual([wrong.status, wrong.body], [401, { error: "Invalid credentials" }]);
    assert.deepEqual([unknown.status, unknown.body], [401, { error: "Invalid credentials" }]);

    // Enrol TOTP with an independent implementation reading the provisioning URI.
    const setup = await call("POST", "/mfa/setup", { email });
    assert.ok(Buffer.from(setup.body.qr_code, "base64").subarray(1, 4).equals(Buffer.from("PNG")));
    const totp = OTPAuth.URI.parse(setup.body.uri);
    assert.equal(totp.secret.base32, setup.body.secret);
    const enable = await call("POST", "/mfa/enable", { email, code: totp.generate() });
    assert.equal(enable.status, 200, JSON.stringify(enable.body));
    assert.equal(enable.body.recovery_codes.length, 4);

    // Login now needs the second factor.
    const step1 = await call("POST", "/login", { email, password });
    assert.equal(step1.body.mfa_required, true);
    const badCode = await call("POST", "/mfa", { mfa_token: step1.body.mfa_token, code: "000000" });
    assert.equal(badCode.status, 401);
    // The enrolment code's step is used: take the next step's code (inside the ±1 window).
    const code = totp.generate({ timestamp: Date.now() + 30_000 });
    const mfa = await call("POST", "/mfa", { mfa_token: step1.body.mfa_token, code });
    assert.equal(mfa.status, 200, JSON.stringify(mfa.body));
    assert.equal(mfa.body.method, "totp");
    const again = await call("POST", "/mfa", { mfa_token: step1.body.mfa_token, code });
    assert.equal(again.body.error, "mfa_token_used");
    const claims = (await jose.jwtVerify(mfa.body.access_token, jwks)).payload;
    assert.deepEqual(claims.amr, ["pwd", "otp"]);
    const me = await call("GET", "/me", undefined, { authorization: `Bearer ${mfa.body.access_token}` });
    assert.equal(me.body.sub, claims.sub);
    assert.equal((await call("GET", "/me", undefined, { authorization: "Bearer x.y.z" })).status, 401);

    // A recovery code works once. Pending MFA tokens are ordered by their `iat` (seconds): a
    // new sign-in in the same second as the last MFA step would be refused as not newer.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const step1b = await call("POST", "/login", { email, password });
    const rec = await call("POST", "/mfa", { mfa_token: step1b.body.mfa_token, code: enable.body.recovery_codes[0] });
    assert.equal(rec.body.method, "recovery");

    // Refresh rotation; replaying the old refresh token revokes the family.
    const r1 = await call("POST", "/refresh", { refresh_token: mfa.body.refresh_token });
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.notEqual(r1.body.refresh_token, mfa.body.refresh_token);
    // The worker sets refreshGrace: 0: a replay in a later second is reuse.
    await new Promise((r) => setTimeout(r, 1100));
    const reuse = await call("POST", "/refresh", { refresh_token: mfa.body.refresh_token });
    assert.deepEqual([reuse.status, reuse.body.error], [401, "refresh_reused"]);
    const revoked = await call("POST", "/refresh", { refresh_token: r1.body.refresh_token });
    assert.deepEqual([revoked.status, revoked.body.error], [401, "refresh_revoked"]);
  });

  test("randomness at module scope: entropy_unavailable saying to call it inside the handler", async () => {
    const r = await call("GET", "/module-scope");
    assert.equal(r.body.moduleScope.code, "entropy_unavailable");
    assert.match(r.body.moduleScope.message, /inside the fetch handler, not at module scope/);
    assert.equal(r.body.inHandler, 32);
  });

  test("session cookies", async () => {
    const set = await call("POST", "/session", { userId: "u-1" });
    const cookie = set.headers.get("set-cookie");
    assert.match(cookie, /^__Host-session=.+; Secure; HttpOnly; SameSite=Strict$/);
    const read = await call("GET", "/session", undefined, { cookie: cookie.split(";")[0] });
    assert.equal(read.body.session.userId, "u-1");
    const none = await call("GET", "/session");
    assert.equal(none.body.session, null);
  });
});
