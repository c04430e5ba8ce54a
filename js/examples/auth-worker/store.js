// The Durable Object's SQLite tables. keygate keeps no state of its own: the user record, the
// per-user MFA state (last TOTP step, recovery-code hashes, attempts on the pending MFA token)
// and every refresh-token family live here, and go in and out of keygate as plain objects.

const SCHEMA = `
CREATE TABLE IF NOT EXISTS users (
  id                 TEXT PRIMARY KEY,
  email              TEXT NOT NULL UNIQUE,
  password_hash      TEXT NOT NULL,
  roles              TEXT NOT NULL,            -- JSON array
  mfa_enabled        INTEGER NOT NULL DEFAULT 0,
  mfa_secret         TEXT,
  pending_mfa_secret TEXT,                     -- enrolment started, not yet confirmed
  mfa_state          TEXT,                     -- JSON: keygate's MFA state object
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
    mfaState: row.mfa_state ? JSON.parse(row.mfa_state) : undefined,
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

  countUsers() {
    return this.#first("SELECT COUNT(*) AS n FROM users").n;
  }

  setPasswordHash(id, hash) {
    this.#sql.exec("UPDATE users SET password_hash = ? WHERE id = ?", hash, id);
  }

  setPendingMfaSecret(id, secret) {
    this.#sql.exec("UPDATE users SET pending_mfa_secret = ? WHERE id = ?", secret, id);
  }

  enableMfa(id, secret, state) {
    this.#sql.exec(
      "UPDATE users SET mfa_enabled = 1, mfa_secret = ?, pending_mfa_secret = NULL, mfa_state = ? WHERE id = ?",
      secret, JSON.stringify(state), id,
    );
  }

  setMfaState(id, state) {
    this.#sql.exec("UPDATE users SET mfa_state = ? WHERE id = ?", JSON.stringify(state), id);
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

  meta(key) {
    return this.#first("SELECT value FROM meta WHERE key = ?", key)?.value ?? null;
  }

  setMeta(key, value) {
    this.#sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key, value,
    );
  }
}
