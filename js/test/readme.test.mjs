// Every code block of README.md and js/README.md, so an example can never rot:
// - js blocks run, in order, as one Node program per README: the README's own import lines
//   (hoisted; "keygate" → this package) and nothing else from keygate, each block in its own
//   scope, over fixtures for the names the prose assumes (env, user, code, a store, a request).
//   Blocks that define request handlers are then called, and their answers checked.
// - sh blocks: every `make X` names a Makefile target; text blocks naming paths: they exist;
//   the capnp block: the exact module list the workerd test (package.test.mjs) runs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const NODE_ENTRY = fileURLToPath(new URL("../node.js", import.meta.url));

function blocks(file) {
  const out = [];
  const lines = readFileSync(join(ROOT, file), "utf8").split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^```(\w*)\s*$/);
    if (!open) continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && !lines[j].startsWith("```")) j++;
    out.push({ lang: open[1], line: start, code: lines.slice(start, j).join("\n") });
    i = j;
  }
  return out;
}

// What the examples take as given. Outer scope: a block's own `const kg = …` shadows it.
const FIXTURES = `
const env = { JWT_SECRET: "readme-test-secret-0123456789abcdef0123" };
const password = "correct horse battery staple";
const email = "alice@example.com";
const __secret = __kg.generateTotpSecret();
let user = { id: "user-1", email, passwordHash: __kg.hashPassword(password), roles: ["user"],
  mfaEnabled: true, mfaSecret: __secret, lastTotpStep: null };
const code = __kg.generateTotpCode(__secret);
const mfaState = undefined;
let kg = new __kg.Keygate({ secret: env.JWT_SECRET, issuer: "https://auth.example.com" });
const { refresh_token: refreshToken, family } = (() => { const t = kg.issueTokens(user); return { refresh_token: t.refresh_token, family: t.family }; })();
const asyncMap = () => { const m = new Map(); return { get: async (k) => m.get(k), put: async (k, v) => void m.set(k, v) }; };
const store = asyncMap(), families = asyncMap(), mfaStates = asyncMap();
const users = {
  byEmail: async (e) => (e === user.email ? user : null),
  byId: async (id) => (id === user.id ? user : null),
  setHash: async (id, h) => { user = { ...user, passwordHash: h }; },
  update: async (id, fields) => { user = { ...user, ...fields }; },
};
const newPassword = "a brand new passphrase 2026", currentPassword = newPassword;
let sessionState = {};
const body = { code }, claims = {}, session = { createdAt: Math.floor(Date.now() / 1000) };
const newSecret = __kg.generateTotpSecret();
const recoveryHashes = __kg.generateRecoveryCodes().hashes;
const request = new Request("https://app.example/", { headers: { cookie: kg.createSession(user.id).cookie.split(";")[0] } });
const headers = new Headers();
`;

// Handlers a block defines, called after it with the fixtures' story.
const EXERCISE = {
  login: `
    const body = async (res) => [res.status, await res.json()];
    const [s1, b1] = await body(await login({ email, password }));
    __assert.deepEqual([s1, b1.mfa_required], [200, true]);
    __assert.equal((await login({ email, password: "wrong password" })).status, 401);
    __assert.equal((await login({ email: "nobody@example.com", password })).status, 401);
    const [s2, b2] = await body(await mfa({ mfa_token: b1.mfa_token, code }));
    __assert.equal(s2, 200, JSON.stringify(b2));
    __assert.deepEqual(Object.keys(b2).sort(), ["access_token", "expires_in", "refresh_token", "token_type"]);
    const [s3, b3] = await body(await refresh({ refresh_token: b2.refresh_token }));
    __assert.equal(s3, 200, JSON.stringify(b3));
    __assert.equal((await refresh({ refresh_token: "x.y.z" })).status, 401);
    __ran.push("login/mfa/refresh");
  `,
};

function program(file) {
  const js = blocks(file).filter((b) => b.lang === "js");
  assert.ok(js.length > 0, `${file} has js blocks`);
  const imports = [];
  const bodies = [];
  for (const b of js) {
    const code = b.code.replace(/^import [\s\S]*? from "keygate";$/gm, (m) => {
      imports.push(m.replace('"keygate"', JSON.stringify(NODE_ENTRY)));
      return "";
    });
    const handlers = Object.keys(EXERCISE).filter((name) => new RegExp(`async function ${name}\\(`).test(code));
    bodies.push(`__at = ${JSON.stringify(`${file}:${b.line}`)};
await (async () => {
${code}
${handlers.map((h) => EXERCISE[h]).join("\n")}
})();
__ran.push(__at);`);
  }
  return `${[...new Set(imports)].join("\n")}
import * as __kg from ${JSON.stringify(NODE_ENTRY)};
import __assert from "node:assert/strict";
const __ran = [];
let __at;
${FIXTURES}
try {
${bodies.join("\n")}
} catch (e) {
  console.error("block at " + __at + " failed: " + (e && e.stack || e));
  process.exit(1);
}
console.log(JSON.stringify(__ran));
`;
}


for (const file of ["README.md", "js/README.md"]) {
  test(`${file}: every js block runs`, () => {
    const dir = mkdtempSync(join(tmpdir(), "keygate-readme-"));
    try {
      const path = join(dir, "readme.mjs");
      writeFileSync(path, program(file));
      const r = spawnSync(process.execPath, [path], { encoding: "utf8", timeout: 120_000 });
      assert.equal(r.status, 0, `${r.stderr}\n(program: ${path})`);
      const ran = JSON.parse(r.stdout.trim().split("\n").pop());
      const count = blocks(file).filter((b) => b.lang === "js").length;
      assert.equal(ran.filter((x) => x.includes(":")).length, count);
      if (file === "js/README.md") assert.ok(ran.includes("login/mfa/refresh"), "the handlers were exercised");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`${file}: sh, capnp and layout blocks name what exists`, () => {
    const makefile = readFileSync(join(ROOT, "Makefile"), "utf8");
    for (const b of blocks(file)) {
      if (b.lang === "sh") {
        for (const [, target] of b.code.matchAll(/^make (\S+)/gm)) {
          assert.match(makefile, new RegExp(`^${target}:`, "m"), `${file}:${b.line}: make ${target}`);
        }
      } else if (b.lang === "capnp") {
        const harness = readFileSync(fileURLToPath(new URL("./package.test.mjs", import.meta.url)), "utf8");
        for (const line of b.code.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("(name"))) {
          assert.ok(harness.includes(line.replace(/,$/, "")), `${file}:${b.line}: ${line} is what the workerd test runs`);
        }
      } else if (b.lang === "") {
        for (const [, dir] of b.code.matchAll(/^(\w[\w/.-]*\/)\s/gm)) {
          assert.ok(existsSync(join(ROOT, dir)), `${file}:${b.line}: ${dir} exists`);
        }
      } else if (b.lang === "json") {
        // A document, or the members of one (`"remote_jwks": {…}`).
        const parses = (t) => { try { JSON.parse(t); return true; } catch { return false; } };
        assert.ok(parses(b.code) || parses(`{${b.code}}`), `${file}:${b.line}: the json block parses`);
      } else if (b.lang === "yaml") {
        const py = join(ROOT, ".venv", "bin", "python");
        const r = spawnSync(py, ["-c", "import sys, yaml; yaml.safe_load(sys.stdin)"], { input: b.code, encoding: "utf8" });
        assert.equal(r.status, 0, `${file}:${b.line}: the yaml block parses\n${r.stderr}`);
      } else if (b.lang !== "js") {
        assert.fail(`${file}:${b.line}: a \`\`\`${b.lang} block this test does not check`);
      }
    }
  });
}
