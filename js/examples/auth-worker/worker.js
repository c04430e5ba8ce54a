// The auth worker's entry: the static login page, the JWKS, and /api/auth/* forwarded to the
// Durable Object of the one account the request is about. Envoy sits in front of this worker, or,
// in worker-only mode (`WORKER_ONLY=1`), nothing: then limits.js applies the seed's rate limits.
//
// Sharding: one AuthStore object per normalised email (`idFromName(email)`); the user id is
// that object's id, so a token's or a session's `sub` names its object (`idFromString(sub)`).
// One account's Argon2 work never queues behind another's, and each account's counters (MFA
// attempts, refresh rotation) still live in exactly one single-threaded object.
import indexHtml from "./public/index.html";
import appJs from "./public/app.js";
import appCss from "./public/app.css";
import { error, json, readBodyText, MAX_BODY_BYTES } from "./http.js";
import { emailKey } from "./auth.js";
import { keysNow, keygateNow } from "./keys.js";
import { workerOnly, limited } from "./limits.js";

export { AuthStore } from "./auth.js";
export { SigningKeyStore } from "./keys.js";
export { RateLimiter } from "./limits.js";

/** The JWKS lives this long in caches: a verifier that honours it (and does not refetch on an
 * unknown kid, as keygate's filter does) learns a rotated-in key within 30 s. */
const JWKS_CACHE_CONTROL = "public, max-age=30";

const PAGE_HEADERS = {
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // The page loads nothing from elsewhere; the QR code is a data: image.
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

const ASSETS = {
  "/": [indexHtml, "text/html; charset=utf-8"],
  "/index.html": [indexHtml, "text/html; charset=utf-8"],
  "/app.js": [appJs, "text/javascript; charset=utf-8"],
  "/app.css": [appCss, "text/css; charset=utf-8"],
};

const SEED_USERS = [
  { email: "admin@example.com", roles: ["admin"] },
  { email: "doctor@example.com", roles: ["doctor"] },
  { email: "user@example.com", roles: ["user"] },
];

// Endpoints keyed by the email in the body, by a token in the body, or by the caller's
// credential (Authorization: Bearer, else the session cookie).
const BY_EMAIL = new Set(["/api/auth/register", "/api/auth/register/confirm", "/api/auth/login", "/api/auth/password-reset"]);
const BY_BODY_TOKEN = {
  "/api/auth/mfa": ["mfa_token", "mfa"],
  "/api/auth/refresh": ["refresh_token", "refresh"],
  "/api/auth/password-reset/confirm": ["token", "reset"],
};

function bodyJson(text) {
  try {
    const v = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

function objectOf(env, sub) {
  try {
    return env.AUTH.get(env.AUTH.idFromString(sub));
  } catch {
    return null; // not an id this namespace made
  }
}

/** The account a credential-authenticated request is about (the session is checked there). */
function subOfCaller(request, k) {
  const auth = request.headers.get("authorization") ?? "";
  if (auth.startsWith("Bearer ")) return k.verifyAccessToken(auth.slice(7))?.sub ?? null;
  return k.readSession(request.headers.get("cookie"))?.userId ?? null;
}

/** `text`: the body, already read (once, capped) by `fetch`. */
async function route(request, env, url, text) {
  const path = url.pathname;
  const live = await keysNow(env); // the live signing keys (keys.js)
  const k = live.kg;
  if (path === "/.well-known/jwks.json" && request.method === "GET") {
    // The published keys only: a retired key that still verifies refresh tokens here is not in it.
    return json(200, live.jwks, { "cache-control": JWKS_CACHE_CONTROL });
  }
  if (path === "/__demo/seed" && request.method === "POST") return seed(request, env);
  if (path === "/__demo/outbox") {
    const email = emailKey(url.searchParams.get("email"));
    if (!email) return error(404, "not_found", "No mail for this address");
    return env.AUTH.get(env.AUTH.idFromName(email)).fetch(request);
  }
  // Bodies are small JSON objects, forwarded as they came.
  const headers = new Headers(request.headers);
  headers.delete("content-length");
  const forward = (stub) => stub.fetch(new Request(request.url, { method: request.method, headers, body: text || undefined }));
  const body = bodyJson(text);

  if (BY_EMAIL.has(path) && request.method === "POST") {
    const email = emailKey(body.email);
    if (email) return forward(env.AUTH.get(env.AUTH.idFromName(email)));
    // A refused address: the same answer (and the same work) as an unknown account.
    if (path === "/api/auth/login") {
      k.login(null, typeof body.password === "string" ? body.password.slice(0, 1024) : "");
      return error(401, "invalid_credentials", "Invalid credentials");
    }
    if (path === "/api/auth/password-reset") {
      k.requestPasswordReset(null);
      return json(200, { message: "If email exists, reset link sent" });
    }
    return error(400, "invalid_email", "Give a valid email address");
  }
  const byToken = BY_BODY_TOKEN[path];
  if (byToken && request.method === "POST") {
    const [name, type] = byToken;
    let sub = null;
    try {
      sub = typeof body[name] === "string" ? k.verifyToken(body[name], type).sub : null;
    } catch {
      sub = null;
    }
    const stub = sub ? objectOf(env, sub) : null;
    if (stub) return forward(stub);
    if (type === "mfa") return error(401, "mfa_token_invalid", "Invalid or expired MFA token");
    if (type === "reset") return error(400, "reset_token_invalid", "This reset link is invalid or was already used");
    return error(401, "refresh_revoked", "This sign-in has ended; sign in again");
  }
  if (path.startsWith("/api/auth/")) {
    let sub = subOfCaller(request, k);
    if (!sub && path === "/api/auth/logout" && typeof body.refresh_token === "string") {
      sub = k.verifyRefreshToken(body.refresh_token)?.sub ?? null;
    }
    const stub = sub ? objectOf(env, sub) : null;
    if (stub) return forward(stub);
    if (path === "/api/auth/logout") return json(200, { success: true }, { "set-cookie": k.destroySessionCookie() });
    return error(401, "unauthenticated", "Sign in first");
  }
  return error(404, "not_found", `Nothing at ${path}`);
}

/** Runner only: creates the seed accounts, each in its own object. */
async function seed(request, env) {
  const users = [];
  let created = false;
  for (const { email, roles } of SEED_USERS) {
    const stub = env.AUTH.get(env.AUTH.idFromName(emailKey(email)));
    const res = await stub.fetch(new Request(new URL("/__demo/seed-user", request.url), {
      method: "POST",
      headers: { "x-demo-token": request.headers.get("x-demo-token") ?? "", "content-type": "application/json" },
      body: JSON.stringify({ email: emailKey(email), roles }),
    }));
    if (res.status === 404) return error(404, "not_found", "No such endpoint");
    const r = await res.json();
    if (r.created) {
      created = true;
      users.push({ email: r.email, password: r.password, roles: r.roles });
    }
  }
  return json(200, created ? { created: true, users } : { created: false, users: SEED_USERS.length });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const asset = ASSETS[url.pathname];
    if (asset && (request.method === "GET" || request.method === "HEAD")) {
      const [body, type] = asset;
      return new Response(request.method === "HEAD" ? null : body, {
        headers: { ...PAGE_HEADERS, "content-type": type },
      });
    }
    try {
      // Bodies are read once, here, and never past MAX_BODY_BYTES (a huge or endless body is
      // cut off with 413, not buffered).
      const read = request.method === "GET" || request.method === "HEAD" ? { text: "" } : await readBodyText(request);
      if (read.tooLarge) return error(413, "body_too_large", `The body is larger than ${MAX_BODY_BYTES} bytes`);
      const { text } = read;
      // Worker-only mode (no Envoy in front): the seed's rate limits, applied here (limits.js).
      if (workerOnly(env)) return await limited(request, env, url.pathname, text, () => keygateNow(env), () => route(request, env, url, text));
      return await route(request, env, url, text);
    } catch (e) {
      console.error("auth worker error:", e?.stack ?? e);
      return error(500, "internal_error", "Something went wrong; see the worker log");
    }
  },
};
