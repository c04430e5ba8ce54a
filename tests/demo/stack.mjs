// Starts and stops the demo stack: workerd (auth worker + demo API) and Envoy with the keygate
// filter in front. Used by run.mjs (`make demo`), check.mjs and browser.mjs.
import { spawn } from "node:child_process";
import { randomBytes, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync, readdirSync, openSync, closeSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../support/ports.mjs";
import { createRequire } from "node:module";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../..");
export const EXAMPLE = join(ROOT, "js/examples/auth-worker");
export const ISSUER = "https://auth.keygate.demo";
export const AUDIENCE = "keygate-demo-api";

const require = createRequire(import.meta.url);

export function log(...args) {
  if (process.env.KEYGATE_DEMO_QUIET !== "1") console.error("[demo]", ...args);
}

function fail(message) {
  const e = new Error(message);
  e.demo = true;
  throw e;
}

function workerdBin() {
  if (process.env.KEYGATE_WORKERD) return process.env.KEYGATE_WORKERD;
  const pkg = dirname(require.resolve("workerd/package.json"));
  const bin = join(pkg, "bin/workerd");
  return existsSync(bin) ? bin : fail(`workerd not found in ${pkg}: run \`npm ci\` in tests/demo`);
}

function envoyBin() {
  if (process.env.KEYGATE_ENVOY) return process.env.KEYGATE_ENVOY;
  const lib = join(ROOT, ".venv/lib");
  for (const py of existsSync(lib) ? readdirSync(lib) : []) {
    const bin = join(lib, py, "site-packages/envoy/_bin/envoy");
    if (existsSync(bin)) return bin;
  }
  return fail("Envoy not found under .venv: run `make setup`");
}

function filterWasm() {
  const wasm = process.env.KEYGATE_ENVOY_WASM ?? join(ROOT, "dist/keygate_envoy.wasm");
  return existsSync(wasm) ? wasm : fail(`${wasm} is missing: run \`make build-envoy\``);
}

function checkWorkerPackage() {
  const wasm = join(EXAMPLE, "node_modules/keygate/keygate/keygate_js_bg.wasm");
  if (!existsSync(wasm)) {
    fail(`${wasm} is missing: run \`make build-js\`, then \`npm install\` in js/examples/auth-worker`);
  }
}

/** A port the kernel just handed out on 127.0.0.1 (free at the time of asking), never one another
 * suite beside this one was handed (tests/support/ports.mjs). */
export { freePort };

function portIsFree(port) {
  return new Promise((ok) => {
    const s = createServer();
    s.once("error", () => ok(false));
    s.listen(port, "127.0.0.1", () => s.close(() => ok(true)));
  });
}

/**
 * The worker's secrets, made on first start and kept in the data dir (mode 0600): the
 * session-cookie secret, and an Ed25519 key given as SIGNING_KEY — the worker's key store
 * (keys.js) makes it its first signing key on first use, then rotates on its own (the rotated
 * keys live in its Durable Object). Envoy gets neither: it fetches the worker's public JWKS.
 */
function loadKeys(dataDir) {
  const file = join(dataDir, "keys.json");
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8"));
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const keys = {
    signingKey: { ...jwk, kid: `demo-${randomBytes(4).toString("hex")}`, alg: "EdDSA", use: "sig" },
    sessionSecret: randomBytes(32).toString("base64url"),
  };
  writeFileSync(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
  return keys;
}

/**
 * Envoy's config must hold no key and no secret: no inline `jwks`, no JWK members, none of the
 * worker's secrets; the filter gets its keys from `remote_jwks` only.
 */
export function assertNoKeyMaterial(yaml, secrets) {
  const plugin = JSON.parse(yaml.match(/value: \|\n([\s\S]*?)\n\s*- name: envoy\.filters\.http\.router/)[1]);
  if (!plugin.remote_jwks?.cluster) fail("Envoy's demo config has no remote_jwks");
  const walk = (v, path) => {
    if (v === null || typeof v !== "object") return;
    for (const [k, inner] of Object.entries(v)) {
      if (["jwks", "keys", "k", "d", "x", "y", "n", "secret", "insecure_allow_symmetric"].includes(k)) {
        fail(`Envoy's demo config holds key material: ${path}${k}`);
      }
      walk(inner, `${path}${k}.`);
    }
  };
  walk(plugin, "");
  for (const s of secrets) if (s && yaml.includes(s)) fail("Envoy's demo config holds one of the worker's secrets");
  return plugin;
}

/** Replaces every ${NAME}; refuses a template with a placeholder it has no value for. */
export function render(template, values) {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name) => {
    if (!(name in values)) fail(`envoy/demo.yaml: no value for \${${name}}`);
    return String(values[name]);
  });
}

async function waitFor(what, probe, { timeoutMs = 30000, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) fail(`${what}: the process exited (code ${proc.exitCode}); see ${proc.logFile}`);
    try {
      if (await probe()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`${what} not ready after ${timeoutMs} ms${last ? ` (${last.message})` : ""}`);
}

async function httpOk(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
}

function startProcess(name, bin, args, { env, cwd, logFile }) {
  const fd = openSync(logFile, "a");
  const child = spawn(bin, args, { cwd, env, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  child.logFile = logFile;
  child.procName = name;
  child.exited = new Promise((ok) => child.once("exit", (code, signal) => ok({ code, signal })));
  log(`started ${name} (pid ${child.pid}), log: ${logFile}`);
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function stopProcess(child, graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
  log(`stopped ${child.procName} (pid ${child.pid})`);
}

export class Stack {
  /**
   * @param {object} o
   * @param {string} o.dataDir     where the Durable Object SQLite files, keys and logs live
   * @param {number} [o.publicPort] Envoy's public port; 0 or absent = a free one
   * @param {number} [o.accessTokenTtl] the worker's access-token lifetime, s (900)
   * @param {number} [o.leeway]    the worker's clock-skew leeway, s (30)
   * @param {boolean} [o.seedSigningKey] pass keys.json's key as SIGNING_KEY (true); false: the
   *   worker's key store generates its first key
   * @param {object} [o.workerEnv]  extra environment of workerd (`{WORKER_ONLY: "1"}`)
   */
  constructor({ dataDir, publicPort = 0, accessTokenTtl = 900, leeway = 30, seedSigningKey = true, workerEnv = {} }) {
    this.seedSigningKey = seedSigningKey;
    this.dataDir = resolve(dataDir);
    this.publicPort = publicPort;
    this.publicPortGiven = publicPort !== 0;
    this.accessTokenTtl = accessTokenTtl;
    this.leeway = leeway;
    this.workerEnv = workerEnv;
    this.demoToken = randomBytes(24).toString("base64url");
  }

  get url() {
    return `http://127.0.0.1:${this.publicPort}`;
  }

  get workerUrl() {
    return `http://127.0.0.1:${this.workerPort}`;
  }

  async start() {
    checkWorkerPackage();
    const wasm = filterWasm();
    const envoy = envoyBin();
    mkdirSync(join(this.dataDir, "do"), { recursive: true, mode: 0o700 });
    this.keys = loadKeys(this.dataDir);
    if (this.publicPort) {
      if (!(await portIsFree(this.publicPort))) {
        fail(`port ${this.publicPort} is in use: pick another with PORT=… (make demo PORT=8090)`);
      }
    } else {
      this.publicPort = await freePort();
    }
    this.workerPort = await freePort();
    this.apiPort = await freePort();
    this.adminPort = await freePort();

    await this.startWorker();
    this.seeded = await this.seed();

    // A free port can be taken by another process before Envoy binds it (other test runs on
    // this host): then Envoy starts again on fresh ports, up to 3 times.
    for (let attempt = 1; ; attempt++) {
      const logFile = join(this.dataDir, "envoy.log");
      const logStart = existsSync(logFile) ? readFileSync(logFile).length : 0;
      try {
        await this.startEnvoy(envoy, wasm, logFile);
        break;
      } catch (e) {
        const tail = existsSync(logFile) ? readFileSync(logFile).subarray(logStart).toString("utf8") : "";
        if (attempt >= 3 || this.publicPortGiven || !/Address already in use/.test(tail)) throw e;
        log(`Envoy could not bind its ports (taken meanwhile); starting it again on fresh ones`);
        this.publicPort = await freePort();
        this.adminPort = await freePort();
      }
    }
    await waitFor("Envoy → worker", async () => httpOk(`${this.url}/`), { proc: this.envoy });
    // Until its first fetch of the worker's JWKS, the filter answers 503 jwks_unavailable.
    await waitFor("Envoy's first JWKS fetch", async () => (await this.envoyStat("keygate.jwks_keys")) >= 1, { proc: this.envoy });
    return this;
  }

  async startEnvoy(envoy, wasm, logFile) {
    // Envoy fetches the worker's JWKS (remote_jwks): its config holds no key and no secret.
    const yaml = render(readFileSync(join(ROOT, "envoy/demo.yaml"), "utf8"), {
      PUBLIC_PORT: this.publicPort,
      ADMIN_PORT: this.adminPort,
      WORKER_PORT: this.workerPort,
      API_PORT: this.apiPort,
      WASM: wasm,
      ISSUER,
      AUDIENCE,
    });
    this.envoyConfig = yaml;
    assertNoKeyMaterial(yaml, [this.keys.signingKey.d, this.keys.sessionSecret, this.demoToken]);
    const config = join(this.dataDir, "envoy.yaml");
    writeFileSync(config, yaml);
    this.envoy = startProcess("envoy", envoy, [
      // No hot restart: no shared-memory base id to collide with other Envoys on this host.
      "-c", config, "--disable-hot-restart", "--concurrency", "2", "--log-level", "warn",
    ], { env: process.env, cwd: ROOT, logFile });
    await waitFor("Envoy", async () => httpOk(`http://127.0.0.1:${this.adminPort}/ready`), { proc: this.envoy });
  }

  /** workerd alone, no Envoy (worker-only mode's tests): the worker on a free port, seeded. */
  async startWorkerOnly({ seed = true } = {}) {
    checkWorkerPackage();
    mkdirSync(join(this.dataDir, "do"), { recursive: true, mode: 0o700 });
    this.keys = loadKeys(this.dataDir);
    this.workerPort = await freePort();
    this.apiPort = await freePort();
    await this.startWorker();
    if (seed) this.seeded = await this.seed();
    return this;
  }

  /** A metric of Envoy's admin /stats (proxy-wasm metrics are under `wasmcustom.`), or null. */
  async envoyStat(name) {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}/stats?filter=${encodeURIComponent(name)}`);
    for (const line of (await res.text()).split("\n")) {
      const [key, value] = line.split(": ");
      if (key === name || key === `wasmcustom.${name}`) return Number(value);
    }
    return null;
  }

  /** Stops workerd only (Envoy keeps running on its last good key set). */
  async stopWorker() {
    await stopProcess(this.workerd);
  }

  async startWorker() {
    const env = {
      ...process.env,
      WORKER_ONLY: "0", // behind Envoy unless a test asks for worker-only mode
      ...this.workerEnv,
      SIGNING_KEY: this.seedSigningKey ? JSON.stringify(this.keys.signingKey) : "",
      ACCESS_TOKEN_TTL: String(this.accessTokenTtl),
      LEEWAY: String(this.leeway),
      SESSION_SECRET: this.keys.sessionSecret,
      ISSUER,
      AUDIENCE,
      DEMO_TOKEN: this.demoToken,
    };
    this.workerd = startProcess("workerd", workerdBin(), [
      "serve", join(EXAMPLE, "workerd.capnp"),
      "--directory-path", `demo-data=${join(this.dataDir, "do")}`,
      "--socket-addr", `auth=127.0.0.1:${this.workerPort}`,
      "--socket-addr", `api=127.0.0.1:${this.apiPort}`,
      "--verbose",
    ], { env, cwd: EXAMPLE, logFile: join(this.dataDir, "workerd.log") });
    await waitFor("workerd", async () => httpOk(`${this.workerUrl}/`), { proc: this.workerd });
    await waitFor("workerd demo API", async () => httpOk(`http://127.0.0.1:${this.apiPort}/api/health`), { proc: this.workerd });
  }

  /** Stops workerd (waiting for it: it needs ~2 s) and starts it again on the same ports. */
  async restartWorker() {
    await stopProcess(this.workerd);
    await this.startWorker();
  }

  /** Seed accounts, created on the very first start: `{created, users: [{email, password, roles}]}`. */
  async seed() {
    const res = await fetch(`${this.workerUrl}/__demo/seed`, {
      method: "POST",
      headers: { "x-demo-token": this.demoToken },
    });
    const body = await res.json();
    if (!res.ok) fail(`seeding failed: ${res.status} ${JSON.stringify(body)}`);
    return body;
  }

  /** The last password-reset "mail" for `email` (the demo has no mail server). */
  async outbox(email) {
    const res = await fetch(`${this.workerUrl}/__demo/outbox?email=${encodeURIComponent(email)}`, {
      headers: { "x-demo-token": this.demoToken },
    });
    return res.ok ? res.json() : null;
  }

  async stop() {
    await Promise.all([stopProcess(this.envoy), stopProcess(this.workerd)]);
  }

  pids() {
    return [this.envoy, this.workerd].filter(Boolean).map((p) => p.pid);
  }
}

// For the fleet demo (fleet.mjs): the same processes and checks, more of them.
export { envoyBin, filterWasm, checkWorkerPackage, loadKeys, waitFor, httpOk, startProcess, stopProcess };
