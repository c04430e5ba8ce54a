// Independent implementations agree with us: jose (JWT both ways, HS256/EdDSA/ES256), otpauth
// (TOTP codes and URIs), zbarimg (our QR PNG decodes back to the provisioning URI).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as jose from "jose";
import * as OTPAuth from "otpauth";
import {
  Keygate, generateSigningKey, generateTotpSecret, generateTotpCode, verifyTotp,
  totpProvisioningUri, totpQrCode, totpQrSvg,
} from "keygate";

const SECRET = "0123456789abcdef0123456789abcdef-interop";
const SESSION = { secret: SECRET };

describe("jose", () => {
  test("jose verifies our HS256 tokens", async () => {
    const kg = new Keygate({ secret: SECRET, issuer: "https://auth.example", audience: "api" });
    const token = kg.createAccessToken("user-1", ["admin"]);
    const { payload, protectedHeader } = await jose.jwtVerify(token, new TextEncoder().encode(SECRET), {
      algorithms: ["HS256"], issuer: "https://auth.example", audience: "api",
    });
    assert.equal(protectedHeader.alg, "HS256");
    assert.equal(payload.sub, "user-1");
    assert.equal(payload.type, "access");
    assert.deepEqual(payload.roles, ["admin"]);
    assert.equal(payload.exp - payload.iat, 900);
  });

  for (const alg of ["EdDSA", "ES256"]) {
    test(`jose verifies our ${alg} tokens through our JWKS`, async () => {
      const kg = new Keygate({ signingKey: generateSigningKey(alg, { kid: `k-${alg}` }), session: SESSION });
      const jwks = kg.jwks();
      assert.equal(jwks.keys.length, 1);
      assert.equal(jwks.keys[0].d, undefined);
      const token = kg.createAccessToken("user-2", ["user"]);
      const { payload, protectedHeader } = await jose.jwtVerify(token, jose.createLocalJWKSet(jwks), { algorithms: [alg] });
      assert.equal(protectedHeader.kid, `k-${alg}`);
      assert.equal(payload.sub, "user-2");
      // A tampered token is refused by jose too.
      await assert.rejects(jose.jwtVerify(token.slice(0, -4) + "AAAA", jose.createLocalJWKSet(jwks)));
    });

    test(`we verify jose's ${alg} tokens with a jose-generated key`, async () => {
      const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
      const jwk = { ...(await jose.exportJWK(privateKey)), alg, kid: "jose" };
      const kg = new Keygate({ signingKey: jwk, session: SESSION });
      const now = Math.floor(Date.now() / 1000);
      const token = await new jose.SignJWT({ type: "access", roles: ["r1"] })
        .setProtectedHeader({ alg, kid: "jose", typ: "JWT" })
        .setSubject("user-3").setIssuedAt(now).setExpirationTime(now + 300).sign(privateKey);
      const claims = kg.verifyAccessToken(token);
      assert.equal(claims?.sub, "user-3");
      assert.deepEqual(claims.roles, ["r1"]);
      // Our tokens from that key verify in jose with the public half it generated.
      const ours = kg.createAccessToken("user-4");
      assert.equal((await jose.jwtVerify(ours, publicKey)).payload.sub, "user-4");
      // jose's refresh-typed token is not an access token for us.
      const refresh = await new jose.SignJWT({ type: "refresh" })
        .setProtectedHeader({ alg, kid: "jose" }).setSubject("user-3").setIssuedAt(now).setExpirationTime(now + 300).sign(privateKey);
      assert.equal(kg.verifyAccessToken(refresh), null);
    });
  }

  test("we verify jose's HS256 tokens; alg confusion and none are refused", async () => {
    const kg = new Keygate({ secret: SECRET });
    const key = new TextEncoder().encode(SECRET);
    const now = Math.floor(Date.now() / 1000);
    const good = await new jose.SignJWT({ type: "access", roles: [] })
      .setProtectedHeader({ alg: "HS256" }).setSubject("u").setIssuedAt(now).setExpirationTime(now + 60).sign(key);
    assert.equal(kg.verifyAccessToken(good)?.sub, "u");
    const hs512 = await new jose.SignJWT({ type: "access" })
      .setProtectedHeader({ alg: "HS512" }).setSubject("u").setIssuedAt(now).setExpirationTime(now + 60).sign(key);
    assert.throws(() => kg.verifyToken(hs512, "access"), { code: "token_algorithm_not_allowed" });
    const unsigned = new jose.UnsecuredJWT({ type: "access", sub: "u", iat: now, exp: now + 60 }).encode();
    assert.equal(kg.verifyAccessToken(unsigned), null);
    const expired = await new jose.SignJWT({ type: "access" })
      .setProtectedHeader({ alg: "HS256" }).setSubject("u").setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(key);
    assert.throws(() => kg.verifyToken(expired, "access"), { code: "token_expired", claim: "exp" });
  });
});

describe("otpauth", () => {
  test("codes agree in both directions, with every algorithm", () => {
    for (const algorithm of ["SHA1", "SHA256", "SHA512"]) {
      for (const digits of [6, 8]) {
        const secret = generateTotpSecret();
        const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), algorithm, digits, period: 30 });
        for (const t of [0, 59, 1_111_111_109, 1_700_000_000, 2_000_000_000]) {
          const theirs = totp.generate({ timestamp: t * 1000 });
          const now = new Date(t * 1000);
          assert.equal(generateTotpCode(secret, { now, algorithm, digits }), theirs);
          assert.equal(verifyTotp(secret, theirs, { now, algorithm, digits }), Math.floor(t / 30));
        }
      }
    }
  });

  test("otpauth reads our provisioning URI", () => {
    const secret = generateTotpSecret();
    const uri = totpProvisioningUri(secret, "alice@example.com", "My App", { digits: 8, period: 60, algorithm: "SHA256" });
    const parsed = OTPAuth.URI.parse(uri);
    assert.equal(parsed.secret.base32, secret);
    assert.equal(parsed.issuer, "My App");
    assert.equal(parsed.label, "alice@example.com");
    assert.equal(parsed.digits, 8);
    assert.equal(parsed.period, 60);
    assert.equal(parsed.algorithm, "SHA256");
    const code = parsed.generate({ timestamp: 1_700_000_000_000 });
    assert.equal(verifyTotp(secret, code, { now: new Date(1_700_000_000_000), digits: 8, period: 60, algorithm: "SHA256" }),
      Math.floor(1_700_000_000 / 60));
  });
});

describe("QR code", () => {
  test("zbarimg decodes our PNG and SVG back to the URI", () => {
    const dir = mkdtempSync(join(tmpdir(), "keygate-qr-"));
    try {
      const uri = totpProvisioningUri(generateTotpSecret(), "alice+test@example.com", "Acme Corp");
      const png = join(dir, "qr.png");
      writeFileSync(png, Buffer.from(totpQrCode(uri), "base64"));
      const r = spawnSync("zbarimg", ["--raw", "-q", png], { encoding: "utf8" });
      assert.equal(r.error, undefined, `zbarimg must be installed (make setup): ${r.error}`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), uri);
      // The SVG draws the same modules: check it is well-formed and square.
      const svg = totpQrSvg(uri);
      const [, w, h] = svg.match(/width="(\d+)" height="(\d+)"/);
      assert.equal(w, h);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
