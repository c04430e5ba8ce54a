// The account Durable Object: one instance per normalised email address (worker.js routes each
// request to its account's object), holding that one account in its SQLite database. keygate
// makes every decision (password check, TOTP, token issuance, refresh rotation and reuse
// detection, session cookies and their revocation, fresh proof for MFA changes, reset); this
// file only reads and writes the records keygate hands back.
//
// One object serialises the requests of one account, so a refresh rotation or an MFA attempt
// counter can never race with itself, while another account's Argon2 work never queues here.
// The user id is the object's id (`ctx.id.toString()`), so a token's `sub` names its object.
import { DurableObject } from "cloudflare:workers";
import {
  KeygateError,
  hashPassword,
  generateTotpSecret,
  totpProvisioningUri,
  totpQrCode,
  generateRecoveryCodes,
  normalizeEmail,
  originAllowed,
  endAllSessions,
} from "keygate";
import { Store } from "./store.js";
import { keygateNow, rotateSigningKeys } from "./keys.js";
import { json, error, readJson, readOptionalJson, field } from "./http.js";

const TOTP_ISSUER = "keygate demo";
/**
 * Context words a password must not contain (NIST 800-63B §3.1.1.2), beside the account's
 * email (keygate also checks its local part): the service's name. keygate decides
 * (`password_blocklisted`).
 */
const SERVICE_WORDS = ["keygate"];
const blocklistFor = (email) => [...SERVICE_WORDS, email];
const MAX_PASSWORD = 1024;
const RESET_MESSAGE = { message: "If email exists, reset link sent" };
const SIGNUP_MESSAGE = { message: "Check your email to finish signing up" };
/** A sign-up confirmation link works for an hour; an MFA enrolment must finish in 10 minutes. */
const SIGNUP_TTL_MS = 3600_000;
const ENROL_TTL_MS = 600_000;

/** keygate's normal form of an email address, or undefined when it is refused. */
export function emailKey(v) {
  if (typeof v !== "string") return undefined;
  try {
    return normalizeEmail(v);
  } catch (e) {
    if (e instanceof KeygateError) return undefined;
    throw e;
  }
}

// A readable random password for the seed accounts (printed once by the runner).
function randomPassword() {
  const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return `${out.slice(0, 6)}-${out.slice(6, 12)}-${out.slice(12)}`;
}

function randomToken() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function sha256(text) {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function sameText(a, b) {
  if (typeof a !== "string" || typeof b !== "string" || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function keygateFailure(e, status = 400) {
  if (e instanceof KeygateError) return error(status, e.code, e.message);
  throw e;
}

const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export class AuthStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.store = new Store(ctx.storage.sql);
    this.userId = ctx.id.toString();
  }

  async fetch(request) {
    const url = new URL(request.url);
    const route = `${request.method} ${url.pathname}`;
    try {
      // The live signing keys (keys.js); bad configuration throws here with the field named.
      this.kg = await keygateNow(this.env);
      switch (route) {
        case "POST /api/auth/register": return await this.register(request);
        case "POST /api/auth/register/confirm": return await this.registerConfirm(request);
        case "POST /api/auth/login": return await this.login(request);
        case "POST /api/auth/mfa": return await this.mfa(request);
        case "POST /api/auth/mfa/setup": return await this.mfaSetup(request);
        case "POST /api/auth/mfa/verify": return await this.mfaVerify(request);
        case "POST /api/auth/mfa/disable": return await this.mfaDisable(request);
        case "POST /api/auth/refresh": return await this.refresh(request);
        case "POST /api/auth/logout": return await this.logout(request);
        case "POST /api/auth/logout-all": return await this.logoutAll(request);
        case "POST /api/auth/password": return await this.changePassword(request);
        case "POST /api/auth/password-reset": return await this.passwordReset(request);
        case "POST /api/auth/password-reset/confirm": return await this.passwordResetConfirm(request);
        case "GET /api/auth/session": return this.session(request);
        case "POST /api/auth/keys/rotate": return await this.rotateKeys(request);
        case "POST /__demo/seed-user": return await this.seedUser(request);
        case "GET /__demo/outbox": return this.outbox(request);
        default:
          return error(404, "not_found", `No endpoint ${route}`);
      }
    } catch (e) {
      if (e instanceof KeygateError) return error(400, e.code, e.message);
      console.error("auth worker error:", e?.stack ?? e);
      return error(500, "internal_error", "Something went wrong; see the worker log");
    }
  }

  /** The account of this object (at most one). */
  account() {
    return this.store.userById(this.userId);
  }

  /**
   * The signed-in user: an access token (Authorization: Bearer) or the session cookie, checked
   * against the user's session state (logout, reset and "sign out everywhere" end it).
   * `authTime` is when the password was entered (the token's auth_time, the session's start).
   */
  currentUser(request) {
    const user = this.account();
    if (!user) return null;
    const auth = request.headers.get("authorization") ?? "";
    if (auth.startsWith("Bearer ")) {
      // keygate refuses a token of an older session epoch (issued before a password change,
      // a reset or "sign out everywhere"): its auth_time is then no proof of anything.
      const claims = this.kg.verifyAccessToken(auth.slice(7), { sessionState: user.sessionState });
      if (!claims || claims.sub !== user.id) return null;
      return { user, via: "token", authTime: claims.auth_time };
    }
    const cookie = request.headers.get("cookie");
    const session = this.kg.readSession(cookie, { sessionState: user.sessionState });
    if (!session || session.userId !== user.id) return null;
    return { user, via: "cookie", authTime: session.createdAt, cookie };
  }

  /**
   * The signed-in user for a state-changing endpoint, or an error Response: a cookie-
   * authenticated request must come from this site's own pages (Origin), beside SameSite.
   */
  signedInFor(request) {
    const me = this.currentUser(request);
    if (!me) return { response: error(401, "unauthenticated", "Sign in first") };
    if (me.via === "cookie" && STATE_CHANGING.has(request.method)) {
      const self = new URL(request.url).origin;
      if (!originAllowed(request.headers.get("origin"), [self])) {
        return { response: error(403, "origin_mismatch", "This request did not come from this site's pages") };
      }
    }
    return { me };
  }

  // Tokens in the seed's shape, plus the session cookie; the family is stored, never sent.
  signedIn(user, tokens, family) {
    this.store.putFamily(family);
    const session = this.kg.createSession(user.id, { sessionState: user.sessionState });
    return json(200, tokens, { "set-cookie": session.cookie });
  }

  /**
   * Sign-up answers 202 and the same body whether or not the address has an account: a
   * confirmation link goes to the mailbox (here: the outbox), and only its owner creates the
   * account. Both paths hash the password, so they cost the same.
   */
  async register(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const email = emailKey(body.email);
    const password = field(body, "password", MAX_PASSWORD);
    if (!email) return error(400, "invalid_email", "Give a valid email address");
    if (!password) return error(400, "invalid_password", "Give a password");
    let passwordHash;
    try {
      passwordHash = hashPassword(password, { blocklist: blocklistFor(email) });
    } catch (e) {
      return keygateFailure(e);
    }
    const token = randomToken();
    const tokenHash = await sha256(token); // before the read: no await between read and write
    const pending = JSON.parse(this.store.meta("pending-signup") ?? "null");
    if (this.account()) {
      this.mail(email, { kind: "account-exists", to: email, note: "Someone tried to sign up with this address; sign in or reset your password" });
    } else if (pending && Date.now() - pending.at < SIGNUP_TTL_MS) {
      // An unexpired sign-up is never replaced (the object is the normalised address, so every
      // variant lands here): a second sign-up cannot swap its password under the first's link.
      // Same 202, nothing stored, no mail.
    } else {
      this.store.setMeta("pending-signup", JSON.stringify({ email, passwordHash, tokenHash, at: Date.now() }));
      this.mail(email, { kind: "confirm-signup", to: email, token, link: `/#confirm=${encodeURIComponent(email)}:${token}` });
    }
    return json(202, SIGNUP_MESSAGE);
  }

  async registerConfirm(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const email = emailKey(body.email);
    const token = field(body, "token", 256);
    const tokenHash = token ? await sha256(token) : "";
    const pending = JSON.parse(this.store.meta("pending-signup") ?? "null");
    const ok = email && token && pending && pending.email === email && Date.now() - pending.at < SIGNUP_TTL_MS &&
      sameText(tokenHash, pending.tokenHash) && !this.account();
    if (!ok) return error(400, "confirmation_invalid", "This confirmation link is invalid, expired or already used");
    const user = { id: this.userId, email, passwordHash: pending.passwordHash, roles: ["user"], now: Date.now() };
    this.store.createUser(user);
    this.store.deleteMeta("pending-signup");
    return json(201, { id: user.id, email, roles: user.roles });
  }

  async login(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const email = emailKey(body.email);
    const password = field(body, "password", MAX_PASSWORD) ?? "";
    const found = this.account();
    const user = found && found.email === email ? found : null;
    // An unknown account costs the same time as a wrong password (keygate hashes anyway).
    const r = this.kg.login(user, password);
    if (r.newPasswordHash && user) this.store.setPasswordHash(user.id, r.newPasswordHash);
    if (r.status === "mfa_required") return json(200, { mfa_required: true, mfa_token: r.mfa_token });
    if (r.status === "ok") return this.signedIn(user, r.tokens, r.family);
    return error(401, "invalid_credentials", "Invalid credentials");
  }

  async mfa(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const mfaToken = field(body, "mfa_token", 8192);
    const code = field(body, "code", 64);
    const userId = mfaToken ? this.kg.verifyMfaToken(mfaToken) : null;
    const user = userId === this.userId ? this.account() : null;
    if (!user) return error(401, "mfa_token_invalid", "Invalid or expired MFA token");
    if (!code) return error(401, "mfa_invalid", "Invalid MFA code");
    // keygate refuses a pending token made before the last password change (mfa_token_stale).
    const r = this.kg.verifyMfa(mfaToken, code, user, user.mfaState);
    this.store.setMfaState(user.id, r.state); // attempt counter, last step, used recovery codes
    if (r.status !== "ok") return error(401, r.error, r.message);
    return this.signedIn(user, r.tokens, r.family);
  }

  /**
   * keygate's decision on fresh proof before a factor changes: `code` (current TOTP or a
   * recovery code) or `password` from the body, else the sign-in time of the credential.
   */
  freshProof(me, body) {
    const code = field(body, "code", 64);
    const password = field(body, "password", MAX_PASSWORD);
    const proof = code ? { code } : password ? { password } : { authTime: me.authTime ?? 0 };
    const r = this.kg.authorizeMfaChange(me.user, me.user.mfaState, proof);
    this.store.setMfaState(me.user.id, r.state); // a wrong code counts toward the lock
    if (r.status === "ok") return null;
    return error(403, r.error, `${r.message}. Send {"password": …} (or {"code": …}) with the request.`);
  }

  // Every account handler reads the body first, then reads the account, decides and writes
  // with no await in between: a concurrent request of the same account cannot be rolled back.
  async mfaSetup(request) {
    const { body, response: bad } = await readOptionalJson(request);
    const { me, response } = this.signedInFor(request);
    if (response) return response;
    if (bad) return bad;
    const refused = this.freshProof(me, body);
    if (refused) return refused;
    const secret = generateTotpSecret();
    const uri = totpProvisioningUri(secret, me.user.email, TOTP_ISSUER);
    this.store.setPendingMfaSecret(me.user.id, secret, Date.now());
    // The seed's shape ({qr_code: base64 PNG, secret}) plus the URI, for apps that take a link.
    return json(200, { qr_code: totpQrCode(uri), secret, provisioning_uri: uri });
  }

  async mfaVerify(request) {
    const { body, response: bad } = await readJson(request);
    const { me, response } = this.signedInFor(request);
    if (response) return response;
    if (bad) return bad;
    const { user } = me;
    const code = field(body, "code", 64);
    const fresh = user.pendingMfaSecret && Date.now() - (user.pendingMfaAt ?? 0) < ENROL_TTL_MS;
    if (!fresh) return error(400, "mfa_setup_missing", "Start MFA setup first");
    const { codes, hashes } = generateRecoveryCodes(10);
    // keygate keeps the pending-token history (a used MFA token never signs in again) and the
    // replay floor; the step just used is remembered.
    const r = this.kg.enrolMfa(user.pendingMfaSecret, code ?? "", hashes, user.mfaState);
    if (r.status !== "ok") return error(400, "invalid_code", "Invalid code");
    this.store.enableMfa(user.id, user.pendingMfaSecret, r.state);
    return json(200, { success: true, recovery_codes: codes });
  }

  async mfaDisable(request) {
    const { body, response: bad } = await readOptionalJson(request);
    const { me, response } = this.signedInFor(request);
    if (response) return response;
    if (bad) return bad;
    if (!me.user.mfaEnabled) return error(400, "mfa_not_enabled", "MFA is not on");
    const refused = this.freshProof(me, body);
    if (refused) return refused;
    this.store.disableMfa(me.user.id, this.account().mfaState ?? {});
    return json(200, { success: true });
  }

  async refresh(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const token = field(body, "refresh_token", 8192);
    if (!token) return error(401, "token_missing", "Give refresh_token");
    let claims;
    try {
      claims = this.kg.verifyToken(token, "refresh");
    } catch (e) {
      return keygateFailure(e, 401);
    }
    const family = claims.fam ? this.store.family(claims.fam) : null;
    const user = claims.sub === this.userId ? this.account() : null;
    if (!family || !user) return error(401, "refresh_revoked", "This sign-in has ended; sign in again");
    const r = this.kg.refresh(token, family, { user }); // current roles; ends after a password change
    if (r.family) this.store.putFamily(r.family); // rotated, or revoked on reuse
    if (r.status !== "ok") return error(401, r.error, r.message);
    return json(200, r.tokens);
  }

  async logout(request) {
    // A body is optional: with a refresh token, its whole family is revoked too.
    const { body } = await readOptionalJson(request);
    // The session of the cookie is revoked server side: a copy of the cookie no longer works.
    const user = this.account();
    const cookie = request.headers.get("cookie");
    if (user && cookie) {
      const session = this.kg.readSession(cookie, { sessionState: user.sessionState });
      if (session) {
        const self = new URL(request.url).origin;
        if (!originAllowed(request.headers.get("origin"), [self])) {
          return error(403, "origin_mismatch", "This request did not come from this site's pages");
        }
        this.store.setSessionState(user.id, this.kg.revokeSession(cookie, user.sessionState));
      }
    }
    const token = body ? field(body, "refresh_token", 8192) : undefined;
    const claims = token ? this.kg.verifyRefreshToken(token) : null;
    const family = claims?.fam ? this.store.family(claims.fam) : null;
    if (family && family.userId === claims.sub) this.store.putFamily({ ...family, revoked: true });
    return json(200, { success: true }, { "set-cookie": this.kg.destroySessionCookie() });
  }

  /** "Sign out everywhere": every session and refresh family of the account ends. */
  async logoutAll(request) {
    const { me, response } = this.signedInFor(request);
    if (response) return response;
    this.store.setSessionState(me.user.id, endAllSessions(me.user.sessionState));
    this.store.revokeAllFamilies(me.user.id);
    return json(200, { success: true }, { "set-cookie": this.kg.destroySessionCookie() });
  }

  /** Password change (current password required): every session and refresh family ends. */
  async changePassword(request) {
    const { body, response: bad } = await readJson(request);
    const { me, response } = this.signedInFor(request);
    if (response) return response;
    if (bad) return bad;
    const current = field(body, "current_password", MAX_PASSWORD) ?? "";
    const next = field(body, "new_password", MAX_PASSWORD);
    if (!next) return error(400, "invalid_password", "Give new_password");
    let changed;
    try {
      changed = this.kg.changePassword(me.user, current, next, {
        mfaState: me.user.mfaState, sessionState: me.user.sessionState, blocklist: blocklistFor(me.user.email),
      });
    } catch (e) {
      return keygateFailure(e, e?.code === "reauthentication_required" ? 403 : 400);
    }
    this.store.setPasswordChanged(me.user.id, changed);
    return json(200, { success: true }, { "set-cookie": this.kg.destroySessionCookie() });
  }

  session(request) {
    const me = this.currentUser(request);
    if (!me) return error(401, "unauthenticated", "Not signed in");
    const { user } = me;
    return json(200, { id: user.id, email: user.email, roles: user.roles, mfa_enabled: user.mfaEnabled });
  }

  /** The demo's mail: one message per address, kept for the runner's outbox view. */
  mail(email, message) {
    this.store.setMeta(`outbox:${email}`, JSON.stringify({ ...message, at: Date.now() }));
  }

  async passwordReset(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const email = emailKey(body.email);
    const found = this.account();
    const user = found && found.email === email ? found : null;
    // keygate signs a token either way (same work); one mail is written either way.
    const token = this.kg.requestPasswordReset(user);
    if (email) {
      this.mail(email, token
        ? { kind: "reset", to: email, token }
        : { kind: "reset-no-account", to: email, note: "Someone asked to reset a password for this address; there is no account" });
    }
    return json(200, RESET_MESSAGE);
  }

  async passwordResetConfirm(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const token = field(body, "token", 8192);
    const password = field(body, "password", MAX_PASSWORD);
    if (!token || !password) return error(400, "invalid_request", "Give token and password");
    const user = this.account();
    if (!user) return error(400, "reset_token_invalid", "This reset link is invalid or was already used");
    let changed;
    try {
      // Bound to the current password hash: a used (or outdated) link is refused. The new
      // password ends every session and refresh family and clears the MFA lock.
      changed = this.kg.resetPassword(token, user, password, {
        mfaState: user.mfaState, sessionState: user.sessionState, blocklist: blocklistFor(user.email),
      });
    } catch (e) {
      if (e instanceof KeygateError && /^(token_|reset_)/.test(e.code)) {
        return error(400, "reset_token_invalid", "This reset link is invalid or was already used");
      }
      return keygateFailure(e);
    }
    this.store.setPasswordChanged(user.id, changed);
    return json(200, { success: true });
  }

  /**
   * Signing-key rotation (keys.js): an admin, signed in as for every state-changing endpoint
   * (a cookie needs this site's Origin; a token must be of the current session epoch). The
   * roles are the account's current ones, not a token's.
   */
  async rotateKeys(request) {
    const { me, response } = this.signedInFor(request);
    if (response) return response;
    if (!me.user.roles.includes("admin")) return error(403, "forbidden", "Only an admin can rotate the signing keys");
    return rotateSigningKeys(this.env, me.user.id);
  }

  // --- runner-only endpoints (Envoy does not route /__demo/; they also need the run's token)

  demoAuthorised(request) {
    const given = request.headers.get("x-demo-token") ?? "";
    return typeof this.env.DEMO_TOKEN === "string" && this.env.DEMO_TOKEN.length >= 16 && sameText(given, this.env.DEMO_TOKEN);
  }

  async seedUser(request) {
    if (!this.demoAuthorised(request)) return error(404, "not_found", "No such endpoint");
    const { email, roles } = await request.json();
    if (this.account()) return json(200, { created: false });
    const password = randomPassword();
    this.store.createUser({ id: this.userId, email, passwordHash: hashPassword(password), roles, now: Date.now() });
    return json(200, { created: true, email, password, roles });
  }

  outbox(request) {
    if (!this.demoAuthorised(request)) return error(404, "not_found", "No such endpoint");
    const email = emailKey(new URL(request.url).searchParams.get("email"));
    const mail = email ? this.store.meta(`outbox:${email}`) : null;
    return mail ? json(200, JSON.parse(mail)) : error(404, "not_found", "No mail for this address");
  }
}
