// `make demo`: the whole stack on 127.0.0.1, in the foreground until Ctrl-C.
//   PORT=8080 (Envoy's public port)   KEYGATE_DEMO_DATA=.demo-data (accounts, keys, logs)
import http from "node:http";
import { join } from "node:path";
import { Stack, ROOT, log, freePort } from "./stack.mjs";

const port = Number(process.env.PORT || 8080);
const dataDir = process.env.KEYGATE_DEMO_DATA || join(ROOT, ".demo-data");
const stack = new Stack({ dataDir, publicPort: port });

let stopping = false;
let outbox; // the demo mailbox page, once the stack is up
async function shutdown(signal, code = 0) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping every process the demo started…`);
  await stack.stop();
  outbox?.close();
  process.exit(code);
}
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => shutdown(sig));

try {
  await stack.start();
} catch (e) {
  console.error(`\nThe demo could not start: ${e.message}`);
  await stack.stop();
  process.exit(1);
}

// The demo's mailbox: sign-up confirmation links and reset mails, by address, on 127.0.0.1.
const esc = (t) => String(t).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const outboxPort = await freePort();
outbox = http.createServer(async (req, res) => {
  const email = new URL(req.url, "http://x").searchParams.get("email") ?? "";
  const mail = email ? await stack.outbox(email) : null;
  const link = mail?.link ? `${stack.url}${mail.link}` : null;
  const body = `<!doctype html><meta charset="utf-8"><title>demo outbox</title>
<form><input name="email" value="${esc(email)}" size="40" placeholder="email address"> <button>Show mail</button></form>
${mail ? `<pre>${esc(JSON.stringify(mail, null, 2))}</pre>${link ? `<p><a href="${esc(link)}">Open the confirmation link</a></p>` : ""}` : email ? "<p>No mail for this address.</p>" : ""}`;
  res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": "default-src 'none'" });
  res.end(body);
});
await new Promise((ok) => outbox.listen(outboxPort, "127.0.0.1", ok));

const b = "\x1b[1m", d = "\x1b[2m", x = "\x1b[0m";
const lines = [
  "",
  `${b}keygate demo is running:  ${stack.url}/${x}`,
  "",
];
if (stack.seeded.created) {
  lines.push("Seed accounts (created now; passwords are shown this once — note them):");
  for (const u of stack.seeded.users) lines.push(`  ${u.email.padEnd(20)} ${u.password}   roles: ${u.roles.join(",")}`);
} else {
  lines.push(`Accounts from earlier runs are kept in ${dataDir} (delete it to start over).`);
}
lines.push(
  "",
  "Walkthrough:",
  "  1. Open the URL, 'Create account'; open the confirmation link from the demo outbox",
  `     ${stack.url.replace(/:\d+$/, `:${outboxPort}`)}/?email=<your address>; then sign in.`,
  "  2. 'Set up MFA': scan the QR code (or type the secret) in an authenticator app, confirm a code.",
  "  3. Call the API: /api/me → 200 with x-user-id/x-user-roles set by Envoy;",
  "     /admin/users → 403 for you, 200 for admin@example.com; no token → 401; 8 pings → 429.",
  "  4. Sign out and in again: the MFA step appears. 6 sign-ins within a minute → 429.",
  "  5. Rotate the signing key (admin): POST /api/auth/keys/rotate with 'Authorization: Bearer",
  "     <admin access token>'; /.well-known/jwks.json lists the new key first, the old one until",
  "     it retires (accessTokenTtl + leeway later). Envoy fetches the JWKS itself (remote_jwks).",
  "",
  `${d}Behind it: Envoy :${stack.publicPort} (keygate filter, admin :${stack.adminPort}) → workerd auth worker :${stack.workerPort}, demo API :${stack.apiPort}.`,
  `Logs: ${join(dataDir, "envoy.log")}, ${join(dataDir, "workerd.log")}${x}`,
  "",
  "Press Ctrl-C to stop.",
);
console.log(lines.join("\n"));

// Stay in the foreground; if a child dies, stop the rest and say so.
for (const p of [stack.envoy, stack.workerd]) {
  p.exited.then(({ code, signal }) => {
    if (!stopping) {
      console.error(`${p.procName} exited unexpectedly (${signal ?? code}); see ${p.logFile}`);
      shutdown("child exit", 1);
    }
  });
}
