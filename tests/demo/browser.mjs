// The demo in a real browser: Debian's headless Chromium driven by playwright-core (which never
// downloads a browser here). Sign up → sign in → enrol MFA from the QR page → sign out → sign in
// with the MFA step → call the API through Envoy. Screenshots go to target/.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Stack, ROOT } from "./stack.mjs";
import { totpCode } from "./client.mjs";

const CHROMIUM = process.env.KEYGATE_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const shots = join(ROOT, "target");
mkdirSync(shots, { recursive: true });

const dataDir = mkdtempSync(join(tmpdir(), "keygate-demo-browser-"));
const profile = mkdtempSync(join(tmpdir(), "keygate-demo-chromium-"));
const stack = new Stack({ dataDir });
let context;
let step = 0;
let failed = false;

async function check(name, fn) {
  step += 1;
  const t0 = Date.now();
  await fn();
  console.log(`  ✓ ${String(step).padStart(2)} ${name} (${Date.now() - t0} ms)`);
}

/** Clicks an API button and returns the status of the newest result card. */
async function apiCall(page, button) {
  const count = () => page.$eval("#results", (el) => Number(el.dataset.count ?? 0));
  const before = await count();
  await page.click(button);
  await page.waitForFunction((n) => Number(document.getElementById("results").dataset.count ?? 0) > n, before);
  return Number(await page.locator("#results .result").first().getAttribute("data-status"));
}

try {
  await stack.start();
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, viewport: { width: 1100, height: 900 } });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  console.log(`browser test: ${await context.browser()?.version?.() ?? "chromium"} against ${stack.url}`);

  const email = `bob-${Date.now()}@example.com`;
  const password = "correct horse battery staple";
  let secret;

  await check("the login page loads with no console errors (CSP: nothing external)", async () => {
    await page.goto(`${stack.url}/`);
    await page.locator("#auth-card").waitFor();
    assert.equal(await page.title(), "keygate demo — sign in");
  });

  await check("sign up, then sign in", async () => {
    await page.click("#tab-signup");
    await page.fill("#signup-email", email);
    await page.fill("#signup-password", password);
    await page.click("#signup-submit");
    await page.locator("#auth-msg.ok", { hasText: "confirmation link" }).waitFor();
    // The confirmation link from the demo's outbox, opened in the page.
    const mail = await stack.outbox(email);
    await page.goto(`${stack.url}${mail.link}`);
    await page.locator("#auth-msg.ok", { hasText: "Account created" }).waitFor();
    await page.fill("#signin-password", password);
    await page.click("#signin-submit");
    await page.locator("#home-card").waitFor();
    assert.equal(await page.textContent("#home-email"), email);
    assert.equal(await page.textContent("#home-mfa"), "off");
  });

  await check("MFA enrolment: the QR image decodes to the shown provisioning URI", async () => {
    await page.click("#mfa-setup");
    await page.locator("#enrol").waitFor();
    await page.waitForFunction(() => document.getElementById("qr-img").naturalWidth > 0);
    secret = (await page.textContent("#mfa-secret")).trim();
    const uri = (await page.textContent("#mfa-uri")).trim();
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    assert.ok(uri.startsWith("otpauth://totp/") && uri.includes(`secret=${secret}`));
    const src = await page.getAttribute("#qr-img", "src");
    assert.ok(src.startsWith("data:image/png;base64,"));
    const png = join(dataDir, "qr.png");
    writeFileSync(png, Buffer.from(src.slice(src.indexOf(",") + 1), "base64"));
    // Also decode what the browser rendered on screen, not only the bytes it received.
    const shown = join(dataDir, "qr-shown.png");
    await page.locator("#qr-img").screenshot({ path: shown });
    for (const f of [png, shown]) {
      const decoded = execFileSync("zbarimg", ["--raw", "-q", f], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
      assert.equal(decoded, uri);
    }
    await page.screenshot({ path: join(shots, "demo-enrolment.png"), fullPage: true });
  });

  await check("type the authenticator code → MFA on, recovery codes shown", async () => {
    await page.fill("#enrol-code", totpCode(secret));
    await page.click("#enrol-submit");
    await page.locator("#enrol-msg.ok").waitFor();
    assert.equal(await page.locator("#recovery-codes li").count(), 10);
  });

  await check("protected API call → 200 with the user's id forwarded by Envoy", async () => {
    assert.equal(await apiCall(page, "#call-me"), 200);
    assert.match(await page.locator("#results .result pre").first().textContent(), /"x-user-roles": "user"/);
  });

  await check("sign out → sign in again → MFA step → signed in", async () => {
    await page.click("#signout");
    await page.locator("#auth-card").waitFor();
    await page.fill("#signin-email", email);
    await page.fill("#signin-password", password);
    await page.click("#signin-submit");
    await page.locator("#mfa-card").waitFor();
    await page.fill("#mfa-code", totpCode(secret, 1)); // the enrolment step is spent
    await page.click("#mfa-submit");
    await page.locator("#home-card").waitFor();
    assert.equal(await page.textContent("#home-mfa"), "on");
  });

  await check("API buttons show 200 / 403 / 401 / 429", async () => {
    assert.equal(await apiCall(page, "#call-me"), 200);
    assert.equal(await apiCall(page, "#call-admin"), 403);
    assert.equal(await apiCall(page, "#call-patient"), 403);
    assert.equal(await apiCall(page, "#call-anon"), 401);
    await page.click("#call-burst");
    await page.locator('#results .result-head .mono', { hasText: "/api/ping #8" }).waitFor();
    const statuses = await page.locator("#results .result").evaluateAll((els) => els.slice(0, 8).map((e) => Number(e.dataset.status)));
    assert.deepEqual(statuses.reverse(), [200, 200, 200, 200, 200, 429, 429, 429]);
    assert.equal(await apiCall(page, "#call-me"), 200);
    await page.screenshot({ path: join(shots, "demo-signed-in.png"), fullPage: true });
  });

  await check("no errors in the page's console", async () => {
    // Failed fetches (401/403/429) are logged by Chromium as resource errors; anything else is a bug.
    const real = consoleErrors.filter((t) => !/Failed to load resource: the server responded with a status of (401|403|429)/.test(t));
    assert.deepEqual(real, []);
  });
} catch (e) {
  failed = true;
  console.error(`\n  ✗ step ${step} failed: ${e.message}`);
  if (!e.demo) console.error(e.stack);
  console.error(`  logs kept in ${dataDir}`);
} finally {
  await context?.close().catch(() => {});
  await stack.stop();
  rmSync(profile, { recursive: true, force: true });
}
if (!failed) rmSync(dataDir, { recursive: true, force: true });
console.log(failed ? "browser test: FAILED" : `browser test: all ${step} steps passed; screenshots: target/demo-enrolment.png, target/demo-signed-in.png`);
process.exit(failed ? 1 : 0);
