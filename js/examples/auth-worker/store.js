// One account's SQLite tables, inside that account's own Durable Object (one object per
// normalised email: see worker.js). keygate keeps no state of its own: the user record, its MFA
// state (last TOTP step, recovery-code hashes, pending-token history), its session state
// (epoch + revoked sessions) and its refresh-token families live here, and go in and out of
// keygate as plain objects.

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id                 TEXT PRIMARY KEY,
  email              TEXT NOT NULL UNIQUE,
  password_hash      TEXT NOT NULL,
  roles              TEXT NOT NULL,            -- JSON array
  mfa_enabled        INTEGER NOT NULL DEFAULT 0,
  mfa_secret         TEXT,
  pending_mfa_secret TEXT,                     -- enrolment started, not yet confirmed
  pending_mfa_at     INTEGER,                  -- when (ms); a pending secret expires
  mfa_state          TEXT,                     -- JSON: keygate's MFA state object
  session_state      TEXT,                     -- JSON: keygate's session state object
  created_at         INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_families (
  family_id TEXT PRIMARY KEY,
  user_id   TEXT NOT NULL,
  family    TEXT NOT NULL                      -- JSON: keygate's family object
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

function userFromRow(row) {
  if (!row) return null;
  return {
    id: row.id,
    email: row.email,
    passwordHash: row.password_hash,
    roles: JSON.parse(row.roles),
    mfaEnabled: row.mfa_enabled === 1,
    mfaSecret: row.mfa_secret ?? undefined,
    pendingMfaSecret: row.pending_mfa_secret ?? undefined,
    pendingMfaAt: row.pending_mfa_at ?? undefined,
    mfaState: row.mfa_state ? JSON.parse(row.mfa_state) : undefined,
    sessionState: row.session_state ? JSON.parse(row.session_state) : {},
    createdAt: row.created_at,
  };
}

export class Store {
  #sql;

  constructor(sql) {
    this.#sql = sql;
    this.#sql.exec(SCHEMA);
  }

  #first(query, ...args) {
    const rows = this.#sql.exec(query, ...args).toArray();
    return rows.length > 0 ? rows[0] : null;
  }

  userByEmail(email) {
    return userFromRow(this.#first("SELECT * FROM users WHERE email = ?", email));
  }

  userById(id) {
    return userFromRow(this.#first("SELECT * FROM users WHERE id = ?", id));
  }

  /** false when the email is taken. */
  createUser({ id, email, passwordHash, roles, now }) {
    if (this.#first("SELECT 1 AS x FROM users WHERE email = ?", email)) return false;
    this.#sql.exec(
      "INSERT INTO users (id, email, password_hash, roles, created_at) VALUES (?, ?, ?, ?, ?)",
      id, email, passwordHash, JSON.stringify(roles), now,
    );
    return true;
  }

  setPasswordHash(id, hash) {
    this.#sql.exec("UPDATE users SET password_hash = ? WHERE id = ?", hash, id);
  }

  /** A new password with everything it ends (keygate's resetPassword / changePassword result). */
  setPasswordChanged(id, { passwordHash, sessionState, mfaState }) {
    this.#sql.exec(
      "UPDATE users SET password_hash = ?, session_state = ?, mfa_state = COALESCE(?, mfa_state) WHERE id = ?",
      passwordHash, JSON.stringify(sessionState), mfaState ? JSON.stringify(mfaState) : null, id,
    );
    this.revokeAllFamilies(id);
  }

  setPendingMfaSecret(id, secret, at) {
    this.#sql.exec("UPDATE users SET pending_mfa_secret = ?, pending_mfa_at = ? WHERE id = ?", secret, at, id);
  }

  enableMfa(id, secret, state) {
    this.#sql.exec(
      "UPDATE users SET mfa_enabled = 1, mfa_secret = ?, pending_mfa_secret = NULL, pending_mfa_at = NULL, mfa_state = ? WHERE id = ?",
      secret, JSON.stringify(state), id,
    );
  }

  /** MFA off; the state keeps its pending-token history (a used pending token stays used). */
  disableMfa(id, state) {
    this.#sql.exec(
      "UPDATE users SET mfa_enabled = 0, mfa_secret = NULL, pending_mfa_secret = NULL, pending_mfa_at = NULL, mfa_state = ? WHERE id = ?",
      JSON.stringify({ ...state, recoveryHashes: [] }), id,
    );
  }

  setMfaState(id, state) {
    this.#sql.exec("UPDATE users SET mfa_state = ? WHERE id = ?", JSON.stringify(state), id);
  }

  setSessionState(id, state) {
    this.#sql.exec("UPDATE users SET session_state = ? WHERE id = ?", JSON.stringify(state), id);
  }

  family(familyId) {
    const row = this.#first("SELECT family FROM refresh_families WHERE family_id = ?", familyId);
    return row ? JSON.parse(row.family) : null;
  }

  putFamily(family) {
    this.#sql.exec(
      "INSERT INTO refresh_families (family_id, user_id, family) VALUES (?, ?, ?) " +
        "ON CONFLICT (family_id) DO UPDATE SET family = excluded.family",
      family.familyId, family.userId, JSON.stringify(family),
    );
  }

  revokeAllFamilies(userId) {
    for (const row of this.#sql.exec("SELECT family FROM refresh_families WHERE user_id = ?", userId).toArray()) {
      this.putFamily({ ...JSON.parse(row.family), revoked: true });
    }
  }

  meta(key) {
    return this.#first("SELECT value FROM meta WHERE key = ?", key)?.value ?? null;
  }

  setMeta(key, value) {
    this.#sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key, value,
    );
  }

  deleteMeta(key) {
    this.#sql.exec("DELETE FROM meta WHERE key = ?", key);
  }
}
