// The auth worker's signing keys: one Durable Object (binding KEYS, one instance) holds them and
// rotates them; every isolate builds its Keygate from the live set it reads here.
//
// - First use: the `SIGNING_KEY` environment variable (a private JWK with a `kid`), when set,
//   becomes the first key — so a deployment that signed with it keeps its tokens valid; without
//   it the object generates an Ed25519 key. Once the object holds keys, SIGNING_KEY is ignored.
// - `POST /api/auth/keys/rotate` (an admin, see auth.js) makes a new Ed25519 key current. The
//   previous key loses its private half and has two deadlines:
//   · published (in /.well-known/jwks.json, so Envoy accepts its access tokens) until
//     accessTokenTtl + leeway (+ the isolate cache below) after the rotation: the last access
//     token it signed has expired by then;
//   · verify-only here (never published) until max(refreshTokenTtl, resetTokenTtl, mfaTokenTtl)
//     + leeway (+ cache) after the rotation, so a refresh token, reset link or MFA-pending
//     token signed before the rotation still works at the worker; then it is deleted.
//   keygate (`signingKeys`) decides which tokens those keys accept.
// - Every isolate caches the live set for at most CACHE_MS (and never past the next deadline),
//   so a rotation reaches every isolate within a second; the isolate that rotated sees it at once.
import { DurableObject } from "cloudflare:workers";
import { Keygate, generateSigningKey } from "keygate";
import { json, error } from "./http.js";

/** How long an isolate uses the key set it read before reading it again. */
export const CACHE_MS = 1000;
/** Published previous keys at most; a rotation past it is refused (409 too_many_keys). */
const MAX_PUBLISHED_PREVIOUS = 8;
/** Previous keys kept at most, published or verify-only; a rotation past it drops the oldest
 * verify-only key early (its refresh tokens then need a new sign-in). */
const MAX_PREVIOUS = 32;
/** keygate's defaults, written out: they set how long a retired key stays verify-only. */
const RESET_TOKEN_TTL = 1800;
const MFA_TOKEN_TTL = 300;

function seconds(env, name, fallback) {
  const v = env[name];
  if (v === undefined || v === null || v === "") return fallback;
  if (!/^\d{1,7}$/.test(String(v))) throw new Error(`${name} must be whole seconds, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** Token lifetimes of the deployment: ACCESS_TOKEN_TTL (900 s), REFRESH_TOKEN_TTL (14 days), LEEWAY (30 s). */
export function lifetimes(env) {
  return {
    accessTokenTtl: seconds(env, "ACCESS_TOKEN_TTL", 900),
    refreshTokenTtl: seconds(env, "REFRESH_TOKEN_TTL", 1_209_600),
    resetTokenTtl: RESET_TOKEN_TTL,
    mfaTokenTtl: MFA_TOKEN_TTL,
    leeway: seconds(env, "LEEWAY", 30),
  };
}

/** The keygate configuration of the worker for a key set (current first). */
export function keygateConfig(env, signingKeys) {
  return {
    signingKeys,
    issuer: env.ISSUER,
    audience: env.AUDIENCE,
    ...lifetimes(env),
    session: { secret: env.SESSION_SECRET },
  };
}

const keyStore = (env) => env.KEYS.get(env.KEYS.idFromName("signing-keys"));

// This isolate's copy: {asked, until, version, kg, jwks}. `asked` is when it was read: an answer
// read earlier never replaces one read later (requests interleave at the await).
let cached = null;
// Answers read before this time are not cached (set after a rotation in this isolate).
let floor = 0;

/**
 * The live keys: `kg` signs with the current key and verifies with every live key (published
 * and verify-only); `jwks` is the public JWKS of the published ones only.
 */
export async function keysNow(env) {
  const asked = Date.now();
  if (cached && asked < cached.until) return cached;
  const live = await keyStore(env).live();
  const all = live.signingKeys.map((k) => k.kid);
  const version = `${all.join(" ")} | ${live.publishedKids.join(" ")}`;
  let entry = cached?.version === version ? { ...cached } : null;
  if (!entry) {
    const kg = new Keygate(keygateConfig(env, live.signingKeys));
    const published = live.signingKeys.filter((k) => live.publishedKids.includes(k.kid));
    const jwks = published.length === all.length ? kg.jwks() : new Keygate(keygateConfig(env, published)).jwks();
    entry = { version, kg, jwks };
  }
  entry.asked = asked;
  entry.until = Math.min(asked + CACHE_MS, live.nextChange ?? Infinity);
  if (asked >= floor && (!cached || asked >= cached.asked)) cached = entry;
  return entry;
}

/** A Keygate for the live key set (cached per isolate, see CACHE_MS). */
export async function keygateNow(env) {
  return (await keysNow(env)).kg;
}

/** `POST /api/auth/keys/rotate` once the caller (`sub`) is known to be an admin (auth.js checks). */
export async function rotateSigningKeys(env, sub) {
  const r = await keyStore(env).rotate();
  if (r.error) return error(409, r.error, r.message);
  cached = null;
  floor = Date.now();
  console.log(`auth worker: signing keys rotated by ${sub}: current kid ${r.current}`);
  return json(200, { current: r.current, previous: r.previous });
}

/**
 * The key store. Every method reads, decides and writes synchronously (SQLite, no await) inside
 * one storage transaction, so two requests can never interleave inside one and a failed write
 * (a kid collision) leaves the keys as they were.
 */
export class SigningKeyStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // publish_until / verify_until: NULL for the current key (exactly one), else when the key
    // leaves the JWKS / is deleted (ms).
    this.sql.exec(`CREATE TABLE IF NOT EXISTS key_ring (
      kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at INTEGER NOT NULL,
      publish_until INTEGER, verify_until INTEGER)`);
  }

  /** The live set, current first: `{signingKeys, publishedKids, nextChange}`. */
  live() {
    return this.ctx.storage.transactionSync(() => {
      const now = Date.now();
      const { rows } = this.#live(now);
      const published = rows.filter((r) => r.publish_until === null || r.publish_until > now);
      const deadlines = rows.flatMap((r) => [r.publish_until, r.verify_until]).filter((t) => t !== null && t > now);
      return {
        signingKeys: rows.map((r) => JSON.parse(r.jwk)),
        publishedKids: published.map((r) => r.kid),
        nextChange: deadlines.length ? Math.min(...deadlines) : null,
      };
    });
  }

  /** A new Ed25519 key becomes current; the previous one is kept (public half) until it retires. */
  rotate() {
    return this.ctx.storage.transactionSync(() => {
      const now = Date.now();
      const { rows } = this.#live(now);
      const previous = rows.filter((r) => r.publish_until !== null);
      if (previous.filter((r) => r.publish_until > now).length >= MAX_PUBLISHED_PREVIOUS) {
        return { error: "too_many_keys", message: `${MAX_PUBLISHED_PREVIOUS} previous keys are still published; wait until the oldest leaves the JWKS` };
      }
      // Oldest verify-only keys first out, so that at most MAX_PREVIOUS remain after this one joins.
      const verifyOnly = previous.filter((r) => r.publish_until <= now).sort((a, b) => a.created_at - b.created_at);
      for (const r of verifyOnly.slice(0, Math.max(0, previous.length + 1 - MAX_PREVIOUS))) {
        this.sql.exec("DELETE FROM key_ring WHERE kid = ?", r.kid);
        console.log(`auth worker: dropped the verify-only key ${r.kid} early (${MAX_PREVIOUS} previous keys at most)`);
      }
      const t = lifetimes(this.env);
      const publishUntil = now + (t.accessTokenTtl + t.leeway) * 1000 + CACHE_MS;
      const verifyUntil = now + (Math.max(t.refreshTokenTtl, t.resetTokenTtl, t.mfaTokenTtl) + t.leeway) * 1000 + CACHE_MS;
      const old = rows.find((r) => r.publish_until === null);
      const { d, ...publicHalf } = JSON.parse(old.jwk);
      const key = this.#newKey(now);
      this.sql.exec("UPDATE key_ring SET jwk = ?, publish_until = ?, verify_until = ? WHERE kid = ?",
        JSON.stringify(publicHalf), publishUntil, verifyUntil, old.kid);
      this.sql.exec("INSERT INTO key_ring (kid, jwk, created_at) VALUES (?, ?, ?)", key.kid, JSON.stringify(key), now);
      const iso = (ms) => new Date(ms).toISOString();
      return {
        current: key.kid,
        previous: this.#live(now).rows.filter((r) => r.publish_until !== null).map((r) => ({
          kid: r.kid,
          published_until: r.publish_until > now ? iso(r.publish_until) : null,
          verified_until: iso(r.verify_until),
        })),
      };
    });
  }

  #live(now) {
    this.sql.exec("DELETE FROM key_ring WHERE verify_until IS NOT NULL AND verify_until <= ?", now);
    let rows = this.#rows();
    if (!rows.some((r) => r.publish_until === null)) {
      const key = this.#firstKey(now);
      this.sql.exec("INSERT INTO key_ring (kid, jwk, created_at) VALUES (?, ?, ?)", key.kid, JSON.stringify(key), now);
      rows = this.#rows();
    }
    return { rows };
  }

  #rows() {
    // Current first, then the previous keys newest first.
    return this.sql.exec(
      "SELECT kid, jwk, created_at, publish_until, verify_until FROM key_ring ORDER BY publish_until IS NOT NULL, created_at DESC, kid",
    ).toArray();
  }

  /** SIGNING_KEY when set (checked by keygate: a private JWK with a kid), else a new key. */
  #firstKey(now) {
    const seed = this.env.SIGNING_KEY;
    if (typeof seed !== "string" || seed === "") return this.#newKey(now);
    let jwk;
    try {
      jwk = JSON.parse(seed);
    } catch {
      throw new Error("SIGNING_KEY must be a private JWK (JSON text) with a kid");
    }
    new Keygate(keygateConfig(this.env, [jwk])); // throws config_invalid naming signingKeys[0].…
    return jwk;
  }

  #newKey(now) {
    const random = [...crypto.getRandomValues(new Uint8Array(4))].map((b) => b.toString(16).padStart(2, "0")).join("");
    const key = generateSigningKey("EdDSA", { kid: `ed-${new Date(now).toISOString().slice(0, 10)}-${random}` });
    return { ...key, use: "sig" };
  }
}
