// The auth Durable Object: one instance holds every account in its SQLite database and answers
// the seed's /api/auth/* endpoints. keygate makes every decision (password check, TOTP, token
// issuance, refresh rotation and reuse detection, session cookies); this file only reads and
// writes the records keygate hands back.
//
// One object serialises all requests, so a refresh rotation or an MFA attempt counter can never
// race with itself.
import { DurableObject } from "cloudflare:workers";
import {
  Keygate,
  KeygateError,
  hashPassword,
  generateTotpSecret,
  totpProvisioningUri,
  totpQrCode,
  verifyTotp,
  generateRecoveryCodes,
} from "keygate";
import { Store } from "./store.js";
import { json, error, readJson, field } from "./http.js";

const TOTP_ISSUER = "keygate demo";
const MAX_EMAIL = 254;
const MAX_PASSWORD = 1024;
const RESET_MESSAGE = { message: "If email exists, reset link sent" };

const SEED_USERS = [
  { email: "admin@example.com", roles: ["admin"] },
  { email: "doctor@example.com", roles: ["doctor"] },
  { email: "user@example.com", roles: ["user"] },
];

function normaliseEmail(v) {
  if (typeof v !== "string") return undefined;
  const email = v.trim().toLowerCase();
  return email.length <= MAX_EMAIL && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) ? email : undefined;
}

// A readable random password for the seed accounts (printed once by the runner).
function randomPassword() {
  const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return `${out.slice(0, 6)}-${out.slice(6, 12)}-${out.slice(12)}`;
}

function keygateFailure(e) {
  if (e instanceof KeygateError) return error(400, e.code, e.message);
  throw e;
}

export class AuthStore extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.store = new Store(ctx.storage.sql);
    // Bad configuration throws here with the field named: the object refuses to start.
    this.kg = new Keygate({
      signingKey: JSON.parse(env.SIGNING_KEY),
      issuer: env.ISSUER,
      audience: env.AUDIENCE,
      session: { secret: env.SESSION_SECRET },
    });
  }

  async fetch(request) {
    const url = new URL(request.url);
    const route = `${request.method} ${url.pathname}`;
    try {
      switch (route) {
        case "GET /.well-known/jwks.json":
          return json(200, this.kg.jwks(), { "cache-control": "public, max-age=300" });
        case "POST /api/auth/register": return await this.register(request);
        case "POST /api/auth/login": return await this.login(request);
        case "POST /api/auth/mfa": return await this.mfa(request);
        case "POST /api/auth/mfa/setup": return await this.mfaSetup(request);
        case "POST /api/auth/mfa/verify": return await this.mfaVerify(request);
        case "POST /api/auth/refresh": return await this.refresh(request);
        case "POST /api/auth/logout": return await this.logout(request);
        case "POST /api/auth/password-reset": return await this.passwordReset(request);
        case "POST /api/auth/password-reset/confirm": return await this.passwordResetConfirm(request);
        case "GET /api/auth/session": return this.session(request);
        case "POST /__demo/seed": return this.seed(request);
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

  // The signed-in user: an access token (Authorization: Bearer) or the session cookie.
  currentUser(request) {
    const auth = request.headers.get("authorization") ?? "";
    let userId = null;
    if (auth.startsWith("Bearer ")) {
      userId = this.kg.verifyAccessToken(auth.slice(7))?.sub ?? null;
    } else {
      userId = this.kg.readSession(request.headers.get("cookie"))?.userId ?? null;
    }
    return userId === null ? null : this.store.userById(userId);
  }

  // Tokens in the seed's shape, plus the session cookie; the family is stored, never sent.
  signedIn(user, tokens, family) {
    this.store.putFamily(family);
    const session = this.kg.createSession(user.id);
    return json(200, tokens, { "set-cookie": session.cookie });
  }

  async register(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const email = normaliseEmail(body.email);
    const password = field(body, "password", MAX_PASSWORD);
    if (!email) return error(400, "invalid_email", "Give a valid email address");
    if (!password) return error(400, "invalid_password", "Give a password");
    let passwordHash;
    try {
      passwordHash = hashPassword(password);
    } catch (e) {
      return keygateFailure(e);
    }
    const user = { id: crypto.randomUUID(), email, passwordHash, roles: ["user"], now: Date.now() };
    if (!this.store.createUser(user)) {
      return error(409, "email_taken", "An account with this email already exists");
    }
    return json(201, { id: user.id, email, roles: user.roles });
  }

  async login(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const email = normaliseEmail(body.email);
    const password = field(body, "password", MAX_PASSWORD) ?? "";
    const user = email ? this.store.userByEmail(email) : null;
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
    const user = userId ? this.store.userById(userId) : null;
    if (!user) return error(401, "mfa_token_invalid", "Invalid or expired MFA token");
    if (!code) return error(401, "mfa_invalid", "Invalid MFA code");
    const r = this.kg.verifyMfa(mfaToken, code, user, user.mfaState);
    this.store.setMfaState(user.id, r.state); // attempt counter, last step, used recovery codes
    if (r.status !== "ok") return error(401, r.error, r.message);
    return this.signedIn(user, r.tokens, r.family);
  }

  async mfaSetup(request) {
    const user = this.currentUser(request);
    if (!user) return error(401, "unauthenticated", "Sign in first");
    const secret = generateTotpSecret();
    const uri = totpProvisioningUri(secret, user.email, TOTP_ISSUER);
    this.store.setPendingMfaSecret(user.id, secret);
    // The seed's shape ({qr_code: base64 PNG, secret}) plus the URI, for apps that take a link.
    return json(200, { qr_code: totpQrCode(uri), secret, provisioning_uri: uri });
  }

  async mfaVerify(request) {
    const user = this.currentUser(request);
    if (!user) return error(401, "unauthenticated", "Sign in first");
    const { body, response } = await readJson(request);
    if (response) return response;
    const code = field(body, "code", 64);
    if (!user.pendingMfaSecret) return error(400, "mfa_setup_missing", "Start MFA setup first");
    const step = code ? verifyTotp(user.pendingMfaSecret, code) : null;
    if (step === null) return error(400, "invalid_code", "Invalid code");
    const { codes, hashes } = generateRecoveryCodes(10);
    // The step just used is remembered, so the same code cannot sign in again.
    this.store.enableMfa(user.id, user.pendingMfaSecret, { lastTotpStep: step, recoveryHashes: hashes });
    return json(200, { success: true, recovery_codes: codes });
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
      if (e instanceof KeygateError) return error(401, e.code, e.message);
      throw e;
    }
    const family = claims.fam ? this.store.family(claims.fam) : null;
    const user = this.store.userById(claims.sub);
    if (!family || !user) return error(401, "refresh_revoked", "This sign-in has ended; sign in again");
    const r = this.kg.refresh(token, family, { user }); // current roles; ends after a password change
    if (r.family) this.store.putFamily(r.family); // rotated, or revoked on reuse
    if (r.status !== "ok") return error(401, r.error, r.message);
    return json(200, r.tokens);
  }

  async logout(request) {
    // A body is optional: with a refresh token, its whole family is revoked too.
    let token;
    if ((request.headers.get("content-type") ?? "").startsWith("application/json")) {
      const { body } = await readJson(request);
      token = body ? field(body, "refresh_token", 8192) : undefined;
    }
    const claims = token ? this.kg.verifyRefreshToken(token) : null;
    const family = claims?.fam ? this.store.family(claims.fam) : null;
    if (family && family.userId === claims.sub) this.store.putFamily({ ...family, revoked: true });
    return json(200, { success: true }, { "set-cookie": this.kg.destroySessionCookie() });
  }

  session(request) {
    const user = this.currentUser(request);
    if (!user) return error(401, "unauthenticated", "Not signed in");
    return json(200, { id: user.id, email: user.email, roles: user.roles, mfa_enabled: user.mfaEnabled });
  }

  async passwordReset(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const email = normaliseEmail(body.email);
    const user = email ? this.store.userByEmail(email) : null;
    if (user) {
      const token = this.kg.createPasswordResetToken(user);
      // The demo's "mail": kept for the runner's outbox view, never in a response to the caller.
      this.store.setMeta(`outbox:${email}`, JSON.stringify({ to: email, token, at: Date.now() }));
    }
    return json(200, RESET_MESSAGE);
  }

  async passwordResetConfirm(request) {
    const { body, response } = await readJson(request);
    if (response) return response;
    const token = field(body, "token", 8192);
    const password = field(body, "password", MAX_PASSWORD);
    if (!token || !password) return error(400, "invalid_request", "Give token and password");
    let claims;
    try {
      claims = this.kg.verifyToken(token, "reset");
    } catch (e) {
      if (e instanceof KeygateError) return error(400, e.code, e.message);
      throw e;
    }
    const user = this.store.userById(claims.sub);
    // Bound to the current password hash: a used (or outdated) link is refused.
    if (!user || this.kg.verifyPasswordResetToken(token, user) === null) {
      return error(400, "reset_token_invalid", "This reset link is invalid or was already used");
    }
    let hash;
    try {
      hash = hashPassword(password);
    } catch (e) {
      return keygateFailure(e);
    }
    this.store.setPasswordHash(user.id, hash);
    return json(200, { success: true });
  }

  // --- runner-only endpoints (Envoy does not route /__demo/; they also need the run's token)

  demoAuthorised(request) {
    const given = request.headers.get("x-demo-token") ?? "";
    return typeof this.env.DEMO_TOKEN === "string" && this.env.DEMO_TOKEN.length >= 16 && given === this.env.DEMO_TOKEN;
  }

  seed(request) {
    if (!this.demoAuthorised(request)) return error(404, "not_found", "No such endpoint");
    if (this.store.meta("seeded")) return json(200, { created: false, users: this.store.countUsers() });
    const users = [];
    for (const { email, roles } of SEED_USERS) {
      const password = randomPassword();
      const passwordHash = hashPassword(password);
      this.store.createUser({ id: crypto.randomUUID(), email, passwordHash, roles, now: Date.now() });
      users.push({ email, password, roles });
    }
    this.store.setMeta("seeded", new Date().toISOString());
    return json(200, { created: true, users });
  }

  outbox(request) {
    if (!this.demoAuthorised(request)) return error(404, "not_found", "No such endpoint");
    const email = normaliseEmail(new URL(request.url).searchParams.get("email"));
    const mail = email ? this.store.meta(`outbox:${email}`) : null;
    return mail ? json(200, JSON.parse(mail)) : error(404, "not_found", "No mail for this address");
  }
}
