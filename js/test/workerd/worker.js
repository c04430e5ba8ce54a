// A tiny auth service on keygate, run by test/workerd.test.mjs inside a real workerd. It imports
// the packed package exactly as users write it: `from "keygate"`. State lives in module-level
// Maps (one isolate serves every request of the test).
import {
  Keygate, KeygateError, hashPassword, verifyPassword, needsRehash, generateTotpSecret,
  totpProvisioningUri, totpQrCode, verifyTotp, generateRecoveryCodes,
} from "keygate";

const users = new Map(); // email → user record
const mfaStates = new Map(); // user id → MFA state
const families = new Map(); // family id → refresh family
let kg;

// workerd refuses random values at module scope: the error must say where to move the call.
let moduleScope = null;
try {
  generateTotpSecret();
} catch (e) {
  moduleScope = { code: e.code, message: e.message };
}

const json = (body, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

async function route(req, env) {
  kg ??= new Keygate({
    signingKey: env.SIGNING_KEY, issuer: "keygate-test", refreshGrace: 0, session: { secret: env.SESSION_SECRET },
  });
  const url = new URL(req.url);
  const body = req.method === "POST" ? await req.json() : {};
  switch (`${req.method} ${url.pathname}`) {
    case "GET /.well-known/jwks.json":
      return json(kg.jwks());
    case "GET /module-scope":
      return json({ moduleScope, inHandler: generateTotpSecret().length });
    case "POST /hash":
      return json({ hash: hashPassword(body.password, body.options) });
    case "POST /verify":
      return json({ ok: verifyPassword(body.hash, body.password), rehash: needsRehash(body.hash) });
    case "POST /totp/verify":
      return json({ step: verifyTotp(body.secret, body.code, { lastUsedStep: body.lastUsedStep }) });
    case "POST /register": {
      if (users.has(body.email)) return json({ error: "exists" }, 409);
      const user = { id: crypto.randomUUID(), email: body.email, passwordHash: hashPassword(body.password), roles: ["user"] };
      users.set(body.email, user);
      return json({ id: user.id }, 201);
    }
    case "POST /mfa/setup": {
      const user = users.get(body.email);
      user.pendingSecret = generateTotpSecret();
      const uri = totpProvisioningUri(user.pendingSecret, body.email, "KeygateTest");
      return json({ secret: user.pendingSecret, uri, qr_code: totpQrCode(uri) });
    }
    case "POST /mfa/enable": {
      const user = users.get(body.email);
      const step = verifyTotp(user.pendingSecret, body.code);
      if (step === null) return json({ error: "Invalid code" }, 400);
      const { codes, hashes } = generateRecoveryCodes(4);
      Object.assign(user, { mfaEnabled: true, mfaSecret: user.pendingSecret, pendingSecret: undefined });
      mfaStates.set(user.id, { lastTotpStep: step, recoveryHashes: hashes });
      return json({ success: true, recovery_codes: codes });
    }
    case "POST /login": {
      const user = users.get(body.email) ?? null;
      const r = kg.login(user, body.password);
      if (r.status === "invalid") return json({ error: "Invalid credentials" }, 401);
      if (r.newPasswordHash) user.passwordHash = r.newPasswordHash;
      if (r.status === "mfa_required") return json({ mfa_required: true, mfa_token: r.mfa_token });
      families.set(r.family.familyId, r.family);
      return json(r.tokens);
    }
    case "POST /mfa": {
      const userId = kg.verifyMfaToken(body.mfa_token);
      if (userId === null) return json({ error: "Invalid or expired MFA token" }, 401);
      const user = [...users.values()].find((u) => u.id === userId);
      const r = kg.verifyMfa(body.mfa_token, body.code, user, mfaStates.get(userId));
      mfaStates.set(userId, r.state);
      if (r.status !== "ok") return json({ error: r.error }, 401);
      families.set(r.family.familyId, r.family);
      return json({ ...r.tokens, method: r.method });
    }
    case "POST /refresh": {
      const claims = kg.verifyRefreshToken(body.refresh_token);
      const family = claims && families.get(claims.fam);
      if (!family) return json({ error: "token_invalid" }, 401);
      const r = kg.refresh(body.refresh_token, family);
      if (r.family) families.set(r.family.familyId, r.family);
      return r.status === "ok" ? json(r.tokens) : json({ error: r.error }, 401);
    }
    case "GET /me": {
      const token = (req.headers.get("authorization") ?? "").replace(/^Bearer /, "");
      const claims = kg.verifyAccessToken(token);
      return claims ? json(claims) : json({ error: "Unauthorized" }, 401);
    }
    case "POST /session": {
      const s = kg.createSession(body.userId);
      return new Response(null, { status: 204, headers: { "set-cookie": s.cookie } });
    }
    case "GET /session":
      return json({ session: kg.readSession(req.headers.get("cookie")) });
  }
  return json({ error: "not_found" }, 404);
}

export default {
  async fetch(req, env) {
    try {
      return await route(req, env);
    } catch (e) {
      if (e instanceof KeygateError) return json({ error: e.code, field: e.field ?? null }, 400);
      return json({ error: "internal", message: String(e) }, 500);
    }
  },
};
