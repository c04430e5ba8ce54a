// Worker-only mode: the seed's rate limits applied by the worker itself, for a deployment with
// no Envoy in front (on Cloudflare the worker *is* the auth service). Off by default: behind
// Envoy the keygate filter applies them (envoy/demo.yaml) and this file does nothing.
//
// Switch: the `WORKER_ONLY` variable (workerd.capnp binds it from the environment; wrangler:
// `[vars] WORKER_ONLY = "1"`). "1" / "true" = on; unset, "" / "0" / "false" = off; anything
// else fails every request (a typo must not silently turn the limits off).
//
// The limits (the seed's flask-limiter setup, plus OWASP's per-account throttling):
//   POST /api/auth/login            5/minute per client address AND 5/minute per account
//   POST /api/auth/mfa              5/minute per client address AND 5/minute per account
//   POST /api/auth/mfa/setup, /mfa/disable, /password (password or code proofs)
//                                   200/day + 50/hour per address AND the login's per-account 5/minute
//   /api/auth/password-reset*       3/hour per client address AND 3/hour per account
//   POST /api/auth/register         5/minute + 30/hour per client address (as envoy/demo.yaml)
//   every other /api/auth/* request 200/day + 50/hour per client address
// As in flask-limiter, an endpoint with its own limit does not also count toward the
// defaults. The account is the account's Durable Object id: of the body's normalised email
// (login, reset; `idFromName`, so unknown accounts are limited exactly like real ones and a 429
// says nothing about existence), of a valid MFA token's `sub` (mfa), or of the signed-in
// caller (proofs). An address keygate refuses, or an invalid token, counts per address only.
//
// Successes are not charged to the account: a login, MFA step or proof answered 200 gives its
// per-account unit back (compare-and-set: only if nothing else was charged since, so parallel
// requests never over-admit). Remaining trade-off (OWASP "account lockout"): anyone who knows
// an address can still keep its account at the limit with 5 wrong guesses a minute, and the
// owner then waits for the window; the per-address limit and the refund keep this to that.
//
// Client address: the `CF-Connecting-IP` header. Trust assumption: Cloudflare's edge sets it
// on every request and overwrites any value a client sent, so only deploy worker-only mode
// where the platform sets it (on raw workerd put a proxy in front that overwrites it; the
// tests play that proxy and send it themselves). keygate keys it as the filter keys its
// client address (`clientAddressKey`: canonical form, IPv6 by /64, IPv4-mapped as IPv4); a
// request without it, or with a value that is not an address, shares one bucket with every
// other such request (limited, never unlimited). The per-account limits do not depend on the
// address at all.
//
// State: one `RateLimiter` Durable Object per limit key (`idFromName("login:5/minute:ip:…")`;
// the limit is in the name, so a changed limit starts new objects instead of meeting a state
// written for another limit, which keygate refuses). Its `check` RPC reads the stored state,
// lets keygate's `checkRateLimit` decide and writes the new state synchronously (SQLite
// storage API, no `await` between read and write), and a Durable Object runs one such call at
// a time: concurrent requests on one key cannot over-admit. An alarm deletes a key's state
// once the limit's longest window (from its RateLimit-Policy, plus a minute) has passed since
// the last admitted request (by then the GCRA state is equivalent to a fresh one), so keys
// made by attacker input do not pile up.
import { DurableObject } from "cloudflare:workers";
import { checkRateLimit, clientAddressKey } from "keygate";
import { error } from "./http.js";
import { emailKey } from "./auth.js";

const LOGIN = "5/minute";
const MFA = "5/minute";
const RESET = "3/hour";
const REGISTER = ["5/minute", "30/hour"];
const DEFAULTS = ["200/day", "50/hour"];
/** Kept past a limit's longest window before its state is forgotten. */
const FORGET_MARGIN_MS = 60_000;
/** Endpoints that check a password or a code of the signed-in account. */
const PROOFS = new Set(["/api/auth/mfa/setup", "/api/auth/mfa/disable", "/api/auth/password"]);

/** Whether worker-only mode is on; throws on a value that is neither on nor off. */
export function workerOnly(env) {
  const v = env.WORKER_ONLY;
  if (v === undefined || v === null || v === "" || v === "0" || v === "false") return false;
  if (v === "1" || v === "true") return true;
  throw new Error(`WORKER_ONLY must be "1"/"true" (on) or "0"/"false"/unset (off), not ${JSON.stringify(String(v))}`);
}

/** The client address's key (see the trust assumption above). */
function clientAddress(request) {
  const ip = request.headers.get("cf-connecting-ip");
  return (ip ? clientAddressKey(ip) : null) ?? "ip:-";
}

const text = (limit) => (Array.isArray(limit) ? limit.join(",") : limit);

/**
 * The limits of one request: `[{name, limit, refund}]`, checked in order; `refund`: given back
 * when the answer is 200. `account`: the account's object id, or null.
 */
function limitsOf(method, path, address, account) {
  const ip = (rule, limit) => ({ name: `${rule}:${text(limit)}:${address}`, limit, refund: false });
  const acct = (rule, limit, refund) => ({ name: `${rule}:${text(limit)}:account:${account}`, limit, refund });
  const both = (rule, limit, refund) => (account ? [ip(rule, limit), acct(rule, limit, refund)] : [ip(rule, limit)]);
  if (method === "POST" && path === "/api/auth/login") return both("login", LOGIN, true);
  if (method === "POST" && path === "/api/auth/mfa") return both("mfa", MFA, true);
  if (path.startsWith("/api/auth/password-reset")) return both("reset", RESET, false);
  if (method === "POST" && path === "/api/auth/register") return [ip("register", REGISTER)];
  if (method === "POST" && PROOFS.has(path)) {
    return account ? [ip("default", DEFAULTS), acct("login", LOGIN, true)] : [ip("default", DEFAULTS)];
  }
  if (path.startsWith("/api/auth/")) return [ip("default", DEFAULTS)];
  return [];
}

/** The JSON object in `body` (text), or {}. */
function bodyOf(body) {
  try {
    const v = JSON.parse(body);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

/** The account object id a limited endpoint is about (see the top of this file), or null. */
async function accountOf(request, env, path, body, keygate) {
  if (request.method !== "POST") return null;
  if (path === "/api/auth/login" || path === "/api/auth/password-reset") {
    const email = emailKey(bodyOf(body).email);
    return email ? env.AUTH.idFromName(email).toString() : null;
  }
  try {
    if (path === "/api/auth/mfa") {
      const token = bodyOf(body).mfa_token;
      return typeof token === "string" ? (await keygate()).verifyToken(token, "mfa").sub : null;
    }
    if (PROOFS.has(path)) {
      const kg = await keygate();
      const auth = request.headers.get("authorization") ?? "";
      if (auth.startsWith("Bearer ")) return kg.verifyAccessToken(auth.slice(7))?.sub ?? null;
      return kg.readSession(request.headers.get("cookie"))?.userId ?? null;
    }
  } catch {
    return null; // an invalid credential: the per-address limit only (the route refuses it)
  }
  return null;
}

/**
 * Applies the limits of this request. Returns `{refused}` (a 429 Response to send) or
 * `{headers, refunds}`: the RateLimit headers to add to the answer (empty when no limit
 * applies) and the units to give back if the answer is a success. Each key is checked in turn
 * and the first refusal stops: a refused request consumes nothing further.
 */
async function applyLimits(request, env, path, account) {
  const keys = limitsOf(request.method, path, clientAddress(request), account);
  let headers = {};
  const refunds = [];
  for (const [i, { name, limit, refund }] of keys.entries()) {
    const stub = env.LIMITS.get(env.LIMITS.idFromName(name));
    const d = await stub.check(limit);
    if (!d.allowed) {
      return { refused: error(429, "rate_limited", `Too many requests; retry in ${d.retryAfter} s`, d.headers) };
    }
    // The per-address quota is what the client is told about on success.
    if (i === 0) headers = d.headers;
    if (refund) refunds.push({ stub, before: d.before, after: d.after });
  }
  return { headers, refunds };
}

/**
 * Worker-only mode around the worker's router: the request's limits first (a 429 when one
 * refuses), then `next()` with the RateLimit headers added to its answer. `body`: the request
 * body, already read; `keygate()`: the worker's Keygate (to read the MFA token or credential).
 */
export async function limited(request, env, path, body, keygate, next) {
  const r = await applyLimits(request, env, path, await accountOf(request, env, path, body, keygate));
  if (r.refused) return r.refused;
  const response = await next();
  if (response.status === 200) {
    for (const { stub, before, after } of r.refunds) await stub.refund(before, after);
  }
  return withHeaders(response, r.headers);
}

/** `response` with `headers` added (a fetched Response's headers are immutable). */
function withHeaders(response, headers) {
  const names = Object.keys(headers);
  if (names.length === 0) return response;
  const out = new Response(response.body, response);
  for (const name of names) out.headers.set(name, headers[name]);
  return out;
}

/** The longest window of a RateLimit-Policy (`"5/minute";q=5;w=60, …`), in ms. */
function longestWindowMs(policy) {
  return Math.max(...[...policy.matchAll(/;w=([0-9]+)/g)].map((m) => Number(m[1]) * 1000));
}

/** One limit key's state (see the top of this file). */
export class RateLimiter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS rate (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)");
    // Tests only (tests/demo/worker-only.mjs drives the alarm): forget sooner than the window,
    // which over-admits. Never set it in a deployment.
    const forget = Number(env.LIMITS_FORGET_AFTER_MS);
    this.forgetAfterMs = Number.isSafeInteger(forget) && forget > 0 ? forget : null;
  }

  #stored() {
    return this.sql.exec("SELECT state FROM rate WHERE id = 1").toArray()[0]?.state ?? null;
  }

  #store(state) {
    if (state === null) this.sql.exec("DELETE FROM rate");
    else this.sql.exec("INSERT INTO rate (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state", state);
  }

  /** keygate's decision for one request on this key: `{allowed, retryAfter, headers, before, after}`. */
  async check(limit) {
    // Read, decide, write: synchronous, nothing can run in between. A state keygate cannot
    // read throws `rate_limit_state_invalid` (the request fails; never a fresh burst).
    const before = this.#stored();
    const d = checkRateLimit(limit, before);
    this.#store(d.state);
    if (d.allowed) {
      const forget = this.forgetAfterMs ?? longestWindowMs(d.headers["RateLimit-Policy"]) + FORGET_MARGIN_MS;
      await this.ctx.storage.setAlarm(Date.now() + forget);
    }
    return { allowed: d.allowed, retryAfter: d.retryAfter, headers: d.headers, before, after: d.state };
  }

  /**
   * Gives back the unit `check` took (a success is not charged): the state goes back to
   * `before` only if it is still `after`, i.e. nothing was charged since. Synchronous.
   */
  refund(before, after) {
    if (this.#stored() !== after) return false;
    this.#store(before);
    return true;
  }

  /** The window has passed: the state is equivalent to a fresh one. The table stays. */
  alarm() {
    this.sql.exec("DELETE FROM rate");
  }
}
