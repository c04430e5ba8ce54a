// The auth worker's signing keys: one Durable Object (binding KEYS, one instance) holds them and
// rotates them; every isolate builds its Keygate from the live set it reads here.
//
// - First use: the `SIGNING_KEY` environment variable (a private JWK with a `kid`), when set,
//   becomes the first key — so a deployment that signed with it keeps its tokens valid; without
//   it the object generates an Ed25519 key. Once the object holds keys, SIGNING_KEY is ignored.
// - `POST /api/auth/keys/rotate` (an admin, see auth.js) makes a new Ed25519 key current. The
//   previous key loses its private half and stays published until accessTokenTtl + leeway (+ the
//   isolate cache below) after the rotation — the last token it signed has expired by then —
//   and is then deleted. keygate (`signingKeys`) decides which tokens those keys accept.
// - Every isolate caches the live set for at most CACHE_MS (and never past the next retirement),
//   so a rotation reaches every isolate within a second; the isolate that rotated sees it at once.
import { DurableObject } from "cloudflare:workers";
import { Keygate, generateSigningKey } from "keygate";
import { json, error } from "./http.js";

/** How long an isolate uses the key set it read before reading it again. */
export const CACHE_MS = 1000;
/** Previous keys kept at most (each is retired on its own schedule); a rotation past it is refused. */
const MAX_PREVIOUS = 8;

function seconds(env, name, fallback) {
  const v = env[name];
  if (v === undefined || v === null || v === "") return fallback;
  if (!/^\d{1,6}$/.test(String(v))) throw new Error(`${name} must be whole seconds, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** Token lifetimes of the deployment: ACCESS_TOKEN_TTL (default 900 s) and LEEWAY (default 30 s). */
export function lifetimes(env) {
  return { accessTokenTtl: seconds(env, "ACCESS_TOKEN_TTL", 900), leeway: seconds(env, "LEEWAY", 30) };
}

/** The keygate configuration of the worker for a live key set (current first). */
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

// This isolate's copy: {asked, until, version, kg}. `asked` is when it was read: an answer read
// earlier never replaces one read later (requests interleave at the await).
let cached = null;
// Answers read before this time are not cached (set after a rotation in this isolate).
let floor = 0;

/** A Keygate for the live key set (cached per isolate, see CACHE_MS). */
export async function keygateNow(env) {
  const asked = Date.now();
  if (cached && asked < cached.until) return cached.kg;
  const live = await keyStore(env).live();
  const version = live.signingKeys.map((k) => k.kid).join(" ");
  const kg = cached?.version === version ? cached.kg : new Keygate(keygateConfig(env, live.signingKeys));
  if (asked >= floor && (!cached || asked >= cached.asked)) {
    cached = { asked, until: Math.min(asked + CACHE_MS, live.nextRetirement ?? Infinity), version, kg };
  }
  return kg;
}

/** `POST /api/auth/keys/rotate` once the caller is known to be an admin (auth.js checks). */
export async function rotateSigningKeys(env) {
  const r = await keyStore(env).rotate();
  if (r.error) return error(409, r.error, r.message);
  cached = null;
  floor = Date.now();
  return json(200, { current: r.current, previous: r.previous });
}

/**
 * The key store. Every method reads, decides and writes synchronously (SQLite, no await), so two
 * requests can never interleave inside one: a rotation cannot lose a key another just wrote.
 */
export class SigningKeyStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // retire_at: NULL for the current key (exactly one), else when the key is deleted (ms).
    this.sql.exec(`CREATE TABLE IF NOT EXISTS signing_keys (
      kid TEXT PRIMARY KEY, jwk TEXT NOT NULL, created_at INTEGER NOT NULL, retire_at INTEGER)`);
  }

  /** The live set, current first: `{signingKeys, nextRetirement}`. */
  live() {
    const { signingKeys, nextRetirement } = this.#live(Date.now());
    return { signingKeys, nextRetirement };
  }

  /** A new Ed25519 key becomes current; the previous one is kept (public half) until it retires. */
  rotate() {
    const now = Date.now();
    const before = this.#live(now);
    const previous = before.rows.filter((r) => r.retire_at !== null);
    if (previous.length >= MAX_PREVIOUS) {
      return { error: "too_many_keys", message: `${MAX_PREVIOUS} previous keys are still published; wait until the oldest retires` };
    }
    const { accessTokenTtl, leeway } = lifetimes(this.env);
    const retireAt = now + (accessTokenTtl + leeway) * 1000 + CACHE_MS;
    const old = before.rows.find((r) => r.retire_at === null);
    const { d, ...publicHalf } = JSON.parse(old.jwk);
    const key = this.#newKey(now);
    this.sql.exec("UPDATE signing_keys SET jwk = ?, retire_at = ? WHERE kid = ?", JSON.stringify(publicHalf), retireAt, old.kid);
    this.sql.exec("INSERT INTO signing_keys (kid, jwk, created_at) VALUES (?, ?, ?)", key.kid, JSON.stringify(key), now);
    const after = this.#live(now);
    return {
      current: key.kid,
      previous: after.rows.filter((r) => r.retire_at !== null).map((r) => ({ kid: r.kid, retires_at: new Date(r.retire_at).toISOString() })),
    };
  }

  #live(now) {
    this.sql.exec("DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at <= ?", now);
    let rows = this.#rows();
    if (!rows.some((r) => r.retire_at === null)) {
      const key = this.#firstKey(now);
      this.sql.exec("INSERT INTO signing_keys (kid, jwk, created_at) VALUES (?, ?, ?)", key.kid, JSON.stringify(key), now);
      rows = this.#rows();
    }
    const retirements = rows.filter((r) => r.retire_at !== null).map((r) => r.retire_at);
    return {
      rows,
      signingKeys: rows.map((r) => JSON.parse(r.jwk)),
      nextRetirement: retirements.length ? Math.min(...retirements) : null,
    };
  }

  #rows() {
    // Current first, then the previous keys newest first.
    return this.sql.exec(
      "SELECT kid, jwk, retire_at FROM signing_keys ORDER BY retire_at IS NOT NULL, created_at DESC, kid",
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
