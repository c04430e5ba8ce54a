// Worker-only mode: the seed's rate limits applied by the worker itself, for a deployment with
// no Envoy in front (on Cloudflare the worker *is* the auth service). Off by default: behind
// Envoy the keygate filter applies them (envoy/demo.yaml) and this file does nothing.
//
// Switch: the `WORKER_ONLY` variable (workerd.capnp binds it from the environment; wrangler:
// `[vars] WORKER_ONLY = "1"`). "1" / "true" = on; unset, "" / "0" / "false" = off; anything
// else refuses to start (a typo must not silently turn the limits off).
//
// The limits (the seed's flask-limiter setup, plus OWASP's per-account throttling):
//   POST /api/auth/login            5/minute per client address AND 5/minute per account
//   POST /api/auth/mfa              5/minute per client address AND 5/minute per account
//   /api/auth/password-reset*       3/hour per client address AND 3/hour per account
//   every other /api/auth/* request 200/day + 50/hour per client address
// As in flask-limiter, an endpoint with its own limit does not also count toward the
// defaults. The account is the normalised email of the body (login, reset) or the `sub` of a
// valid MFA token (mfa); an address keygate refuses, or an invalid token, counts per address
// only. Unknown accounts are limited exactly like real ones, so a 429 says nothing about
// whether an account exists.
//
// Client address: the `CF-Connecting-IP` header. Trust assumption: Cloudflare's edge sets it
// on every request and overwrites any value a client sent, so only deploy worker-only mode
// where the platform sets it (on raw workerd put a proxy in front that overwrites it; the
// tests play that proxy and send it themselves). A request without it shares one bucket with
// every other such request (limited, never unlimited). The per-account limits do not depend
// on the address at all.
//
// State: one `RateLimiter` Durable Object per limit key (`idFromName("login:5/minute:ip:…")`;
// the limit is in the name, so a changed limit starts new objects instead of meeting a state
// written for another limit, which keygate refuses). Its `check` RPC reads the stored state,
// lets keygate's `checkRateLimit` decide and writes the new state synchronously (SQLite
// storage API, no `await` between read and write), and a Durable Object runs one such call at
// a time: concurrent requests on one key cannot over-admit. An alarm deletes a key's state
// once its longest window has passed since the last admitted request (by then the GCRA state
// is equivalent to a fresh one), so keys made by attacker input do not pile up.
import { DurableObject } from "cloudflare:workers";
import { checkRateLimit } from "keygate";
import { error, MAX_BODY_BYTES } from "./http.js";
import { emailKey } from "./auth.js";

const LOGIN = "5/minute";
const MFA = "5/minute";
const RESET = "3/hour";
const DEFAULTS = ["200/day", "50/hour"];
/** The longest window above (a day), plus a minute: after it an admitted key's state is fresh. */
const FORGET_AFTER_MS = 86_400_000 + 60_000;
/** A longer CF-Connecting-IP value is not an address. */
const MAX_ADDRESS = 64;

/** Whether worker-only mode is on; throws on a value that is neither on nor off. */
export function workerOnly(env) {
  const v = env.WORKER_ONLY;
  if (v === undefined || v === null || v === "" || v === "0" || v === "false") return false;
  if (v === "1" || v === "true") return true;
  throw new Error(`WORKER_ONLY must be "1"/"true" (on) or "0"/"false"/unset (off), not ${JSON.stringify(String(v))}`);
}

/** The client address Cloudflare's edge reports (see the trust assumption above). */
function clientAddress(request) {
  const ip = request.headers.get("cf-connecting-ip");
  return ip && ip.length <= MAX_ADDRESS ? ip : "-";
}

/**
 * The limits of one request: `[{name, limit}]`, checked in order. `account` is the account the
 * request is about (a normalised email or a user id), or null.
 */
function limitsOf(method, path, address, account) {
  const both = (rule, limit) => {
    const keys = [{ name: `${rule}:${limit}:ip:${address}`, limit }];
    if (account) keys.push({ name: `${rule}:${limit}:account:${account}`, limit });
    return keys;
  };
  if (path === "/api/auth/login" && method === "POST") return both("login", LOGIN);
  if (path === "/api/auth/mfa" && method === "POST") return both("mfa", MFA);
  if (path.startsWith("/api/auth/password-reset")) return both("reset", RESET);
  if (path.startsWith("/api/auth/")) return [{ name: `default:${DEFAULTS.join(",")}:ip:${address}`, limit: DEFAULTS }];
  return [];
}

/**
 * Applies the limits of this request (worker-only mode). Returns `{refused}` (a 429 Response
 * to send) or `{headers}` (the RateLimit headers to add to the answer; empty when no limit
 * applies). Each key is checked in turn and the first refusal stops: a refused request
 * consumes nothing further.
 *
 * @param {string|null} account normalised email or user id, or null
 */
export async function applyLimits(request, env, path, account) {
  const keys = limitsOf(request.method, path, clientAddress(request), account);
  let headers = {};
  for (const [i, { name, limit }] of keys.entries()) {
    const stub = env.LIMITS.get(env.LIMITS.idFromName(name));
    const d = await stub.check(limit);
    if (!d.allowed) {
      return { refused: error(429, "rate_limited", `Too many requests; retry in ${d.retryAfter} s`, d.headers) };
    }
    // The per-address quota is what the client is told about on success.
    if (i === 0) headers = d.headers;
  }
  return { headers };
}

/** The JSON object body of `request` (read from a clone: the route reads it again), or {}. */
async function bodyOf(request) {
  if (request.method !== "POST") return {};
  if (Number(request.headers.get("content-length") ?? 0) > MAX_BODY_BYTES) return {};
  try {
    const text = await request.clone().text();
    const v = text.length <= MAX_BODY_BYTES ? JSON.parse(text) : null;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : {};
  } catch {
    return {};
  }
}

/** The account a limited endpoint is about: the body's email, or the MFA token's `sub`. */
async function accountOf(request, path, keygate) {
  const login = path === "/api/auth/login" || path === "/api/auth/password-reset";
  if (!login && path !== "/api/auth/mfa") return null;
  const body = await bodyOf(request);
  if (login) return emailKey(body.email) ?? null;
  try {
    return typeof body.mfa_token === "string" ? (await keygate()).verifyToken(body.mfa_token, "mfa").sub : null;
  } catch {
    return null; // an invalid token: the per-address limit only (the route refuses it)
  }
}

/**
 * Worker-only mode around the worker's router: the request's limits first (a 429 when one
 * refuses), then `next()` with the RateLimit headers added to its answer. `keygate()`: the
 * worker's Keygate (for the MFA token's user).
 */
export async function limited(request, env, path, keygate, next) {
  const r = await applyLimits(request, env, path, await accountOf(request, path, keygate));
  if (r.refused) return r.refused;
  return withHeaders(await next(), r.headers);
}

/** `response` with `headers` added (a fetched Response's headers are immutable). */
export function withHeaders(response, headers) {
  const names = Object.keys(headers);
  if (names.length === 0) return response;
  const out = new Response(response.body, response);
  for (const name of names) out.headers.set(name, headers[name]);
  return out;
}

/** One limit key's state (see the top of this file). */
export class RateLimiter extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS rate (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL)");
  }

  /** keygate's decision for one request on this key: `{allowed, retryAfter, headers}`. */
  async check(limit) {
    // Read, decide, write: synchronous, nothing can run in between. A state keygate cannot
    // read throws `rate_limit_state_invalid` (the request fails; never a fresh burst).
    const row = this.sql.exec("SELECT state FROM rate WHERE id = 1").toArray()[0];
    const d = checkRateLimit(limit, row ? row.state : null);
    this.sql.exec(
      "INSERT INTO rate (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state",
      d.state,
    );
    if (d.allowed) await this.ctx.storage.setAlarm(Date.now() + FORGET_AFTER_MS);
    return { allowed: d.allowed, retryAfter: d.retryAfter, headers: d.headers };
  }

  async alarm() {
    await this.ctx.storage.deleteAll();
  }
}
