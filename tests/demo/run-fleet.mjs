// `make demo-fleet`: the demo with two Envoys (8080 and 8081; PORT=… PORT2=…) sharing one
// keygate-ratelimit and one redis-server, the login limit global; Ctrl-C stops everything.
import { join } from "node:path";
import { Fleet } from "./fleet.mjs";
import { ROOT, log } from "./stack.mjs";

const ports = [Number(process.env.PORT || 8080), Number(process.env.PORT2 || 8081)];
const dataDir = process.env.KEYGATE_DEMO_DATA || join(ROOT, ".demo-data");
const fleet = new Fleet({ dataDir, ports });

let stopping = false;
async function shutdown(signal, code = 0) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping every process the demo started…`);
  await fleet.stop();
  process.exit(code);
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => shutdown(sig));

try {
  await fleet.start();
} catch (e) {
  console.error(`\nThe fleet demo could not start: ${e.message}`);
  await fleet.stop();
  process.exit(1);
}
const [a, b] = fleet.urls;
const lines = ["", `\x1b[1mkeygate fleet demo is running:  ${a}/  and  ${b}/\x1b[0m`, ""];
if (fleet.seeded.created) {
  lines.push("Seed accounts (created now; passwords are shown this once — note them):");
  for (const u of fleet.seeded.users) lines.push(`  ${u.email.padEnd(20)} ${u.password}   roles: ${u.roles.join(",")}`);
} else {
  lines.push(`Accounts from earlier runs are kept in ${dataDir} (delete it to start over).`);
}
lines.push(
  "",
  "Both Envoys ask keygate-ratelimit (on Redis) for the login limit: 5 sign-ins a minute per",
  `address for the whole fleet. Sign in 3 times on ${a}/ and 3 times on ${b}/: the 6th → 429.`,
  `Try: for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' -XPOST -d '{}' \\`,
  `       -H 'content-type: application/json' ${[a, b][0]}/api/auth/login; done   (then on ${b})`,
  "",
  `\x1b[2mkeygate-ratelimit :${fleet.rlsPort}, redis-server :${fleet.redisPort}, workerd :${fleet.workerPort}. Logs in ${dataDir}.\x1b[0m`,
  "",
  "Press Ctrl-C to stop.",
);
console.log(lines.join("\n"));
for (const p of [...fleet.envoys.map((e) => e.proc), fleet.workerd, fleet.ratelimit, fleet.redis]) {
  p.exited.then(({ code, signal }) => {
    if (!stopping) {
      console.error(`${p.procName} exited unexpectedly (${signal ?? code}); see ${p.logFile}`);
      shutdown("child exit", 1);
    }
  });
}
