// The fleet demo (`make demo-fleet`, `make demo-fleet-check`): the demo stack with two Envoys
// (8080 and 8081 by default) sharing one keygate-ratelimit on one redis-server, the login
// limit global (`scope: "global"`): 5 logins a minute per address for the whole fleet.
// `make demo` keeps one Envoy with local limits; this file changes nothing it uses.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  Stack, ROOT, ISSUER, AUDIENCE, freePort, render, log,
  envoyBin, filterWasm, checkWorkerPackage, loadKeys, waitFor, httpOk, startProcess, stopProcess,
} from "./stack.mjs";

const RATELIMIT_BIN = process.env.KEYGATE_RATELIMIT_BIN ?? join(ROOT, "target/service/keygate-ratelimit");
const REDIS_BIN = "/usr/bin/redis-server";

const LOCAL_LOGIN = '{"path": "/api/auth/login", "methods": ["POST"], "key": "ip", "limit": "5/minute"}';
const GLOBAL_LOGIN = '{"name": "login", "path": "/api/auth/login", "methods": ["POST"], "key": "ip", "limit": "5/minute", "scope": "global"}';

function fail(message) {
  const e = new Error(message);
  e.demo = true;
  throw e;
}

/** Exactly one occurrence of `from` in `text`, replaced (so a changed demo.yaml fails loudly). */
function replaceOnce(text, from, to) {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) fail(`envoy/demo.yaml: expected ${JSON.stringify(from)} exactly once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/**
 * envoy/demo.yaml (rendered) for one Envoy of the fleet: the login limit global, the
 * `rate_limit_service` block, and its HTTP/2 cluster.
 */
export function fleetConfig(yaml, rlsPort) {
  let out = replaceOnce(yaml, LOCAL_LOGIN, GLOBAL_LOGIN);
  out = replaceOnce(out, '"rate_limits": [',
    '"rate_limit_service": {"cluster": "keygate_ratelimit", "domain": "keygate-demo", "timeout_ms": 50, "failure_mode": "local"},\n' +
    '                      "rate_limits": [');
  out = replaceOnce(out, "  clusters:\n", `  clusters:
  - name: keygate_ratelimit
    type: STATIC
    connect_timeout: 0.25s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: keygate_ratelimit
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${rlsPort} } } }
`);
  return out;
}

async function tcpOpen(port) {
  const { connect } = await import("node:net");
  return new Promise((ok) => {
    const s = connect(port, "127.0.0.1", () => { s.destroy(); ok(true); });
    s.on("error", () => ok(false));
  });
}

export class Fleet extends Stack {
  /** @param {{dataDir: string, ports?: number[]}} o  Envoys' public ports (0 = free ones) */
  constructor({ dataDir, ports = [0, 0] }) {
    super({ dataDir, publicPort: ports[0] });
    this.ports = ports;
    this.envoys = [];
  }

  /** Base URLs of the Envoys. */
  get urls() {
    return this.envoys.map((e) => `http://127.0.0.1:${e.port}`);
  }

  async start() {
    checkWorkerPackage();
    const wasm = filterWasm();
    const envoy = envoyBin();
    if (!existsSync(RATELIMIT_BIN)) fail(`${RATELIMIT_BIN} is missing: run \`make build-ratelimit\``);
    if (!existsSync(REDIS_BIN)) fail("redis-server is not installed: run `make setup`");
    mkdirSync(join(this.dataDir, "do"), { recursive: true, mode: 0o700 });
    this.keys = loadKeys(this.dataDir);
    const ports = [];
    for (const p of this.ports) ports.push(p || (await freePort()));
    this.publicPort = ports[0];
    this.workerPort = await freePort();
    this.apiPort = await freePort();

    this.redisPort = await freePort();
    this.redis = startProcess("redis-server", REDIS_BIN, [
      "--port", String(this.redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", this.dataDir,
    ], { env: process.env, cwd: this.dataDir, logFile: join(this.dataDir, "redis.log") });
    await waitFor("redis-server", () => tcpOpen(this.redisPort), { proc: this.redis });
    this.rlsPort = await freePort();
    this.ratelimit = startProcess("keygate-ratelimit", RATELIMIT_BIN, [
      "--listen", `127.0.0.1:${this.rlsPort}`, "--redis", `redis://127.0.0.1:${this.redisPort}`,
    ], { env: process.env, cwd: this.dataDir, logFile: join(this.dataDir, "ratelimit.log") });
    await waitFor("keygate-ratelimit", () => tcpOpen(this.rlsPort), { proc: this.ratelimit });

    await this.startWorker();
    this.seeded = await this.seed();
    const jwks = await (await fetch(`${this.workerUrl}/.well-known/jwks.json`)).json();
    if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) fail("the worker published no public key");
    const template = readFileSync(join(ROOT, "envoy/demo.yaml"), "utf8");
    for (const [i, port] of ports.entries()) {
      const adminPort = await freePort();
      const yaml = fleetConfig(render(template, {
        PUBLIC_PORT: port, ADMIN_PORT: adminPort, WORKER_PORT: this.workerPort, API_PORT: this.apiPort,
        WASM: wasm, JWKS: JSON.stringify(jwks), ISSUER, AUDIENCE,
      }), this.rlsPort);
      const config = join(this.dataDir, `envoy-${i}.yaml`);
      writeFileSync(config, yaml);
      const proc = startProcess(`envoy ${i}`, envoy, [
        "-c", config, "--disable-hot-restart", "--base-id", String(100 + i), "--concurrency", "2",
        "--log-level", "warn",
      ], { env: process.env, cwd: ROOT, logFile: join(this.dataDir, `envoy-${i}.log`) });
      this.envoys.push({ proc, port, adminPort });
      await waitFor(`Envoy ${i}`, async () => httpOk(`http://127.0.0.1:${adminPort}/ready`), { proc });
      await waitFor(`Envoy ${i} → worker`, async () => httpOk(`http://127.0.0.1:${port}/`), { proc });
    }
    this.envoy = this.envoys[0].proc;
    log(`fleet up: Envoys ${ports.join(", ")} → keygate-ratelimit :${this.rlsPort} → redis :${this.redisPort}`);
    return this;
  }

  /** A counter from Envoy `i`'s admin `/stats` (proxy-wasm metrics are `wasmcustom.*`). */
  async stat(i, name) {
    const text = await (await fetch(`http://127.0.0.1:${this.envoys[i].adminPort}/stats?filter=${name}`)).text();
    for (const line of text.split("\n")) {
      const [key, value] = line.split(": ");
      if (key === name || key === `wasmcustom.${name}`) return Number(value);
    }
    return 0;
  }

  async stop() {
    await Promise.all([...this.envoys.map((e) => stopProcess(e.proc)), stopProcess(this.workerd)]);
    await stopProcess(this.ratelimit);
    await stopProcess(this.redis);
  }

  pids() {
    return [...this.envoys.map((e) => e.proc), this.workerd, this.ratelimit, this.redis].filter(Boolean).map((p) => p.pid);
  }
}
