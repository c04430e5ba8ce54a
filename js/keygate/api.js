// keygate's public JavaScript API over the wasm-bindgen module. The entry files (node.js,
// workerd.js, inline.js, node.cjs) instantiate the WebAssembly module and re-export this file.
//
// This layer only checks argument types, turns Dates into Unix seconds, parses the JSON the
// core returns and turns core errors into KeygateError. Every decision is the Rust core's.
import * as raw from "./keygate_js.js";

/** Longest string argument accepted, in UTF-16 code units (1 MiB). */
export const MAX_INPUT_LENGTH = 1 << 20;
const MAX_LIST = 1000;

/** Every error keygate throws. `code` is stable (see README "Error codes"). */
export class KeygateError extends Error {
  constructor(code, message, details = {}) {
    const cause = own(details, "cause");
    super(message, cause === undefined ? undefined : { cause });
    this.name = "KeygateError";
    this.code = code;
    const field = own(details, "field");
    const claim = own(details, "claim");
    if (field !== undefined) this.field = field;
    if (claim !== undefined) this.claim = claim;
  }
}

// Own properties only: a polluted Object.prototype must never reach a token, a state or an
// option. Every read of a caller's object in this file goes through `own`.
const own = (o, key) => (o !== null && typeof o === "object" && Object.hasOwn(o, key) ? o[key] : undefined);

// JSON text from own properties only. JSON.stringify would call a `toJSON` found on a
// polluted Object.prototype for every object and array, replacing what keygate receives.
function jsonText(v, field, depth = 0) {
  if (depth > 32) throw invalid(field, "is nested too deeply");
  if (v === null || typeof v === "boolean" || typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number") return Number.isFinite(v) ? JSON.stringify(v) : "null";
  if (v instanceof Uint8Array) return `[${Array.from(v).join(",")}]`;
  if (Array.isArray(v)) {
    const items = [];
    for (let i = 0; i < v.length; i++) items.push(Object.hasOwn(v, i) ? jsonText(v[i], field, depth + 1) : "null");
    return `[${items.join(",")}]`;
  }
  if (typeof v === "object") {
    const parts = [];
    for (const k of Object.keys(v)) {
      const x = v[k];
      if (x === undefined || typeof x === "function" || typeof x === "symbol") continue;
      parts.push(`${JSON.stringify(k)}:${jsonText(x, field, depth + 1)}`);
    }
    return `{${parts.join(",")}}`;
  }
  throw invalid(field, "must be JSON-serialisable");
}

function invalid(field, message) {
  return new KeygateError("invalid_input", `${field} ${message}`, { field });
}

// Errors thrown by the Rust side are plain Errors named "KeygateError" with a code.
function isCoreError(e) {
  return e instanceof Error && e.name === "KeygateError" && typeof e.code === "string";
}

// workerd (Cloudflare Workers) refuses random values outside a request ("Disallowed operation
// called within global scope"): say where to move the call.
const ENTROPY_HINT =
  ". In workerd / Cloudflare Workers random values exist only while a request is handled: " +
  "call it inside the fetch handler, not at module scope";

function toKeygateError(e) {
  if (e instanceof KeygateError) return e;
  if (isCoreError(e) && e.code === "entropy_unavailable") {
    return new KeygateError(e.code, e.message + ENTROPY_HINT, { field: e.field, claim: e.claim });
  }
  if (isCoreError(e)) return new KeygateError(e.code, e.message, { field: e.field, claim: e.claim });
  if (e instanceof WebAssembly.RuntimeError) {
    return new KeygateError("internal_error", `keygate's WebAssembly module failed: ${e.message}`, { cause: e });
  }
  return e;
}

// Where the *Async functions run: Node's entries (node.js, node.cjs) install a worker_threads
// pool (pool.js) under this global symbol; elsewhere (workerd, Deno, browsers, edge) there is
// none and they run inline. A global, not a module, so raw workerd configs list no new module.
const OFFLOAD = Symbol.for("keygate.offload");

function offloaded(fn, args, inline) {
  const pool = globalThis[OFFLOAD];
  if (!pool) return inline();
  return pool.run(fn, args).catch((e) => {
    throw toKeygateError(e);
  });
}

function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw toKeygateError(e);
  }
}

// Codes that are the caller's or the platform's problem, never "this token/cookie is bad".
const ALWAYS_THROW = new Set(["config_invalid", "invalid_input", "input_too_large", "entropy_unavailable"]);

// The core refused a token or cookie: `null` for the seed's "… or None" APIs.
function orNull(fn) {
  try {
    return fn();
  } catch (e) {
    if (isCoreError(e) && !ALWAYS_THROW.has(e.code)) return null;
    throw toKeygateError(e);
  }
}

function str(v, field) {
  if (typeof v !== "string") throw invalid(field, "must be a string");
  if (v.length > MAX_INPUT_LENGTH) {
    throw new KeygateError("input_too_large", `${field} is longer than ${MAX_INPUT_LENGTH} characters`, { field });
  }
  return v;
}

function nonEmpty(v, field) {
  if (str(v, field).length === 0) throw invalid(field, "must not be empty");
  return v;
}

function isObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function opts(v, field = "options") {
  // No prototype: a member the caller did not give is never read from Object.prototype.
  if (v === undefined || v === null) return Object.create(null);
  if (!isObject(v)) throw invalid(field, "must be an object");
  return v;
}

function strList(v, field) {
  if (!Array.isArray(v)) throw invalid(field, "must be an array of strings");
  if (v.length > MAX_LIST) {
    throw new KeygateError("input_too_large", `${field} has more than ${MAX_LIST} entries`, { field });
  }
  // A hole would read a polluted Object.prototype["0"]: only own elements count.
  // The copy holds the checked own elements, nothing the prototype chain could supply.
  const out = [];
  for (let i = 0; i < v.length; i++) out.push(str(own(v, i), `${field}[${i}]`));
  return out;
}

function optStrList(v, field, fallback) {
  return v === undefined || v === null ? fallback : strList(v, field);
}

function uint(v, field, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) {
    throw invalid(field, `must be a whole number from 0 to ${max}`);
  }
  return v;
}

function bool(v, field) {
  if (typeof v !== "boolean") throw invalid(field, "must be a boolean");
  return v;
}

function optional(v, check, field) {
  return v === undefined || v === null ? undefined : check(v, field);
}

/** Unix seconds of `options.now` (a Date), else of the current time. */
function nowOf(options) {
  const now = own(options, "now");
  if (now === undefined || now === null) return Math.floor(Date.now() / 1000);
  if (Object.prototype.toString.call(now) !== "[object Date]" || Number.isNaN(now.getTime()) || now.getTime() < 0) {
    throw invalid("options.now", "must be a valid Date after 1970");
  }
  return Math.floor(now.getTime() / 1000);
}

/** JSON text of the options the core reads, or undefined when there are none. */
function coreOptions(options, skip = []) {
  let out;
  for (const key of Object.keys(options)) {
    if (skip.includes(key)) continue;
    (out ??= {})[key] = own(options, key);
  }
  if (out === undefined) return undefined;
  return jsonText(out, "options");
}

function userJson(u, { needHash = false } = {}) {
  if (!isObject(u)) throw invalid("user", "must be an object {id, passwordHash, roles?, mfaEnabled?, mfaSecret?}");
  const out = { id: str(own(u, "id"), "user.id") };
  const hash = own(u, "passwordHash");
  if (hash !== undefined && hash !== null) out.passwordHash = str(hash, "user.passwordHash");
  else if (needHash) throw invalid("user.passwordHash", "must be a string");
  const roles = own(u, "roles");
  if (roles !== undefined && roles !== null) out.roles = strList(roles, "user.roles");
  const enabled = own(u, "mfaEnabled");
  const secret = own(u, "mfaSecret");
  if (enabled !== undefined && enabled !== null) out.mfaEnabled = bool(enabled, "user.mfaEnabled");
  else if (secret !== undefined && secret !== null) {
    // A record with a secret but no (or a misspelt) mfaEnabled must not sign in without MFA.
    throw invalid("user.mfaEnabled", "must be true or false when mfaSecret is set");
  }
  if (secret !== undefined && secret !== null) out.mfaSecret = str(secret, "user.mfaSecret");
  // The session epoch goes into access tokens (`sep`): verifyAccessToken(t, {sessionState}).
  const epoch = own(own(u, "sessionState"), "epoch");
  if (epoch !== undefined && epoch !== null) out.sessionEpoch = uint(epoch, "user.sessionState.epoch");
  return jsonText(out, "user");
}

function familyJson(f) {
  if (!isObject(f)) throw invalid("family", "must be the family object keygate returned");
  return jsonText({
    familyId: str(own(f, "familyId"), "family.familyId"),
    userId: str(own(f, "userId"), "family.userId"),
    generation: uint(own(f, "generation"), "family.generation"),
    rotatedAt: uint(own(f, "rotatedAt"), "family.rotatedAt"),
    createdAt: uint(own(f, "createdAt"), "family.createdAt"),
    passwordFingerprint: optional(own(f, "passwordFingerprint"), str, "family.passwordFingerprint") ?? null,
    revoked: bool(own(f, "revoked"), "family.revoked"),
  }, "family");
}

function mfaStateJson(s, field = "state") {
  if (s === undefined || s === null) return undefined;
  if (!isObject(s)) throw invalid(field, "must be the MFA state object keygate returned");
  const out = {};
  const step = optional(own(s, "lastTotpStep"), uint, `${field}.lastTotpStep`);
  if (step !== undefined) out.lastTotpStep = step;
  const hashes = optional(own(s, "recoveryHashes"), strList, `${field}.recoveryHashes`);
  if (hashes !== undefined) out.recoveryHashes = hashes;
  const jti = optional(own(s, "pendingJti"), str, `${field}.pendingJti`);
  if (jti !== undefined) out.pendingJti = jti;
  const iat = optional(own(s, "pendingIat"), uint, `${field}.pendingIat`);
  if (iat !== undefined) out.pendingIat = iat;
  const failed = optional(own(s, "failedAttempts"), (v, f) => uint(v, f, 0xffffffff), `${field}.failedAttempts`);
  if (failed !== undefined) out.failedAttempts = failed;
  const inARow = optional(own(s, "consecutiveFailures"), (v, f) => uint(v, f, 0xffffffff), `${field}.consecutiveFailures`);
  if (inARow !== undefined) out.consecutiveFailures = inARow;
  const done = optional(own(s, "completed"), bool, `${field}.completed`);
  if (done !== undefined) out.completed = done;
  return jsonText(out, field);
}

/** JSON of a session state `{epoch, revoked: [{id, until}]}` (own properties), or undefined. */
function sessionStateJson(s, field = "options.sessionState") {
  if (s === undefined || s === null) return undefined;
  if (!isObject(s)) throw invalid(field, "must be the session state object keygate returned");
  const out = {};
  const epoch = optional(own(s, "epoch"), uint, `${field}.epoch`);
  if (epoch !== undefined) out.epoch = epoch;
  const revoked = own(s, "revoked");
  if (revoked !== undefined && revoked !== null) {
    if (!Array.isArray(revoked)) throw invalid(`${field}.revoked`, "must be an array");
    if (revoked.length > MAX_LIST) {
      throw new KeygateError("input_too_large", `${field}.revoked has more than ${MAX_LIST} entries`, { field });
    }
    out.revoked = revoked.map((r, i) => {
      if (!isObject(r)) throw invalid(`${field}.revoked[${i}]`, "must be an object {id, until}");
      return { id: str(own(r, "id"), `${field}.revoked[${i}].id`), until: uint(own(r, "until"), `${field}.revoked[${i}].until`) };
    });
  }
  return jsonText(out, field);
}

/** Unix seconds of a Date or a whole number of seconds. */
function secondsOf(v, field) {
  if (Object.prototype.toString.call(v) === "[object Date]") {
    if (Number.isNaN(v.getTime()) || v.getTime() < 0) throw invalid(field, "must be a valid Date after 1970");
    return Math.floor(v.getTime() / 1000);
  }
  return uint(v, field);
}

// The client-facing token object keeps the seed's four fields; the family to store rides along
// as a non-enumerable property, so JSON.stringify / Response.json / spreading never send it.
function withFamily(tokens, family) {
  Object.defineProperty(tokens, "family", { value: family, enumerable: false });
  return tokens;
}

function flowResult(json) {
  const r = JSON.parse(json);
  if (own(r, "tokens") && own(r, "family")) withFamily(r.tokens, r.family);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Passwords

export function hashPassword(password, options) {
  str(password, "password");
  const o = coreOptions(checkContext(password, opts(options)), CONTEXT_KEYS);
  return call(() => raw.hashPassword(password, o));
}

export function verifyPassword(hash, password) {
  str(hash, "hash");
  str(password, "password");
  return call(() => raw.verifyPassword(hash, password));
}

// Argon2id off the main thread where there are threads (Node: worker_threads pool); inline
// elsewhere. Arguments are checked here first, so bad input rejects the same way everywhere.
export async function hashPasswordAsync(password, options) {
  str(password, "password");
  const o = coreOptions(checkContext(password, opts(options)), CONTEXT_KEYS);
  return offloaded("hashPassword", [password, o === undefined ? undefined : JSON.parse(o)], () => hashPassword(password, options));
}

export async function verifyPasswordAsync(hash, password) {
  str(hash, "hash");
  str(password, "password");
  return offloaded("verifyPassword", [hash, password], () => verifyPassword(hash, password));
}

export function needsRehash(hash, options) {
  str(hash, "hash");
  const o = coreOptions(opts(options));
  return call(() => raw.needsRehash(hash, o));
}

// ---------------------------------------------------------------------------------------------
// TOTP, QR codes, recovery codes

export function generateTotpSecret() {
  return call(() => raw.generateTotpSecret());
}

export function totpProvisioningUri(secret, accountName, issuer, options) {
  str(secret, "secret");
  str(accountName, "accountName");
  str(issuer, "issuer");
  const o = coreOptions(opts(options));
  return call(() => raw.totpProvisioningUri(secret, accountName, issuer, o));
}

export function totpQrCode(uri) {
  nonEmpty(uri, "uri");
  return call(() => raw.totpQrCode(uri));
}

export function totpQrSvg(uri) {
  nonEmpty(uri, "uri");
  return call(() => raw.totpQrSvg(uri));
}

export function verifyTotp(secret, code, options) {
  str(secret, "secret");
  str(code, "code");
  const o = opts(options);
  const now = nowOf(o);
  const last = optional(own(o, "lastUsedStep"), uint, "options.lastUsedStep");
  const rest = coreOptions(o, ["now", "lastUsedStep"]);
  const step = call(() => raw.verifyTotp(secret, code, now, last, rest));
  return step === undefined ? null : step;
}

export function generateTotpCode(secret, options) {
  str(secret, "secret");
  const o = opts(options);
  const now = nowOf(o);
  const rest = coreOptions(o, ["now"]);
  return call(() => raw.generateTotpCode(secret, now, rest));
}

export function generateRecoveryCodes(n = 10) {
  uint(n, "n", 0xffffffff);
  return JSON.parse(call(() => raw.generateRecoveryCodes(n)));
}

export function verifyRecoveryCode(hashes, code) {
  strList(hashes, "hashes");
  str(code, "code");
  const left = call(() => raw.verifyRecoveryCode(hashes, code));
  return left === undefined ? null : left;
}

// ---------------------------------------------------------------------------------------------
// Email addresses, Origin, session state

export function normalizeEmail(email) {
  str(email, "email");
  return call(() => raw.normalizeEmail(email));
}

export function originAllowed(origin, allowed) {
  const o = origin === undefined || origin === null ? undefined : str(origin, "origin");
  strList(allowed, "allowed");
  return call(() => raw.originAllowed(o, allowed));
}

export function endAllSessions(sessionState) {
  const s = sessionStateJson(sessionState, "sessionState");
  return JSON.parse(call(() => raw.endAllSessions(s)));
}

export function generateSigningKey(algorithm, options) {
  str(algorithm, "algorithm");
  const kid = optional(own(opts(options), "kid"), str, "options.kid");
  return JSON.parse(call(() => raw.generateSigningKey(algorithm, kid)));
}

// ---------------------------------------------------------------------------------------------
// Tokens, login flow, sessions

const TOKEN_TYPES = ["access", "refresh", "mfa", "reset"];

export class Keygate {
  #core;
  #json; // the config, for loginAsync's worker thread

  constructor(config) {
    if (!isObject(config)) {
      throw new KeygateError("config_invalid", "invalid config: must be an object", { field: "" });
    }
    let json;
    try {
      json = jsonText(config, "config");
    } catch {
      throw new KeygateError("config_invalid", "invalid config: must be JSON-serialisable", { field: "" });
    }
    this.#core = call(() => new raw.Keygate(json));
    this.#json = json;
  }

  /** `login` with its Argon2id verification off the main thread in Node; inline elsewhere. */
  async loginAsync(user, password, options) {
    const u = user === undefined || user === null ? null : JSON.parse(userJson(user, { needHash: true }));
    str(password, "password");
    const o = opts(options);
    const now = new Date(nowOf(o) * 1000);
    const inline = () => ({ r: this.login(user, password, options) });
    const fwd = own(o, "failures") === undefined ? { now } : { now, failures: own(o, "failures"), throttle: own(o, "throttle") };
    const { r, family } = await offloaded("login", [this.#json, u, password, fwd], inline);
    if (r.tokens && family) withFamily(r.tokens, family);
    return r;
  }

  createAccessToken(userId, roles, options) {
    str(userId, "userId");
    const r = optStrList(roles, "roles", []);
    const o = opts(options);
    const amr = optStrList(own(o, "amr"), "options.amr", []);
    const now = nowOf(o);
    const extra = own(o, "claims"); // a claims object on Object.prototype is no claims
    if (extra !== undefined && extra !== null) {
      if (!isObject(extra)) throw invalid("options.claims", "must be an object of claim names to JSON values");
      const claims = coreOptions(extra) ?? "{}"; // JSON text; the core refuses names keygate owns
      return call(() => this.#core.createAccessTokenWithClaims(userId, r, amr, claims, now));
    }
    return call(() => this.#core.createAccessToken(userId, r, amr, now));
  }

  verifyToken(token, type, options) {
    str(token, "token");
    if (!TOKEN_TYPES.includes(type)) throw invalid("type", `must be one of ${TOKEN_TYPES.join(", ")}`);
    const now = nowOf(opts(options));
    return JSON.parse(call(() => this.#core.verify(token, type, now)));
  }

  verifyAccessToken(token, options) {
    if (token === undefined || token === null) return null; // no Authorization header: the common case
    str(token, "token");
    const o = opts(options);
    const now = nowOf(o);
    // With the user's sessionState (account endpoints), keygate also refuses a token of an
    // older session epoch: issued before a password change, a reset or "sign out everywhere".
    const current = Object.hasOwn(o, "sessionState");
    const state = current ? sessionStateJson(own(o, "sessionState")) : undefined;
    const claims = orNull(() => current ? this.#core.verifyAccessCurrent(token, state, now) : this.#core.verify(token, "access", now));
    return claims === null ? null : JSON.parse(claims);
  }

  verifyRefreshToken(token, options) {
    str(token, "token");
    const now = nowOf(opts(options));
    const claims = orNull(() => this.#core.verify(token, "refresh", now));
    return claims === null ? null : JSON.parse(claims);
  }

  createRefreshToken(userId, options) {
    str(userId, "userId");
    const o = opts(options);
    const roles = optStrList(own(o, "roles"), "options.roles", []);
    const now = nowOf(o);
    return JSON.parse(call(() => this.#core.createRefreshToken(userId, roles, now)));
  }

  createMfaToken(userId, options) {
    str(userId, "userId");
    const now = nowOf(opts(options));
    return call(() => this.#core.createMfaToken(userId, now));
  }

  verifyMfaToken(token, options) {
    str(token, "token");
    const now = nowOf(opts(options));
    const claims = orNull(() => this.#core.verify(token, "mfa", now));
    return claims === null ? null : JSON.parse(claims).sub;
  }

  issueTokens(user, options) {
    const u = userJson(user);
    const o = opts(options);
    const amr = optStrList(own(o, "amr"), "options.amr", []);
    const now = nowOf(o);
    const { tokens, family } = JSON.parse(call(() => this.#core.issueTokens(u, amr, now)));
    return withFamily(tokens, family);
  }

  login(user, password, options) {
    const u = user === undefined || user === null ? undefined : userJson(user, { needHash: true });
    str(password, "password");
    const o = opts(options);
    const now = nowOf(o);
    if (own(o, "failures") !== undefined) return flowResult(call(() => this.#core.loginThrottled(u, password, ...throttleArgs(o), now)));
    return flowResult(call(() => this.#core.login(u, password, now)));
  }

  verifyMfa(mfaToken, code, user, state, options) {
    str(mfaToken, "mfaToken");
    str(code, "code");
    const u = userJson(user);
    const s = mfaStateJson(state);
    const now = nowOf(opts(options));
    return flowResult(call(() => this.#core.verifyMfa(mfaToken, code, u, s, now)));
  }

  refresh(refreshToken, family, options) {
    str(refreshToken, "refreshToken");
    const f = familyJson(family);
    const o = opts(options);
    const user = own(o, "user");
    const u = user === undefined || user === null ? undefined : userJson(user);
    const now = nowOf(o);
    return flowResult(call(() => this.#core.refresh(refreshToken, f, u, now)));
  }

  createPasswordResetToken(user, options) {
    const u = userJson(user, { needHash: true });
    const now = nowOf(opts(options));
    return call(() => this.#core.createPasswordResetToken(u, now));
  }

  verifyPasswordResetToken(token, user, options) {
    str(token, "token");
    const u = userJson(user, { needHash: true });
    const now = nowOf(opts(options));
    return orNull(() => this.#core.verifyPasswordResetToken(token, u, now));
  }

  createSession(userId, options) {
    str(userId, "userId");
    const o = opts(options);
    const now = nowOf(o);
    const state = sessionStateJson(own(o, "sessionState"));
    return JSON.parse(call(() => this.#core.createSession(userId, now, state)));
  }

  readSession(cookieHeader, options) {
    if (cookieHeader === undefined || cookieHeader === null) {
      this.destroySessionCookie(); // still refuse a Keygate without sessions
      return null;
    }
    str(cookieHeader, "cookieHeader");
    const o = opts(options);
    const now = nowOf(o);
    const state = sessionStateJson(own(o, "sessionState"));
    const s = orNull(() => this.#core.readSession(cookieHeader, now, state));
    return s === null ? null : JSON.parse(s);
  }

  revokeSession(cookieHeader, sessionState, options) {
    const state = sessionStateJson(sessionState, "sessionState");
    const now = nowOf(opts(options));
    if (cookieHeader === undefined || cookieHeader === null) {
      this.destroySessionCookie();
      return JSON.parse(call(() => this.#core.revokeSession("", state, now)));
    }
    str(cookieHeader, "cookieHeader");
    return JSON.parse(call(() => this.#core.revokeSession(cookieHeader, state, now)));
  }

  authorizeMfaChange(user, state, proof, options) {
    const u = userJson(user);
    const s = mfaStateJson(state);
    if (!isObject(proof)) throw invalid("proof", "must be {code}, {password} or {authTime}");
    const p = {};
    const code = own(proof, "code");
    const password = own(proof, "password");
    const authTime = own(proof, "authTime");
    if (code !== undefined && code !== null) p.code = str(code, "proof.code");
    if (password !== undefined && password !== null) p.password = str(password, "proof.password");
    if (authTime !== undefined && authTime !== null) p.authTime = secondsOf(authTime, "proof.authTime");
    const now = nowOf(opts(options));
    return JSON.parse(call(() => this.#core.authorizeMfaChange(u, s, jsonText(p, "proof"), now)));
  }

  enrolMfa(secret, code, recoveryHashes, state, options) {
    str(secret, "secret");
    str(code, "code");
    const hashes = strList(recoveryHashes, "recoveryHashes"); // own elements, copied
    const s = mfaStateJson(state);
    const now = nowOf(opts(options));
    return JSON.parse(call(() => this.#core.enrolMfa(secret, code, hashes, s, now)));
  }

  requestPasswordReset(user, options) {
    const u = user === undefined || user === null ? undefined : userJson(user, { needHash: true });
    const now = nowOf(opts(options));
    const token = call(() => this.#core.requestPasswordReset(u, now));
    return token === undefined ? null : token;
  }

  resetPassword(token, user, newPassword, options) {
    str(token, "token");
    const u = userJson(user, { needHash: true });
    str(newPassword, "newPassword");
    const o = checkContext(newPassword, opts(options));
    const now = nowOf(o);
    const mfa = mfaStateJson(own(o, "mfaState"), "options.mfaState");
    const sessions = sessionStateJson(own(o, "sessionState"));
    return JSON.parse(call(() => this.#core.resetPassword(token, u, newPassword, mfa, sessions, now)));
  }

  changePassword(user, currentPassword, newPassword, options) {
    const u = userJson(user, { needHash: true });
    str(currentPassword, "currentPassword");
    str(newPassword, "newPassword");
    const o = checkContext(newPassword, opts(options));
    const mfa = mfaStateJson(own(o, "mfaState"), "options.mfaState");
    const sessions = sessionStateJson(own(o, "sessionState"));
    return JSON.parse(call(() => this.#core.changePassword(u, currentPassword, newPassword, mfa, sessions)));
  }

  destroySessionCookie() {
    return call(() => this.#core.destroySessionCookie());
  }

  jwks() {
    return JSON.parse(this.#core.jwks());
  }
}

// ---- Issue 13: the seed's protections at the edge without Envoy ----------------------------

/** `[failures, throttle JSON]` of login's `options.failures` / `options.throttle`. */
function throttleArgs(o) {
  const f = own(o, "failures");
  const failures = f === null ? undefined : str(f, "options.failures");
  const t = own(o, "throttle");
  return [failures, t === undefined || t === null ? undefined : jsonText(opts(t, "options.throttle"), "options.throttle")];
}

/** Unix milliseconds of `options.now` (a Date), else of the current time. */
function nowMsOf(options) {
  const now = own(options, "now");
  if (now === undefined || now === null) return Date.now();
  if (Object.prototype.toString.call(now) !== "[object Date]" || Number.isNaN(now.getTime()) || now.getTime() < 0) {
    throw invalid("options.now", "must be a valid Date after 1970");
  }
  return now.getTime();
}

/**
 * One rate-limit decision for one key (GCRA, as the Envoy filter). `limit`: "5/minute" or
 * ["200/day", "50/hour"]; `state`: the string returned last time or null. Store the returned
 * `state` on every answer, refusals included.
 */
export function checkRateLimit(limit, state, options) {
  const o = opts(options);
  if (typeof limit === "string") str(limit, "limit");
  else if (Array.isArray(limit)) strList(limit, "limit");
  else throw invalid("limit", 'must be a quota like "5/minute" or an array of them');
  const s = state === undefined || state === null ? undefined : str(state, "state");
  const now = nowMsOf(o);
  return JSON.parse(call(() => raw.checkRateLimit(jsonText(limit, "limit"), s, now)));
}

/**
 * The rate-limit key of a client address as the Envoy filter keys it (`ip:203.0.113.7`; IPv6
 * by its /64 in canonical form; IPv4-mapped IPv6 as IPv4), or null when it is not an address.
 */
export function clientAddressKey(address) {
  str(address, "address");
  const k = call(() => raw.clientAddressKey(address));
  return k === undefined ? null : k;
}

// hashPassword's options that are checks before hashing, not Argon2 parameters.
const CONTEXT_KEYS = ["blocklist", "breachCount"];

/** Refuses a blocklisted or breached password (the core decides); returns the options. */
function checkContext(password, o) {
  const words = own(o, "blocklist");
  const count = own(o, "breachCount");
  if (words === undefined && count === undefined) return o;
  const w = words === undefined || words === null ? undefined : jsonText(strList(words, "options.blocklist"), "options.blocklist");
  const n = count === undefined || count === null ? undefined : uint(count, "options.breachCount");
  call(() => raw.checkPasswordContext(password, w, n));
  return o;
}

const MAX_RANGE_BODY = 4 << 20;

function breachFailed(message, cause) {
  return new KeygateError("breach_check_failed", `${message}; the password was not checked`, cause === undefined ? {} : { cause });
}

/**
 * How often `password` appears in breaches, by k-anonymity: only the first 5 hex digits of its
 * SHA-1 go to `fetchRange(prefix)`, which resolves to the range body text (or a `Response`).
 * Any failure is a `breach_check_failed` KeygateError, never a silent 0.
 */
export async function passwordBreachCount(password, fetchRange = pwnedPasswordsRange) {
  str(password, "password");
  if (typeof fetchRange !== "function") throw invalid("fetchRange", "must be a function");
  const [prefix, suffix] = JSON.parse(call(() => raw.breachRangeQuery(password)));
  let body;
  try {
    body = await fetchRange(prefix);
    if (body !== null && typeof body === "object" && typeof body.text === "function" && typeof body.ok === "boolean") {
      if (!body.ok) throw new Error(`the range API answered HTTP ${body.status}`);
      body = await body.text();
    }
  } catch (e) {
    throw breachFailed(`fetchRange failed (${e?.message ?? e})`, e);
  }
  if (typeof body !== "string") throw breachFailed("fetchRange must resolve to the response text or a Response");
  if (body.length > MAX_RANGE_BODY) throw breachFailed("the range response is too large");
  return call(() => raw.breachCount(suffix, body));
}

/** The default `fetchRange`: the public Pwned Passwords range API, with padding. */
export async function pwnedPasswordsRange(prefix) {
  const r = await fetch(`https://api.pwnedpasswords.com/range/${prefix}`, { headers: { "Add-Padding": "true" } });
  if (!r.ok) throw new Error(`the range API answered HTTP ${r.status}`);
  return r.text();
}
