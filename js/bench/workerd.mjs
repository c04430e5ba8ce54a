// keygate vs jose, HS256 sign and verify, inside a real workerd (npm `workerd`) on 127.0.0.1.
// Run with `make bench-js` (after the Node bench) or `cd js && node bench/workerd.mjs`.
//
// workerd's Date.now()/performance.now() stand still while JavaScript runs (Spectre mitigation),
// so timing is client-side: per implementation, a request running N iterations minus a request
// running none (same round, back to back), ROUNDS interleaved rounds, medians.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Keygate } from "keygate";

const require = createRequire(import.meta.url);
const PKG = fileURLToPath(new URL("..", import.meta.url));
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const N = Number(process.env.N ?? 5000);
const SECRET = "bench-secret-0123456789abcdef-0123456789";
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), "keygate-wbench-"));
let proc;
let logs = "";

async function stopWorkerd() {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, async () => {
    await stopWorkerd();
    rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
}

async function main() {
  // The app: the worker, keygate's four modules as README lists them, jose as one ES module.
  copyFileSync(fileURLToPath(new URL("./workerd/worker.js", import.meta.url)), join(dir, "worker.js"));
  for (const f of ["workerd.js", "keygate/api.js", "keygate/keygate_js.js", "keygate/keygate_js_bg.wasm"]) {
    mkdirSync(join(dir, "keygate-pkg", f, ".."), { recursive: true });
    copyFileSync(join(PKG, f), join(dir, "keygate-pkg", f));
  }
  await build({
    stdin: { contents: 'export * from "jose";', resolveDir: PKG },
    bundle: true, format: "esm", platform: "neutral", target: "es2022",
    conditions: ["workerd", "worker", "browser"], mainFields: ["module", "main"],
    outfile: join(dir, "jose.js"), logLevel: "warning",
  });
  const joseVersion = require("jose/package.json").version;

  // One token for both, signed by keygate in Node with the same secret (15 min lifetime).
  const token = new Keygate({ secret: SECRET }).createAccessToken("user-42", ["admin", "user"]);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, "config.capnp"), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .w)],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const w :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "keygate", esModule = embed "keygate-pkg/workerd.js"),
    (name = "keygate/api.js", esModule = embed "keygate-pkg/keygate/api.js"),
    (name = "keygate/keygate_js.js", esModule = embed "keygate-pkg/keygate/keygate_js.js"),
    (name = "keygate/keygate_js_bg.wasm", wasm = embed "keygate-pkg/keygate/keygate_js_bg.wasm"),
    (name = "jose", esModule = embed "jose.js"),
  ],
  bindings = [
    (name = "SECRET", text = "${SECRET}"),
    (name = "TOKEN", text = "${token}"),
  ],
  compatibilityDate = "2025-01-01",
);
`);
  const bin = require("workerd").default;
  const workerdVersion = spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout.trim();
  proc = spawn(bin, ["serve", "config.capnp"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  proc.stdout.on("data", (d) => (logs += d));
  proc.stderr.on("data", (d) => (logs += d));

  async function run(impl, op, n) {
    const t = process.hrtime.bigint();
    const r = await fetch(`${base}/run?impl=${impl}&op=${op}&n=${n}`);
    const body = await r.json();
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (r.status !== 200 || body.ok !== n) throw new Error(`${impl} ${op} n=${n}: ${r.status} ${JSON.stringify(body)}\n${logs}`);
    return { ms, check: body.check };
  }

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`workerd exited early:\n${logs}`);
    try {
      await run("keygate", "verify", 1);
      break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`workerd did not start: ${e.message}\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // Same answers: both accept the token and read the same claims.
  const kv = await run("keygate", "verify", 10);
  const jv = await run("jose", "verify", 10);
  if (kv.check !== jv.check) throw new Error(`checksums differ: keygate ${kv.check}, jose ${jv.check}`);

  const cases = [["verify", "keygate"], ["verify", "jose"], ["sign", "keygate"], ["sign", "jose"]];
  // Warm-up: JIT and wasm tier-up.
  for (let w = 0; w < 2; w++) for (const [op, impl] of cases) await run(impl, op, N);
  const per = Object.fromEntries(cases.map(([op, impl]) => [`${op} ${impl}`, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [op, impl] of r % 2 ? [...cases].reverse() : cases) {
      const zero = await run(impl, op, 0);
      const full = await run(impl, op, N);
      per[`${op} ${impl}`].push(((full.ms - zero.ms) * 1000) / N);
    }
  }

  // Argon2id at the seed's parameters (t=3, m=64 MiB, p=4): one hashPassword per request minus an
  // empty request, ARGON2_ROUNDS rounds after one warm-up, median.
  const AROUNDS = Number(process.env.ARGON2_ROUNDS ?? 7);
  await run("keygate", "argon2", 1);
  const argon = [];
  for (let r = 0; r < AROUNDS; r++) {
    const zero = await run("keygate", "argon2", 0);
    const full = await run("keygate", "argon2", 1);
    argon.push(full.ms - zero.ms);
  }

  const us = (op, impl) => median(per[`${op} ${impl}`]);
  const spread = (op, impl) => {
    const xs = per[`${op} ${impl}`];
    return `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
  };
  console.log(`keygate vs jose in workerd ${workerdVersion} (jose ${joseVersion}, HS256 CryptoKey imported once), ` +
    `${ROUNDS} rounds × ${N} ops per request minus an empty request, medians; ratio = jose time / keygate time\n`);
  console.log("| operation | implementation | time/op | min–max | jose ÷ keygate |");
  console.log("| --- | --- | ---: | ---: | ---: |");
  for (const op of ["sign", "verify"]) {
    const label = op === "verify" ? "HS256 verify (verifyAccessToken vs jwtVerify)" : "HS256 sign (createAccessToken vs SignJWT)";
    console.log(`| ${label} | keygate | ${us(op, "keygate").toFixed(1)} µs | ${spread(op, "keygate")} |  |`);
    console.log(`| ${label} | jose | ${us(op, "jose").toFixed(1)} µs | ${spread(op, "jose")} | ${(us(op, "jose") / us(op, "keygate")).toFixed(2)} |`);
  }
  const am = median(argon);
  console.log(`| Argon2id t=3 m=64MiB p=4 (hashPassword) | keygate | ${am.toFixed(1)} ms | ` +
    `${Math.min(...argon).toFixed(1)}–${Math.max(...argon).toFixed(1)} ms | (${AROUNDS} rounds; target ≤ 160 ms) |`);
  console.log(`\nchecksum (10 verifies): keygate ${kv.check} = jose ${jv.check}; command: cd js && node bench/workerd.mjs (ROUNDS=${ROUNDS} N=${N})`);
}

try {
  await main();
} finally {
  await stopWorkerd();
  rmSync(dir, { recursive: true, force: true });
}
