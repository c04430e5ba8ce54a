/**
 * keygate — login for edge workers from one import: Argon2id passwords, TOTP MFA, JWT issuance
 * and refresh rotation, signed session cookies. A Rust core compiled to WebAssembly; the same
 * `import { … } from "keygate"` works in Node ≥ 20, workerd / Cloudflare Workers, Deno and
 * browsers, with no `init()` call.
 *
 * Time: every function that depends on the clock takes `options.now` (a `Date`; defaults to the
 * current time). Stored state (password hashes, TOTP steps, MFA state, refresh families) is
 * yours: keygate takes it in and hands the new value back as plain JSON-able objects, so any
 * store works (KV, Durable Objects, D1, Redis, a Map).
 *
 * Errors: everything thrown is a {@link KeygateError} with a stable `code`.
 * @module
 */

/** Longest string argument accepted (1 MiB, in UTF-16 code units); longer → `input_too_large`. */
export const MAX_INPUT_LENGTH: number;

/**
 * Every `code` a {@link KeygateError} can carry (the table in README "Error codes"). Stable:
 * codes are added, never renamed or removed.
 */
export type KeygateErrorCode =
  // from this package
  | "invalid_input" | "input_too_large" | "internal_error"
  // configuration and platform
  | "config_invalid" | "entropy_unavailable" | "wasm_simd_unsupported"
  // tokens
  | "token_missing" | "token_too_large" | "token_malformed" | "token_algorithm_not_allowed"
  | "token_unknown_key" | "token_invalid" | "token_missing_claim" | "token_claim_too_large"
  | "token_wrong_type" | "token_expired" | "token_not_yet_valid" | "token_issuer_invalid"
  | "token_audience_invalid" | "token_signing_failed" | "token_mismatch"
  // policy and rate limits
  | "forbidden" | "rate_limited" | "rate_limit_state_invalid"
  // passwords
  | "password_too_short" | "password_too_long" | "hash_invalid" | "password_hash_failed"
  // breached and blocklisted passwords, per-account login throttle
  | "password_breached" | "password_blocklisted" | "breach_check_failed" | "login_state_invalid"
  // TOTP and QR codes
  | "totp_invalid" | "totp_replayed" | "totp_secret_invalid" | "totp_label_invalid" | "qr_too_long" | "qr_failed"
  // the login flow
  | "mfa_invalid" | "mfa_attempts_exceeded" | "mfa_locked" | "mfa_token_used" | "mfa_not_configured"
  | "refresh_reused" | "refresh_revoked" | "reset_token_stale" | "mfa_token_stale" | "reauthentication_required"
  // email addresses
  | "email_invalid"
  // sessions
  | "session_missing" | "session_invalid" | "session_expired" | "session_idle_timeout" | "session_user_id_invalid"
  | "session_revoked";

/** The optional details of a {@link KeygateError}. */
export interface KeygateErrorDetails {
  /** See {@link KeygateError.field}. */
  field?: string;
  /** See {@link KeygateError.claim}. */
  claim?: string;
  /** The underlying error, as `Error.cause`. */
  cause?: unknown;
}

/**
 * The one error type keygate throws.
 *
 * `code` is stable: the core's codes (`token_expired`, `hash_invalid`, `password_too_short`,
 * `totp_secret_invalid`, `config_invalid`, …, listed in README) plus, from this package,
 * `invalid_input` (an argument of the wrong type or shape; `field` names it),
 * `input_too_large` (a string over {@link MAX_INPUT_LENGTH} or a list over 1000 entries) and
 * `internal_error` (the WebAssembly module failed, e.g. out of memory).
 * @example
 * try { kg.verifyToken(token, "access"); }
 * catch (e) { if (e instanceof KeygateError && e.code === "token_expired") return refresh(); throw e; }
 */
export class KeygateError extends Error {
  /** Makes one (for tests and mocks; keygate's own are thrown by the functions). */
  constructor(code: KeygateErrorCode, message: string, details?: KeygateErrorDetails);
  readonly name: "KeygateError";
  /** Stable machine-readable code: one of {@link KeygateErrorCode}. */
  readonly code: KeygateErrorCode;
  /** For `config_invalid` / `invalid_input`: the dotted path of the field or argument (`password.timeCost`, `user.id`, `options.now`). */
  readonly field?: string;
  /** For token errors: the claim concerned (`exp`, `nbf`, `iat`, `iss`, `aud`, `type`, …). */
  readonly claim?: string;
}

/** Clock override accepted by every time-dependent call. */
export interface NowOptions {
  /** The time to use instead of `Date.now()`; whole seconds count. */
  now?: Date;
}

// ----------------------------------------------------------------------------------------------
// Passwords

/** Argon2id parameters and policy. Defaults are the seed's (argon2-cffi's): 3, 65536 KiB, 4. */
export interface PasswordOptions {
  /** Passes over memory, 1–10. Defaults to 3. */
  timeCost?: number;
  /** Memory in KiB, 8–1048576 (and ≥ 8 × parallelism). Defaults to 65536 (64 MiB). */
  memoryCost?: number;
  /** Lanes, 1–16. Defaults to 4. */
  parallelism?: number;
  /** Minimum length of a new password in characters, 1–64. Defaults to 8 (NIST 800-63B). Passwords over 1024 bytes are always refused. */
  minLength?: number;
}

/**
 * Hashes a new password with Argon2id and a fresh 16-byte salt.
 * @returns a PHC string, `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>` (argon2-cffi compatible).
 * @throws KeygateError `password_too_short`, `password_too_long`, `config_invalid` (options, `field` = `options.timeCost` …).
 * @example
 * const hash = hashPassword("correct horse battery staple");
 */
export function hashPassword(password: string, options?: PasswordOptions & NewPasswordChecks): string;

/**
 * Checks a password against a stored PHC string (its own parameters are used). Constant time.
 * @returns `true` when it matches, `false` when the password is wrong.
 * @throws KeygateError `hash_invalid` for a malformed or non-Argon2id hash, `password_too_long` over 1024 bytes.
 * @example
 * if (!verifyPassword(user.passwordHash, password)) return new Response("", { status: 401 });
 */
export function verifyPassword(hash: string, password: string): boolean;

/**
 * Whether a stored hash uses other parameters than `options` (defaults: the seed's), so it
 * should be replaced after the next successful login.
 * @throws KeygateError `hash_invalid`, `config_invalid`.
 */
export function needsRehash(hash: string, options?: PasswordOptions): boolean;

/**
 * {@link hashPassword} without blocking the caller's thread: in Node on a small worker_threads
 * pool (≤ min(4, cores − 1) threads, started on first use, never keeping the process alive);
 * inline in workerd, Deno, browsers and edge runtimes (no threads there). Same result, same errors.
 * @example
 * const hash = await hashPasswordAsync(password); // the event loop keeps serving meanwhile
 */
export function hashPasswordAsync(password: string, options?: PasswordOptions & NewPasswordChecks): Promise<string>;

/** {@link verifyPassword} off the main thread in Node (see {@link hashPasswordAsync}). */
export function verifyPasswordAsync(hash: string, password: string): Promise<boolean>;

// ----------------------------------------------------------------------------------------------
// TOTP

/** TOTP settings. Defaults match pyotp and every authenticator app. */
export interface TotpOptions {
  /** `"SHA1"`, `"SHA256"` or `"SHA512"` (case-insensitive). Defaults to `"SHA1"`. */
  algorithm?: string;
  /** Code length, 6–8. Defaults to 6. */
  digits?: number;
  /** Seconds per step, 15–120 (or `"30s"`). Defaults to 30. */
  period?: number | string;
}

/** Options of {@link verifyTotp}. */
export interface VerifyTotpOptions extends TotpOptions, NowOptions {
  /** Steps accepted either side of now, 0–5. Defaults to 1 (the seed's `valid_window=1`). */
  window?: number;
  /** The step returned by the last successful verification: codes at or before it are refused (replay, RFC 6238 §5.2). */
  lastUsedStep?: number | null;
}

/**
 * A new random 160-bit TOTP secret, base32 without padding (32 characters), like `pyotp.random_base32()`.
 * @example
 * const secret = generateTotpSecret(); // store it once the user confirmed a code
 */
export function generateTotpSecret(): string;

/**
 * The `otpauth://totp/Issuer:account?secret=…&issuer=…` URI for authenticator apps (pyotp's exact form).
 * @throws KeygateError `totp_secret_invalid`, `totp_label_invalid` (empty or > 256-byte name/issuer), `config_invalid`.
 * @example
 * const uri = totpProvisioningUri(secret, "alice@example.com", "MyApp");
 */
export function totpProvisioningUri(secret: string, accountName: string, issuer: string, options?: TotpOptions): string;

/**
 * The QR code of `uri` as a base64 PNG (the seed's `get_totp_qr_code` shape; box 10 px, border 5).
 * Use as `<img src="data:image/png;base64,${png}">`.
 * @throws KeygateError `qr_too_long`, `invalid_input` for an empty uri.
 */
export function totpQrCode(uri: string): string;

/**
 * The QR code of `uri` as SVG text.
 * @throws KeygateError `qr_too_long`, `invalid_input` for an empty uri.
 */
export function totpQrSvg(uri: string): string;

/**
 * Checks a TOTP code (±`window` steps around now).
 * @returns the accepted time step — store it and pass it back as `lastUsedStep` — or `null` when
 * the code is wrong, expired, malformed or replayed.
 * @throws KeygateError `totp_secret_invalid` for a secret that is not base32 of 128–1024 bits.
 * @example
 * const step = verifyTotp(user.mfaSecret, code, { lastUsedStep: user.lastTotpStep });
 * if (step === null) return new Response("", { status: 401 });
 */
export function verifyTotp(secret: string, code: string, options?: VerifyTotpOptions): number | null;

/**
 * The current code for a secret (for tests, or to show a sample during enrolment).
 * @throws KeygateError `totp_secret_invalid`, `config_invalid`.
 */
export function generateTotpCode(secret: string, options?: TotpOptions & NowOptions): string;

/** A fresh batch of recovery codes: show `codes` once, store only `hashes` (same order). */
export interface RecoveryCodes {
  /** `xxxx-xxxx-xxxx-xxxx`, 80 random bits each. */
  codes: string[];
  /** Lower-case hex SHA-256 of each normalised code. */
  hashes: string[];
}

/**
 * Makes `n` (1–20, default 10) one-time recovery codes.
 * @throws KeygateError `config_invalid` (`field` = `n`) outside 1–20.
 */
export function generateRecoveryCodes(n?: number): RecoveryCodes;

/**
 * Spends a recovery code (case, dashes and spaces ignored; constant time).
 * @returns the hashes left — store them instead of the old list — or `null` when nothing matches.
 */
export function verifyRecoveryCode(hashes: string[], code: string): string[] | null;

// ----------------------------------------------------------------------------------------------
// Keys

/** A JSON Web Key (RFC 7517) as keygate reads and writes it. */
export interface Jwk {
  kty: "oct" | "OKP" | "EC" | "RSA" | string;
  kid?: string;
  alg?: string;
  use?: string;
  k?: string;
  crv?: string;
  x?: string;
  y?: string;
  d?: string;
  n?: string;
  e?: string;
}

/** A JWK Set document. */
export interface Jwks {
  keys: Jwk[];
}

/**
 * A new private signing key as a JWK (keep it secret; pass it as `signingKey`).
 * @param algorithm `"HS256"`, `"HS384"`, `"HS512"`, `"EdDSA"` or `"ES256"`.
 * @throws KeygateError `invalid_input` for another algorithm or a bad `kid`.
 * @example
 * const signingKey = generateSigningKey("EdDSA", { kid: "2025-01" });
 */
export function generateSigningKey(algorithm: "HS256" | "HS384" | "HS512" | "EdDSA" | "ES256", options?: { kid?: string }): Jwk;

// ----------------------------------------------------------------------------------------------
// The Keygate class

/** A duration: whole seconds, or a string like `"15m"`, `"1h30m"`, `"14d"`. */
export type Duration = number | string;

/**
 * `new Keygate(config)`. Exactly one of `secret` / `signingKey` / `signingKeys`. Unknown fields are refused.
 * Read and checked by the core (`keygate::edge_config::EdgeConfig`); a refusal is a `KeygateError`
 * `config_invalid` whose `field` is the path as written (`password.timeCost`, `signingKeys[1].kid`).
 */
export interface KeygateConfig {
  /** HMAC secret for HS256/384/512 tokens, at least 32 bytes (string: its UTF-8 bytes). Also the session secret unless `session.secret` is set. */
  secret?: string | Uint8Array;
  /** With `secret`: `"HS256"` (default), `"HS384"` or `"HS512"`. With a PEM `signingKey`: `"EdDSA"` or `"ES256"`. */
  algorithm?: string;
  /** Private signing key: a JWK (object or JSON text; `oct` with `alg`, OKP Ed25519, EC P-256) or a PKCS#8 PEM (then set `algorithm`). Its public half is served by {@link Keygate.jwks}. */
  signingKey?: Jwk | string;
  /**
   * Signing-key rotation: `[current, ...previous]`. The first (a private JWK) signs every new token;
   * every key verifies; {@link Keygate.jwks} publishes the public half of each asymmetric one (with its `kid`).
   * Every key needs its own `kid` (`config_invalid` naming `signingKeys[i].kid`). Later keys may be private
   * JWKs or only their public half. `oct` keys (HMAC) rotate the same way and are never published; `oct` and
   * asymmetric keys may be mixed (e.g. migrating from a secret to EdDSA), each key pinned to its own `alg`.
   * Not with `secret`, `signingKey`, `algorithm` or `keyId`; sessions then need `session.secret`.
   * @example
   * new Keygate({ signingKeys: [newKey, oldKey], session: { secret } });
   */
  signingKeys?: Array<Jwk | string>;
  /** `kid` written into token headers (overrides the JWK's). */
  keyId?: string;
  /** `iss` put into and required of every token. */
  issuer?: string;
  /** `aud` put into and required of every token. */
  audience?: string;
  /** Access-token lifetime (30 s – 1 day). Defaults to 900 (15 minutes, the seed's). */
  accessTokenTtl?: Duration;
  /** Refresh-token lifetime (> accessTokenTtl, ≤ 400 days). Defaults to 1209600 (14 days). */
  refreshTokenTtl?: Duration;
  /** MFA-pending-token lifetime (30 s – 30 min). Defaults to 300. */
  mfaTokenTtl?: Duration;
  /** Password-reset-token lifetime (15–60 min). Defaults to 1800. */
  resetTokenTtl?: Duration;
  /** Seconds the previous refresh token stays usable after a rotation (concurrent tabs), 0–120. Defaults to 10. */
  refreshGrace?: Duration;
  /** Clock skew allowed on `exp`, `nbf` and `iat` when verifying tokens, 0–300 s. Defaults to 30. */
  leeway?: Duration;
  /** Wrong MFA codes allowed per MFA-pending token, 1–20. Defaults to 5. */
  mfaMaxAttempts?: number;
  /** Wrong MFA codes in a row (across pending tokens) before MFA locks (`mfa_locked`), 1–100. Defaults to 100. */
  mfaMaxFailures?: number;
  /** Absolute lifetime of a sign-in's refresh family, at least `refreshTokenTtl`. Defaults to 30 days. */
  refreshFamilyTtl?: Duration;
  /** Argon2id parameters for login's rehash and {@link Keygate.login}'s `newPasswordHash`. */
  password?: PasswordOptions;
  /** TOTP settings used by {@link Keygate.verifyMfa}. */
  totp?: TotpOptions & { window?: number };
  /** Session cookies. Defaults: `__Host-session`, 1 h absolute, 30 min idle, SameSite=Strict. */
  session?: {
    /** HMAC secret (≥ 32 bytes). Defaults to the top-level `secret`; required with `signingKey` / `signingKeys`. */
    secret?: string | Uint8Array;
    /** Must start with `__Host-`. Defaults to `"__Host-session"`. */
    cookieName?: string;
    /** Maximum lifetime from sign-in. Defaults to 3600. */
    absoluteTimeout?: Duration;
    /** Inactivity timeout (≤ absoluteTimeout). Defaults to 1800 (or absoluteTimeout if shorter). */
    idleTimeout?: Duration;
    /** `"strict"` (default) or `"lax"`. */
    sameSite?: "strict" | "lax";
  };
}

/** Decoded, verified claims. */
export interface Claims {
  sub: string;
  type: "access" | "refresh" | "mfa" | "reset";
  roles?: string[];
  iat: number;
  exp: number;
  nbf?: number;
  iss?: string;
  aud?: string | string[];
  jti?: string;
  sid?: string;
  amr?: string[];
  permissions?: string[];
  /** Refresh tokens: the family id (look the family up with it). */
  fam?: string;
  /** Refresh tokens: the generation within the family. */
  gen?: number;
  [claim: string]: unknown;
}

/**
 * The user record keygate reads (extra fields are ignored, so pass your row as is).
 */
export interface UserRecord {
  /** User id: the tokens' `sub`. */
  id: string;
  /** Stored Argon2id PHC string (required by login and reset tokens). */
  passwordHash?: string;
  /** Roles copied into access tokens. */
  roles?: string[];
  /** Whether sign-in needs a second factor. */
  mfaEnabled?: boolean;
  /** The base32 TOTP secret, once enrolled. */
  mfaSecret?: string | null;
}

/** One sign-in's refresh-token family. Store it under `familyId`; hand it back to {@link Keygate.refresh}. */
export interface RefreshFamily {
  familyId: string;
  userId: string;
  /** Generation of the only refresh token that may rotate next. */
  generation: number;
  /** Unix seconds of the last rotation. */
  rotatedAt: number;
  /** Unix seconds of the sign-in; the family ends `refreshFamilyTtl` (30 days) later. */
  createdAt: number;
  /** Digest of the password hash at sign-in (a password change ends the family); null when unbound. */
  passwordFingerprint?: string | null;
  /** Set on reuse (or by you on logout: `{...family, revoked: true}`); nothing of the family is accepted afterwards. */
  revoked: boolean;
}

/** Per-user MFA state. Store it after every {@link Keygate.verifyMfa}, success or not. */
export interface MfaState {
  /** Last accepted TOTP step; codes at or before it are replays. */
  lastTotpStep?: number | null;
  /** Hashes of unused recovery codes (from {@link generateRecoveryCodes}). */
  recoveryHashes?: string[];
  /** `jti` of the newest MFA-pending token seen; older ones are refused (`mfa_token_used`). */
  pendingJti?: string | null;
  /** `iat` of `pendingJti`. */
  pendingIat?: number | null;
  /** Wrong codes so far for `pendingJti`. */
  failedAttempts?: number;
  /** Wrong codes in a row across all pending tokens; at `mfaMaxFailures` (100) MFA locks (`mfa_locked`). */
  consecutiveFailures?: number;
  /** Whether `pendingJti` already completed sign-in. */
  completed?: boolean;
}

/**
 * The seed's `issue_tokens` shape: send it to the client as is.
 *
 * `family` is a **non-enumerable** extra: `JSON.stringify(tokens)`, `Response.json(tokens)` and
 * `{...tokens}` never include it; read it to store the refresh family.
 */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  /** Access-token lifetime in seconds. */
  expires_in: number;
  /** Non-enumerable: the refresh family to store (server side only). */
  readonly family: RefreshFamily;
}

/** {@link Keygate.login}'s result. Send only `tokens` / `mfa_token` to the client. */
export type LoginResult =
  | { status: "ok"; tokens: TokenPair; family: RefreshFamily; newPasswordHash?: string }
  | { status: "mfa_required"; mfa_token: string; newPasswordHash?: string }
  | { status: "invalid" };

/** {@link Keygate.verifyMfa}'s result: store `state` in both cases. */
export type MfaResult =
  | { status: "ok"; tokens: TokenPair; family: RefreshFamily; state: Required<MfaState>; method: "totp" | "recovery" }
  | { status: "error"; error: string; message: string; state: Required<MfaState> };

/** {@link Keygate.refresh}'s result. When `family` is present, store it. */
export type RefreshResult =
  | { status: "ok"; tokens: TokenPair; family: RefreshFamily }
  | { status: "error"; error: "refresh_reused"; message: string; family: RefreshFamily }
  | { status: "error"; error: string; message: string; family?: undefined };

/** A verified session. Times are Unix seconds. */
export interface SessionInfo {
  /** `Set-Cookie` header value (for readSession: refreshed, slides the idle timeout). */
  cookie: string;
  userId: string;
  /** 128-bit random id (base64url): a key for server-side revocation lists. */
  sessionId: string;
  createdAt: number;
  lastSeen: number;
  /** When the absolute timeout ends the session. */
  expiresAt: number;
  /** The user's session epoch when the session was made (see {@link SessionState}). */
  epoch: number;
}

/**
 * Per-user session revocation state: store it with the user record, start from `{}`.
 * Sessions of another `epoch` are refused (`endAllSessions` starts a new one: password change,
 * reset, sign out everywhere); `revoked` lists sessions signed out one by one, each until its
 * absolute timeout (at most 64; one more ends every session instead).
 */
export interface SessionState {
  epoch?: number;
  revoked?: { id: string; until: number }[];
}

/** Fresh proof for {@link Keygate.authorizeMfaChange}: exactly one member. */
export type MfaChangeProof =
  | { code: string }
  | { password: string }
  /** When the password was last entered: the access token's `auth_time`, or the session's `createdAt` (Unix seconds or a Date). */
  | { authTime: number | Date };

/** {@link Keygate.authorizeMfaChange}'s result: store `state` in both cases. */
export type MfaChangeResult =
  | { status: "ok"; state: Required<MfaState> }
  | { status: "error"; error: string; message: string; state: Required<MfaState> };

/** {@link Keygate.resetPassword} / {@link Keygate.changePassword}: store all three. */
export interface PasswordChanged {
  passwordHash: string;
  /** Every session ended (new epoch). */
  sessionState: Required<SessionState>;
  /** The MFA state with the lock cleared, or null when none was given. */
  mfaState: Required<MfaState> | null;
}

/**
 * The one normal form of an email address: NFKC, full case folding, NFKC; refuses control,
 * invisible (zero-width, bidi, soft hyphen…), whitespace and private-use characters and a local
 * part or domain label that mixes scripts. Store and look up accounts by it.
 * @throws KeygateError `email_invalid`.
 */
export function normalizeEmail(email: string): string;

/**
 * Whether a request's `Origin` (null when absent) is one of `allowed` ("https://app.example.com").
 * Check it on cookie-authenticated requests that change state; a missing Origin is refused.
 */
export function originAllowed(origin: string | null | undefined, allowed: string[]): boolean;

/** `sessionState` with every session ended (a new epoch). */
export function endAllSessions(sessionState?: SessionState | null): Required<SessionState>;

/**
 * One configuration: signing key, lifetimes, password/TOTP settings, session cookies.
 * Construct once per isolate (at module scope) and reuse.
 * @throws KeygateError `config_invalid` with `field` naming the refused setting.
 * @example
 * const kg = new Keygate({ secret: env.JWT_SECRET, issuer: "https://auth.example.com" });
 */
export class Keygate {
  constructor(config: KeygateConfig);

  /**
   * A signed access token `{sub, type: "access", roles, iat, exp, jti}` (+ iss/aud/amr).
   * @throws KeygateError `token_claim_too_large` / `token_missing_claim` for ids or roles out of bounds.
   */
  createAccessToken(
    userId: string,
    roles?: string[],
    options?: NowOptions & {
      amr?: string[];
      /**
       * Application claims to add (`{tenant: "acme"}`): JSON values, at most 32 names and 4 KiB.
       * Names keygate sets (`sub`, `type`, `roles`, `iat`, `exp`, `nbf`, `iss`, `aud`, `jti`,
       * `sid`, `amr`, `permissions`, `fam`, `gen`) are refused: `invalid_input`, `field` =
       * `options.claims.<name>`. Verified tokens return them among their claims.
       */
      claims?: Record<string, unknown>;
    },
  ): string;

  /**
   * The claims of a valid access token, or `null` (bad signature, expired, wrong `type`, malformed…).
   * With `sessionState` (the user's stored session state; use it at account endpoints), a token
   * of an older session epoch (`sep` claim: issued before a password change, a reset or "sign
   * out everywhere") or without `sep` is `null` too. Without it the check is stateless: the
   * token lives its TTL (as at APIs behind the Envoy filter).
   */
  verifyAccessToken(token: string | null | undefined, options?: NowOptions & { sessionState?: SessionState | null }): Claims | null;

  /**
   * Verifies a token of any keygate type and throws the reason when it is refused.
   * @throws KeygateError `token_expired` (`claim: "exp"`), `token_invalid`, `token_wrong_type`, `token_malformed`, …
   */
  verifyToken(token: string, type: "access" | "refresh" | "mfa" | "reset", options?: NowOptions): Claims;

  /** The claims of a valid refresh token (`fam` is the family id to load), or `null`. */
  verifyRefreshToken(token: string, options?: NowOptions): Claims | null;

  /** The first refresh token of a new family, and that family to store. */
  createRefreshToken(userId: string, options?: NowOptions & { roles?: string[] }): { refresh_token: string; family: RefreshFamily };

  /** A short-lived `type: "mfa"` token for the second login step. */
  createMfaToken(userId: string, options?: NowOptions): string;

  /** The user id of a valid MFA-pending token, or `null`. */
  verifyMfaToken(token: string, options?: NowOptions): string | null;

  /**
   * An access token and the first refresh token of a new family: the seed's
   * `{access_token, refresh_token, token_type: "Bearer", expires_in}` (family non-enumerable).
   */
  issueTokens(user: Pick<UserRecord, "id" | "roles">, options?: NowOptions & { amr?: string[] }): TokenPair;

  /**
   * Step one of sign-in. Pass `null` for an unknown account: it costs the same time as a wrong
   * password and answers the same `{status: "invalid"}`. `newPasswordHash`, when present,
   * replaces the stored hash (parameters changed).
   * @throws KeygateError `hash_invalid` for an unreadable stored hash.
   * @example
   * const r = kg.login(await db.userByEmail(email), password);
   * if (r.status === "invalid") return json({ error: "Invalid credentials" }, 401);
   */
  login(user: UserRecord | null, password: string, options?: LoginOptions): LoginResult & ThrottledLogin;

  /** {@link Keygate.login} with its Argon2id work off the main thread in Node (see {@link hashPasswordAsync}); inline elsewhere. */
  loginAsync(user: UserRecord | null, password: string, options?: LoginOptions): Promise<LoginResult & ThrottledLogin>;

  /**
   * Step two: the MFA-pending token and a TOTP code or a recovery code. Refuses replays, caps
   * wrong codes per pending token (`mfa_attempts_exceeded`) and lets each token sign in once.
   * Errors are returned (`status: "error"`, `error` = code) because `state` must be stored.
   */
  verifyMfa(mfaToken: string, code: string, user: UserRecord, state?: MfaState | null, options?: NowOptions): MfaResult;

  /**
   * Refresh-token rotation. Reusing an already rotated token revokes the family
   * (`error: "refresh_reused"` with the revoked `family` to store).
   * Pass `options.user` (the current user record) whenever you have it: the new access token
   * then carries the user's current roles, and a family opened before the last password
   * change is refused (`refresh_revoked`). A family older than `refreshFamilyTtl` is refused too.
   * @param family the stored family (look it up by `verifyRefreshToken(token).fam`).
   */
  refresh(refreshToken: string, family: RefreshFamily, options?: NowOptions & { user?: UserRecord | null }): RefreshResult;

  /** A single-use reset token bound to the user's current password hash. */
  createPasswordResetToken(user: Pick<UserRecord, "id" | "passwordHash">, options?: NowOptions): string;

  /** The user id when the reset token is valid and the password unchanged since; else `null`. */
  verifyPasswordResetToken(token: string, user: Pick<UserRecord, "id" | "passwordHash">, options?: NowOptions): string | null;

  /**
   * A new session: send `cookie` as the `Set-Cookie` header.
   * @throws KeygateError `config_invalid` (`field: "session.secret"`) when no session secret is configured.
   */
  createSession(userId: string, options?: NowOptions & { sessionState?: SessionState | null }): SessionInfo;

  /**
   * The session in a request's `Cookie` header (may be `null`), or `null` when missing, forged,
   * expired, or — with `options.sessionState` (the user's stored state) — revoked. Without
   * `sessionState` no revocation is checked: read once without it to learn `userId`, load that
   * user's state, then read again with it.
   */
  readSession(cookieHeader: string | null | undefined, options?: NowOptions & { sessionState?: SessionState | null }): SessionInfo | null;

  /** `sessionState` with the cookie's session revoked (logout), until its absolute timeout. */
  revokeSession(cookieHeader: string | null | undefined, sessionState: SessionState | null | undefined, options?: NowOptions): Required<SessionState>;

  /**
   * May the user change or remove the second factor now? Needs fresh proof: the current TOTP
   * code or a recovery code (`{code}`, users with MFA; counts toward the lock), the password
   * (`{password}`), or a sign-in at most 5 minutes ago (`{authTime}`). Otherwise
   * `error: "reauthentication_required"`.
   */
  authorizeMfaChange(user: UserRecord, state: MfaState | null | undefined, proof: MfaChangeProof, options?: NowOptions): MfaChangeResult;

  /**
   * Completes (re-)enrolment after authorizeMfaChange: `code` must be valid for the new `secret`.
   * The returned state keeps the pending-token history (a pending token that signed in never
   * signs in again) and clears the lock.
   */
  enrolMfa(secret: string, code: string, recoveryHashes: string[], state: MfaState | null | undefined, options?: NowOptions):
    | { status: "ok"; state: Required<MfaState> }
    | { status: "error"; error: string; message: string };

  /** A reset token for a known user; for `null` (unknown account) the same work, then `null`. */
  requestPasswordReset(user: Pick<UserRecord, "id" | "passwordHash"> | null, options?: NowOptions): string | null;

  /**
   * Completes a reset: new hash, every session ended, MFA lock cleared.
   * `blocklist` / `breachCount` are checked on the new password first, as by {@link hashPassword}.
   * @throws KeygateError `reset_token_stale`, `token_expired`, `token_mismatch`, `password_too_short`,
   * `password_blocklisted`, `password_breached`, …
   */
  resetPassword(token: string, user: UserRecord, newPassword: string, options?: NowOptions & NewPasswordChecks & { mfaState?: MfaState | null; sessionState?: SessionState | null }): PasswordChanged;

  /**
   * A password change proven by the current password; then as resetPassword.
   * @throws KeygateError `reauthentication_required` for a wrong current password;
   * `password_blocklisted` / `password_breached` from `blocklist` / `breachCount`.
   */
  changePassword(user: UserRecord, currentPassword: string, newPassword: string, options?: NewPasswordChecks & { mfaState?: MfaState | null; sessionState?: SessionState | null }): PasswordChanged;

  /** The `Set-Cookie` value that deletes the session cookie (sign-out). */
  destroySessionCookie(): string;

  /** The public JWKS of the signing key, or of every asymmetric key of `signingKeys` (current first), for `/.well-known/jwks.json`. HMAC keys are never included (`{keys: []}` for a secret). */
  jwks(): Jwks;
}

// ---- Rate limits without Envoy (issue 13) ---------------------------------------------------

/** The answer of {@link checkRateLimit}. */
export interface RateLimitResult {
  /** Whether the request is admitted. */
  allowed: boolean;
  /** Seconds until a retry can be admitted; `null` when admitted. */
  retryAfter: number | null;
  /** The key's new state: store it on **every** answer (refusals included), e.g. in a Durable Object. */
  state: string;
  /** Headers to send on every answer: `RateLimit-Policy`, `RateLimit`, and `Retry-After` on a refusal. */
  headers: { "RateLimit-Policy": string; RateLimit: string; "Retry-After"?: string };
}

/**
 * One rate-limit decision for one key, by the core's GCRA (the same semantics as the Envoy
 * filter's `rate_limits`): a fresh key gets `count` at once, then one per period / count.
 *
 * @param limit `"5/minute"` or a list that must all admit: `["200/day", "50/hour"]`.
 * @param state The `state` returned last time for this key and limit, or `null` for a new key.
 * @throws KeygateError `rate_limit_state_invalid` when `state` is garbage, truncated or another
 *   limit's (never a silent fresh start); `config_invalid` (field `limit` / `limit[i]`).
 * @example
 * const r = checkRateLimit("5/minute", await storage.get(key) ?? null);
 * await storage.put(key, r.state);
 * if (!r.allowed) return new Response("slow down", { status: 429, headers: r.headers });
 *
 * @example
 * // Worker-only mode of the example auth worker (js/examples/auth-worker/limits.js, switched
 * // on by the variable WORKER_ONLY = "1"; off behind Envoy, whose filter applies the limits):
 * // one Durable Object per key, read-decide-write with no await in between.
 * export class RateLimiter extends DurableObject {
 *   check(limit) {
 *     const sql = this.ctx.storage.sql;
 *     const row = sql.exec("SELECT state FROM rate WHERE id = 1").toArray()[0];
 *     const d = checkRateLimit(limit, row ? row.state : null);
 *     sql.exec("INSERT INTO rate (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state", d.state);
 *     return d;
 *   }
 * }
 * const ip = request.headers.get("cf-connecting-ip"); // set by Cloudflare's edge
 * const d = await env.LIMITS.get(env.LIMITS.idFromName(`login:5/minute:ip:${ip}`)).check("5/minute");
 * if (!d.allowed) return Response.json({ error: "rate_limited" }, { status: 429, headers: d.headers });
 */
export function checkRateLimit(limit: string | string[], state: string | null, options?: NowOptions): RateLimitResult;

/**
 * The rate-limit key of a client address, as the Envoy filter keys its client: `ip:203.0.113.7`,
 * IPv6 by its /64 in canonical form (`ip:2001:db8:1:2::/64` for `2001:DB8:1:2:0:0:0:7`),
 * IPv4-mapped IPv6 as IPv4, a `:port` dropped; `null` when `address` is not an address (give
 * such requests one shared key, never one each).
 * @example
 * const key = clientAddressKey(request.headers.get("cf-connecting-ip") ?? "") ?? "ip:-";
 * const r = checkRateLimit("5/minute", await storage.get(`login:${key}`) ?? null);
 */
export function clientAddressKey(address: string): string | null;

// ---- Per-account login throttling (issue 13) ------------------------------------------------

/** Settings of the per-account throttle (all optional). */
export interface ThrottleOptions {
  /** Consecutive failures before the first lock. Defaults to 10 (1–1000). */
  maxFailures?: number;
  /** The first lock in seconds; each further failure doubles it. Defaults to 30. */
  baseDelay?: number;
  /** The longest lock in seconds. Defaults to 900 (15 minutes; at most 86400). */
  maxDelay?: number;
}

/** Options of {@link Keygate.login}. */
export interface LoginOptions extends NowOptions {
  /**
   * The per-account failure state stored for this login name (`null` for none yet). When this
   * key is present, the core throttles the name: after `maxFailures` consecutive failures it is
   * locked for an exponentially growing delay during which the password is not checked (a dummy
   * Argon2id runs, the answer is `{status: "invalid"}` as for a wrong password). Keep one state
   * per name typed — also for names with no account — and store it by compare-and-set or in a
   * transaction.
   * @throws KeygateError `login_state_invalid` for an unreadable state.
   */
  failures?: string | null;
  /** Throttle settings (used only with `failures`). */
  throttle?: ThrottleOptions;
}

/** With `options.failures`: the state to store for the name (`null`: delete it, the login succeeded). */
export interface ThrottledLogin {
  failures?: string | null;
}

// ---- Breached and blocklisted passwords (issue 13, NIST 800-63B §3.1.1.2) --------------------

/**
 * Checks {@link hashPassword} (and {@link Keygate.resetPassword} / {@link Keygate.changePassword})
 * run on a new password before hashing it; the core decides.
 */
export interface NewPasswordChecks {
  /**
   * Context words the password must not contain (case-insensitive; words under 4 characters
   * are ignored; for an email its local part too), e.g. `["keygate", user.email]`.
   * @throws KeygateError `password_blocklisted`.
   */
  blocklist?: string[];
  /**
   * The count {@link passwordBreachCount} returned for this password; above 0 is refused.
   * @throws KeygateError `password_breached`.
   */
  breachCount?: number;
}

/**
 * How often `password` appears in known breaches, by k-anonymity against a "Pwned Passwords"
 * style range API: the core computes the SHA-1 and only its first 5 hex digits are passed to
 * `fetchRange(prefix)`, which resolves to the range body (`SUFFIX:COUNT` lines) or a `Response`.
 * Padding entries (count 0) are never a hit. Defaults to {@link pwnedPasswordsRange}.
 * @throws KeygateError `breach_check_failed` when `fetchRange` fails, answers non-2xx or not in
 *   the range format — never a silent 0; the caller decides whether to refuse or go on.
 * @example
 * const breachCount = await passwordBreachCount(password);
 * const hash = hashPassword(password, { breachCount, blocklist: ["example-clinic", email] });
 */
export function passwordBreachCount(password: string, fetchRange?: (prefix: string) => Promise<string | Response> | string | Response): Promise<number>;

/** The default `fetchRange`: `GET https://api.pwnedpasswords.com/range/<prefix>` with `Add-Padding: true`. */
export function pwnedPasswordsRange(prefix: string): Promise<string>;
