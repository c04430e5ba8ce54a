// `make demo-fleet-check`: the fleet demo on free ports; 5 logins a minute per address hold for
// the whole fleet: the 6th login within a minute is refused whichever Envoy takes it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Fleet } from "./fleet.mjs";
import { request } from "./client.mjs";

const dataDir = mkdtempSync(join(tmpdir(), "keygate-demo-fleet-"));
const fleet = new Fleet({ dataDir });
const started = Date.now();
let failed = false;
try {
  await fleet.start();
  const [a, b] = fleet.urls;
  const email = fleet.seeded.users[0].email;
  const login = (url, localAddress) =>
    request(url, "POST", "/api/auth/login", { body: { email, password: "not the password" }, localAddress });
  // Two addresses, the Envoys in both orders: the 6th is refused by whichever Envoy takes it.
  for (const [addr, order] of [["127.0.0.5", [a, b, a, b, a, b]], ["127.0.0.6", [b, a, b, a, b, a]]]) {
    const statuses = [];
    let last;
    for (const url of order) {
      last = await login(url, addr);
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429], `${addr}: ${statuses}`);
    assert.equal(last.json.error, "rate_limited");
    assert.ok(Number(last.headers["retry-after"]) > 0, "Retry-After");
    assert.equal(last.headers["ratelimit-policy"], '"5/minute";q=5;w=60');
    // And the other Envoy refuses it too.
    const other = await login(order[4], addr);
    assert.equal(other.status, 429);
    console.log(`  ✓ ${addr}: 5 logins over both Envoys → 401 (wrong password), the 6th → 429 on either`);
  }
  assert.equal(await fleet.stat(0, "keygate.rate_limit_service_failed"), 0);
  assert.equal(await fleet.stat(1, "keygate.rate_limit_service_failed"), 0);
  console.log("  ✓ no failed call to the rate-limit service");
} catch (e) {
  failed = true;
  console.error(`\n  ✗ ${e.message}`);
  if (!e.demo) console.error(e.stack);
  console.error(`  logs kept in ${dataDir}`);
} finally {
  await fleet.stop();
}
if (!failed) rmSync(dataDir, { recursive: true, force: true });
console.log(failed ? "demo-fleet-check: FAILED" : `demo-fleet-check: passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
