// TypeScript, compiled as CommonJS (module: node16, package type commonjs) and run by Node
// with require(esm) switched off, as on Node 20.0–20.18.
import { Keygate, KeygateError, hashPassword, verifyPassword, verifyTotp, generateTotpCode } from "keygate";

declare const process: { argv: string[] }; // no @types/node needed

function check(e: unknown): string {
  if (e instanceof KeygateError) {
    // @ts-expect-error: a misspelt code is not one of KeygateErrorCode
    if (e.code === "token_expird") return "typo";
    if (e.code === "config_invalid") return `${e.code}:${e.field}`;
  }
  return String(e);
}

const input = JSON.parse(process.argv[2]) as { secret: string; totpSecret: string; totpCode: string };
const password = "correct horse battery staple";
const hash: string = hashPassword(password, { timeCost: 1, memoryCost: 256, parallelism: 1 });
const kg = new Keygate({ secret: input.secret, issuer: "runtime-test" });
const tokens = kg.issueTokens({ id: "u1", roles: ["admin"] });
let error: string | null = null;
try {
  new Keygate({ secret: "too short" });
} catch (e) {
  error = check(e);
}
const made = new KeygateError("token_expired", "made by hand", { claim: "exp" });
console.log(JSON.stringify({
  hash,
  ok: verifyPassword(hash, password),
  wrong: verifyPassword(hash, "wrong password"),
  step: verifyTotp(input.totpSecret, input.totpCode),
  code: generateTotpCode(input.totpSecret),
  token: tokens.access_token,
  sub: kg.verifyAccessToken(tokens.access_token)?.sub ?? null,
  missing: kg.verifyAccessToken(null) ?? "null",
  error,
  made: `${made.name}:${made.code}:${made.claim}:${made instanceof Error}`,
}));
