// The worker of bench/workerd.mjs: keygate vs jose, HS256 sign and verify, inside a real workerd.
// keygate is imported exactly as users do (`from "keygate"`, the module list of README "workerd and
// Cloudflare Workers"); jose is npm's jose bundled by esbuild into one ES module named "jose".
//
// GET /run?impl=keygate|jose&op=verify|sign&n=N (and impl=keygate&op=argon2: hashPassword at the
// seed's t=3, m=64 MiB, p=4) runs N iterations in one request and answers with
// a checksum. workerd's clocks stand still while JavaScript runs (Spectre mitigation), so the
// client times the requests and subtracts an n=0 request.
import { Keygate, hashPassword } from "keygate";
import { jwtVerify, SignJWT } from "jose";

const LEEWAY = 30; // keygate's default leeway (src/token/validation.rs DEFAULT_LEEWAY_SECS)
const REQUIRED = ["sub", "type", "iat", "exp"]; // keygate's required claims (src/token/decode.rs)
const ROLES = ["admin", "user"];

let kg;
let joseKey; // an HS256 CryptoKey, imported once (outside every loop)

const json = (body, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

/** jose with keygate's checks for an access token: alg, signature, required claims, `type`,
 * `exp`/`nbf` with the leeway, `iat` not in the future, no `aud` (none configured). */
async function joseVerifyAccess(token) {
  try {
    const { payload } = await jwtVerify(token, joseKey, { algorithms: ["HS256"], requiredClaims: REQUIRED, clockTolerance: LEEWAY });
    if (payload.type !== "access" || payload.aud !== undefined) return null;
    if (!Number.isInteger(payload.iat) || payload.iat > Math.floor(Date.now() / 1000) + LEEWAY) return null;
    return payload;
  } catch {
    return null;
  }
}

/** What keygate's createAccessToken writes: {sub, type, roles, iat, exp, jti}, header {alg, typ}. */
function joseSign(now) {
  return new SignJWT({ type: "access", roles: ROLES })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject("user-42").setIssuedAt(now).setExpirationTime(now + 900).setJti(crypto.randomUUID())
    .sign(joseKey);
}

// Checksum of one verify result: so the work cannot be skipped and a wrong answer shows.
const sum = (claims) => (claims === null ? 0 : claims.exp + claims.sub.length + claims.roles.length);

export default {
  async fetch(req, env) {
    kg ??= new Keygate({ secret: env.SECRET });
    joseKey ??= await crypto.subtle.importKey("raw", new TextEncoder().encode(env.SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    const url = new URL(req.url);
    const impl = url.searchParams.get("impl");
    const op = url.searchParams.get("op");
    const n = Number(url.searchParams.get("n") ?? 0);
    const token = env.TOKEN;
    let ok = 0;
    let check = 0;
    switch (`${impl} ${op}`) {
      case "keygate verify":
        for (let i = 0; i < n; i++) {
          const c = kg.verifyAccessToken(token);
          ok += c !== null;
          check += sum(c);
        }
        break;
      case "jose verify":
        for (let i = 0; i < n; i++) {
          const c = await joseVerifyAccess(token);
          ok += c !== null;
          check += sum(c);
        }
        break;
      case "keygate sign": {
        let last;
        for (let i = 0; i < n; i++) {
          last = kg.createAccessToken("user-42", ROLES);
          check += last.length;
        }
        // The last token must verify with jose (and keygate's checks).
        if (n > 0) ok = (await joseVerifyAccess(last)) === null ? 0 : n;
        break;
      }
      case "jose sign": {
        const now = Math.floor(Date.now() / 1000);
        let last;
        for (let i = 0; i < n; i++) {
          last = await joseSign(now);
          check += last.length;
        }
        // The last token must verify with keygate.
        if (n > 0) ok = kg.verifyAccessToken(last) === null ? 0 : n;
        break;
      }
      case "keygate argon2": {
        let last;
        for (let i = 0; i < n; i++) {
          last = hashPassword("correct horse battery staple");
          check += last.length;
        }
        ok = n;
        // The output must be a seed-parameter hash (verified outside the timed requests: n=1 only).
        if (n === 1 && !last.startsWith("$argon2id$v=19$m=65536,t=3,p=4$")) ok = 0;
        break;
      }
      default:
        return json({ error: "unknown impl/op" }, 404);
    }
    return json({ impl, op, n, ok, check });
  },
};
