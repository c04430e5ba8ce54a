// The one small program every runtime and bundler runs (js/test/runtimes.test.mjs checks its
// answer with jose and otpauth): hash and verify a password, check an otpauth TOTP code,
// issue an access token, read a missing one, and refuse a bad config with a KeygateError.
import { Keygate, KeygateError, generateTotpCode, hashPassword, verifyPassword, verifyTotp } from "keygate";

export function program({ secret, totpSecret, totpCode }) {
  const password = "correct horse battery staple";
  const hash = hashPassword(password, { timeCost: 1, memoryCost: 256, parallelism: 1 });
  const kg = new Keygate({ secret, issuer: "runtime-test" });
  const tokens = kg.issueTokens({ id: "u1", roles: ["admin"] });
  let error = null;
  try {
    new Keygate({ secret: "too short" });
  } catch (e) {
    error = e instanceof KeygateError ? `${e.code}:${e.field}` : String(e);
  }
  return {
    hash,
    ok: verifyPassword(hash, password),
    wrong: verifyPassword(hash, "wrong password"),
    step: verifyTotp(totpSecret, totpCode),
    code: generateTotpCode(totpSecret),
    token: tokens.access_token,
    sub: kg.verifyAccessToken(tokens.access_token)?.sub ?? null,
    missing: kg.verifyAccessToken(undefined, {}) ?? "null",
    error,
  };
}
