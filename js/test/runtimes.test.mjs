// The packed npm module in every runtime and bundler users reach for (issue 11's table), each
// from the tarball installed into a scratch project, with the real tool from npm (installed by
// `make setup` into js/test/runtimes/node_modules): Node require() with require(esm) off (as on
// Node 20.0–20.18), TypeScript CommonJS, Deno 2 with no permissions, Bun, esbuild and
// `bun build` for the browser, Vite 6 and 7 builds and dev servers with no config (pages in headless
// Debian Chromium via playwright-core), and the edge-light condition inside edge-runtime.
// Every environment runs the same small program (test/runtimes/app/program.js); its answer is
// checked here with jose (the token) and otpauth (the TOTP code).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as jose from "jose";
import * as OTPAuth from "otpauth";
import { freePort } from "../../tests/support/ports.mjs";

const PKG_DIR = fileURLToPath(new URL("..", import.meta.url));
const TOOLS = fileURLToPath(new URL("./runtimes/", import.meta.url));
const APP_SRC = join(TOOLS, "app");
const bin = (name) => {
  const p = join(TOOLS, "node_modules/.bin", name);
  assert.ok(existsSync(p), `${name} missing: ${p} (run make setup)`);
  return p;
};
const CHROMIUM = process.env.KEYGATE_CHROMIUM ?? "/usr/bin/chromium";

const SECRET = "runtime-test-secret-0123456789abcdef";
const totpSecret = new OTPAuth.Secret({ size: 20 }).base32;
const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(totpSecret) });
// input(): the environment's argument, with the otpauth code of the step it is called in (one code
// minted in before() went stale: the suite outlives keygate's ±1-step window on a loaded machine).
let input;
let dir;
let app; // scratch project with the tarball installed
let browser;

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 120_000, ...opts });
  assert.equal(r.error, undefined, `${cmd} could not run: ${r.error}`);
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** The checks every environment's answer must pass (independent libraries where it matters). */
async function checkAnswer(out, where) {
  assert.equal(out.failed, undefined, `${where}: ${out.failed}`);
  assert.match(out.hash, /^\$argon2id\$v=19\$m=256,t=1,p=1\$/, where);
  assert.equal(out.ok, true, `${where}: right password`);
  assert.equal(out.wrong, false, `${where}: wrong password`);
  assert.equal(typeof out.step, "number", `${where}: the otpauth code is accepted`);
  const now = Math.floor(Date.now() / 1000 / 30);
  assert.ok(Math.abs(out.step - now) <= 1, `${where}: step ${out.step} is now`);
  // keygate's current code is otpauth's code for the current step (or the one next to it).
  const near = [-1, 0, 1].map((d) => totp.generate({ timestamp: Date.now() + d * 30_000 }));
  assert.ok(near.includes(out.code), `${where}: keygate's code ${out.code} is otpauth's`);
  const { payload } = await jose.jwtVerify(out.token, new TextEncoder().encode(SECRET), {
    issuer: "runtime-test", algorithms: ["HS256"],
  });
  assert.deepEqual([payload.sub, payload.type, payload.roles], ["u1", "access", ["admin"]], where);
  assert.equal(out.sub, "u1", where);
  assert.equal(out.missing, "null", `${where}: verifyAccessToken(undefined) is null`);
  assert.equal(out.error, "config_invalid:secret", `${where}: KeygateError with code and field`);
}

before(async () => {
  input = () => JSON.stringify({ secret: SECRET, totpSecret, totpCode: totp.generate() });
  dir = mkdtempSync(join(tmpdir(), "keygate-runtimes-"));
  run("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: PKG_DIR });
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  assert.ok(tgz, "npm pack produced a tarball");
  app = join(dir, "app");
  cpSync(APP_SRC, app, { recursive: true });
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
  run("npm", ["install", "--offline", "--no-audit", "--no-fund", "--silent", join(dir, tgz)], { cwd: app });
});

after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the tarball: LICENSE files, every exported entry present", () => {
  const pkg = JSON.parse(readFileSync(join(app, "node_modules/keygate/package.json"), "utf8"));
  for (const f of ["LICENSE-MIT", "LICENSE-APACHE", "inline.js", "node.cjs", "index.d.cts", "keygate/keygate_js_bg.wasm.js"]) {
    assert.ok(existsSync(join(app, "node_modules/keygate", f)), f);
  }
  assert.equal(pkg.license, "MIT OR Apache-2.0");
  assert.match(readFileSync(join(app, "node_modules/keygate/LICENSE-APACHE"), "utf8"), /Apache License\s+Version 2\.0/);
  assert.match(readFileSync(join(app, "node_modules/keygate/LICENSE-MIT"), "utf8"), /^MIT License/);
  // No repository/homepage/bugs yet: the project has no public address, and a guessed one would mislead.
  assert.equal(pkg.repository, undefined);
  // The engines field and the require entry agree: node.cjs is CommonJS (no require(esm)).
  assert.equal(pkg.engines.node, ">=20");
  assert.ok(!readFileSync(join(app, "node_modules/keygate/node.cjs"), "utf8").match(/^\s*(import|export)\s/m));
});

test("Node require() with require(esm) off (Node 20.0–20.18 behaviour)", async () => {
  const script = `const { program } = require("./program.cjs"); console.log(JSON.stringify(program(JSON.parse(process.argv[1]))));`;
  // program.js rewritten to CommonJS: the same program through require("keygate").
  const src = readFileSync(join(app, "program.js"), "utf8")
    .replace(/^import (\{[^}]+\}) from "keygate";$/m, 'const $1 = require("keygate");')
    .replace("export function program", "exports.program = function program");
  writeFileSync(join(app, "program.cjs"), src);
  const out = run(process.execPath, ["--no-experimental-require-module", "-e", script, input()], { cwd: app });
  await checkAnswer(JSON.parse(out), "node require");
});

test("TypeScript module node16 as CommonJS compiles (KeygateError codes typed) and runs", async () => {
  const ts = join(dir, "ts");
  mkdirSync(ts);
  cpSync(join(app, "node_modules"), join(ts, "node_modules"), { recursive: true });
  cpSync(join(app, "main.ts"), join(ts, "main.ts"));
  writeFileSync(join(ts, "package.json"), JSON.stringify({ name: "ts-app", private: true, type: "commonjs" }));
  writeFileSync(join(ts, "tsconfig.json"), JSON.stringify({
    compilerOptions: { module: "node16", moduleResolution: "node16", target: "es2022", strict: true, types: [], lib: ["es2022", "dom"], outDir: "out" },
    files: ["main.ts"],
  }));
  const tscOut = spawnSync(process.execPath, [join(TOOLS, "node_modules/typescript/bin/tsc"), "-p", "."], { cwd: ts, encoding: "utf8" });
  assert.equal(tscOut.status, 0, `tsc failed:\n${tscOut.stdout}${tscOut.stderr}`);
  const js = readFileSync(join(ts, "out/main.js"), "utf8");
  assert.match(js, /require\("keygate"\)/, "compiled to CommonJS");
  const out = JSON.parse(run(process.execPath, ["--no-experimental-require-module", "out/main.js", input()], { cwd: ts }));
  await checkAnswer(out, "typescript cjs");
  assert.equal(out.made, "KeygateError:token_expired:exp:true");

  // The @ts-expect-error above is needed: without it the misspelt code is a type error.
  writeFileSync(join(ts, "main.ts"), readFileSync(join(ts, "main.ts"), "utf8").replace(/^\s*\/\/ @ts-expect-error.*$/m, ""));
  const typo = spawnSync(process.execPath, [join(TOOLS, "node_modules/typescript/bin/tsc"), "-p", "."], { cwd: ts, encoding: "utf8" });
  assert.notEqual(typo.status, 0, "a misspelt error code must not type-check");
  assert.match(typo.stdout, /token_expird/);
});

test("Deno 2: npm:keygate with no permission flags", async () => {
  writeFileSync(join(app, "deno-npm.js"), readFileSync(join(app, "deno.js"), "utf8"));
  const prog = readFileSync(join(app, "program.js"), "utf8").replace('from "keygate"', 'from "npm:keygate"');
  writeFileSync(join(app, "program-deno.js"), prog);
  writeFileSync(join(app, "deno-npm.js"), 'import { program } from "./program-deno.js";\nconsole.log(JSON.stringify(program(JSON.parse(Deno.args[0]))));\n');
  const env = { ...process.env, DENO_NO_UPDATE_CHECK: "1", DENO_DIR: join(dir, "deno-cache"), NO_COLOR: "1" };
  for (const script of ["deno.js", "deno-npm.js"]) {
    const out = run(bin("deno"), ["run", "--no-prompt", "--no-config", "--node-modules-dir=manual", script, input()], { cwd: app, env });
    await checkAnswer(JSON.parse(out), `deno ${script}`);
  }
});

test("Bun runs it", async () => {
  const out = run(bin("bun"), ["cli.js", input()], { cwd: app, env: { ...process.env, BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" } });
  await checkAnswer(JSON.parse(out), "bun");
});

test("edge-light condition inside edge-runtime", async () => {
  // The conditions Vercel bundles edge functions with; no loader flags.
  run(bin("esbuild"), ["edge.js", "--bundle", "--format=esm", "--platform=neutral", "--main-fields=module,main",
    "--conditions=edge-light,worker,browser", "--outfile=out/edge.js", "--log-level=warning"], { cwd: app });
  const bundle = readFileSync(join(app, "out/edge.js"), "utf8");
  assert.match(bundle, /\/\/ node_modules\/keygate\/inline\.js/, "the edge-light entry (inline.js) was chosen");
  const { EdgeRuntime } = await import(join(TOOLS, "node_modules/edge-runtime/dist/index.js"));
  const runtime = new EdgeRuntime({ initialCode: bundle.replace(/^export \{\s*\};?$/m, "") });
  const res = await runtime.dispatchFetch(`http://edge.test/?input=${encodeURIComponent(input())}`);
  await res.waitUntil();
  assert.equal(res.status, 200);
  await checkAnswer(await res.json(), "edge-runtime");
});

// ---------------------------------------------------------------------------------------------
// Browsers: bundles served from a local static server, run in headless Chromium.

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

function serve(root) {
  return new Promise((resolve) => {
    const srv = createServer((req, res) => {
      const path = join(root, decodeURIComponent(new URL(req.url, "http://x").pathname));
      if (!path.startsWith(root) || !existsSync(path) || !extname(path)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" });
      res.end(readFileSync(path));
    });
    srv.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${srv.address().port}`, close: () => new Promise((r) => srv.close(r)) }));
  });
}

async function inChromium(url, where) {
  const { chromium } = await import(join(TOOLS, "node_modules/playwright-core/index.mjs"));
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
  });
  const page = await browser.newPage();
  const errors = [];
  const missing = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => { if (r.status() >= 400) missing.push(`${r.status()} ${r.url()}`); });
  try {
    await page.goto(`${url}?input=${encodeURIComponent(input())}`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30_000 }).catch(() => {});
    const out = await page.evaluate(() => window.__result);
    assert.ok(out, `${where}: no result; page errors: ${errors.join("; ")}`);
    assert.deepEqual(missing, [], `${where}: failed requests`);
    await checkAnswer(out, where);
  } finally {
    await page.close();
  }
}

async function servedBundle(outDir, where) {
  const srv = await serve(outDir);
  try {
    await inChromium(`${srv.url}/index.html`, where);
  } finally {
    await srv.close();
  }
}

test("esbuild for the browser, no flags", async () => {
  const out = join(app, "dist-esbuild");
  run(bin("esbuild"), ["page.js", "--bundle", "--format=esm", "--platform=browser", `--outfile=${out}/page.js`, "--log-level=warning"], { cwd: app });
  cpSync(join(app, "index.html"), join(out, "index.html"));
  await servedBundle(out, "esbuild");
});

test("bun build for the browser, no flags", async () => {
  const out = join(app, "dist-bun");
  run(bin("bun"), ["build", "page.js", "--target=browser", `--outdir=${out}`], { cwd: app });
  cpSync(join(app, "index.html"), join(out, "index.html"));
  await servedBundle(out, "bun build");
});

for (const [pkg, name] of [["vite", "Vite 6"], ["vite7", "Vite 7"]]) {
  const viteBin = join(TOOLS, `node_modules/${pkg}/bin/vite.js`);

  test(`${name} build with no config (default target, no top-level await)`, async () => {
    run(process.execPath, [viteBin, "build", "--logLevel", "warn", "--outDir", `dist-${pkg}`], { cwd: app });
    await servedBundle(join(app, `dist-${pkg}`), `${name} build`);
  });

  test(`${name} dev server with no config (dependency pre-bundling)`, async () => {
    const port = await freePort();
    // A fresh pre-bundle cache per version.
    rmSync(join(app, "node_modules/.vite"), { recursive: true, force: true });
    const proc = spawn(process.execPath, [viteBin, "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
      cwd: app, stdio: ["ignore", "pipe", "pipe"],
    });
    let logs = "";
    proc.stdout.on("data", (d) => (logs += d));
    proc.stderr.on("data", (d) => (logs += d));
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        assert.equal(proc.exitCode, null, `vite exited:\n${logs}`);
        if (await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false)) break;
        assert.ok(Date.now() < deadline, `vite dev did not start:\n${logs}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await inChromium(`http://127.0.0.1:${port}/index.html`, `${name} dev`);
      assert.ok(existsSync(join(app, "node_modules/.vite/deps/keygate.js")), "keygate went through dependency pre-bundling");
    } finally {
      proc.kill("SIGTERM");
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once("exit", r)));
    }
  });
}
