// Signing-key rotation (issue 9): `signingKeys: [current, ...previous]`, checked against jose as
// the independent signer and verifier.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import * as jose from "jose";
import { Keygate } from "keygate";

const SESSION = { secret: "0123456789abcdef0123456789abcdef-rotation" };

async function joseKey(alg, kid) {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), alg, kid };
  const { d, ...pub } = jwk;
  return { privateKey, publicKey, jwk, pub };
}

async function joseToken(key, alg, kid, sub = "u") {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({ type: "access", roles: ["r"] })
    .setProtectedHeader({ alg, kid, typ: "JWT" })
    .setSubject(sub).setIssuedAt(now).setExpirationTime(now + 300).sign(key);
}

const kidOf = (t) => jose.decodeProtectedHeader(t).kid;

describe("signingKeys", () => {
  for (const alg of ["EdDSA", "ES256"]) {
    test(`${alg}: old-key tokens verify, new tokens carry the new kid, retired key refused`, async () => {
      const old = await joseKey(alg, "old");
      const neu = await joseKey(alg, "new");
      const before = new Keygate({ signingKeys: [old.jwk], session: SESSION });
      const oursOld = before.createAccessToken("user-1", ["r"]);
      const theirsOld = await joseToken(old.privateKey, alg, "old");
      assert.equal(kidOf(oursOld), "old");

      // Rotated: the new key first, the old one by its public half only.
      const during = new Keygate({ signingKeys: [neu.jwk, old.pub], session: SESSION });
      const fresh = during.createAccessToken("user-2", ["r"]);
      assert.equal(kidOf(fresh), "new");
      for (const t of [oursOld, theirsOld, fresh]) assert.ok(during.verifyAccessToken(t), kidOf(t));
      // The published set: both public halves, current first, nothing private; jose verifies
      // every token against it.
      const jwks = during.jwks();
      assert.deepEqual(jwks.keys.map((k) => k.kid), ["new", "old"]);
      assert.ok(jwks.keys.every((k) => k.d === undefined && k.k === undefined));
      const set = jose.createLocalJWKSet(jwks);
      assert.equal((await jose.jwtVerify(fresh, set, { algorithms: [alg] })).payload.sub, "user-2");
      assert.equal((await jose.jwtVerify(oursOld, set, { algorithms: [alg] })).payload.sub, "user-1");
      // jose's independent public key for the new one checks our new tokens.
      assert.equal((await jose.jwtVerify(fresh, neu.publicKey)).payload.sub, "user-2");

      // Retired: the old key's tokens are refused, by us and by jose on the new JWKS.
      const after = new Keygate({ signingKeys: [neu.jwk], session: SESSION });
      for (const t of [oursOld, theirsOld]) {
        assert.equal(after.verifyAccessToken(t), null);
        assert.throws(() => after.verifyToken(t, "access"), { code: "token_unknown_key" });
      }
      assert.ok(after.verifyAccessToken(fresh));
      await assert.rejects(jose.jwtVerify(oursOld, jose.createLocalJWKSet(after.jwks())));
    });
  }

  test("HMAC rotation with oct JWKs; the secret is never published", async () => {
    const oct = (kid) => ({ kty: "oct", alg: "HS256", kid, k: jose.base64url.encode(crypto.getRandomValues(new Uint8Array(32))) });
    const [old, neu] = [oct("h1"), oct("h2")];
    const theirsOld = await joseToken(jose.base64url.decode(old.k), "HS256", "h1");
    const during = new Keygate({ signingKeys: [neu, old], session: SESSION });
    assert.deepEqual(during.jwks(), { keys: [] });
    assert.ok(during.verifyAccessToken(theirsOld));
    const fresh = during.createAccessToken("u");
    assert.equal(kidOf(fresh), "h2");
    assert.equal((await jose.jwtVerify(fresh, jose.base64url.decode(neu.k))).payload.sub, "u");
    const after = new Keygate({ signingKeys: [neu], session: SESSION });
    assert.throws(() => after.verifyToken(theirsOld, "access"), { code: "token_unknown_key" });
  });

  test("oct + EdDSA mixed: both verify, only EdDSA is published, keys stay pinned", async () => {
    const ed = await joseKey("EdDSA", "ed");
    const octSecret = crypto.getRandomValues(new Uint8Array(32));
    const oct = { kty: "oct", alg: "HS256", kid: "hs", k: jose.base64url.encode(octSecret) };
    const kg = new Keygate({ signingKeys: [ed.jwk, oct], session: SESSION });
    assert.deepEqual(kg.jwks().keys.map((k) => [k.kid, k.kty]), [["ed", "OKP"]]);
    assert.ok(kg.verifyAccessToken(await joseToken(octSecret, "HS256", "hs")));
    assert.ok(kg.verifyAccessToken(await joseToken(ed.privateKey, "EdDSA", "ed")));
    // An HS256 token naming the EdDSA key's kid (its public x as the secret) is refused.
    const confused = await joseToken(new TextEncoder().encode(ed.pub.x), "HS256", "ed");
    assert.throws(() => kg.verifyToken(confused, "access"), { code: "token_algorithm_not_allowed" });
  });

  test("bad signingKeys are refused naming signingKeys[i]", async () => {
    const a = (await joseKey("EdDSA", "a")).jwk;
    const b = (await joseKey("EdDSA", "b")).jwk;
    const field = (config) => {
      try {
        new Keygate({ session: SESSION, ...config });
      } catch (e) {
        assert.equal(e.code, "config_invalid");
        return e.field;
      }
      assert.fail(`accepted ${JSON.stringify(Object.keys(config))}`);
    };
    assert.equal(field({ signingKeys: [a, b, { ...b, kid: "a" }] }), "signingKeys[2].kid");
    assert.equal(field({ signingKeys: [a, { ...b, kid: undefined }] }), "signingKeys[1].kid");
    assert.equal(field({ signingKeys: [] }), "signingKeys");
    assert.equal(field({ signingKeys: a }), "signingKeys");
    assert.equal(field({ signingKeys: [a, 7] }), "signingKeys[1]");
    assert.equal(field({ signingKeys: [{ ...a, d: undefined }] }), "signingKeys[0].d");
    assert.equal(field({ signingKeys: [a, { ...b, x: a.x }] }), "signingKeys[1].x");
    assert.equal(field({ signingKeys: [a], secret: SESSION.secret }), "signingKeys");
    assert.equal(field({ signingKeys: [a], signingKey: a }), "signingKeys");
    assert.equal(field({ signingKeys: [a], keyId: "x" }), "keyId");
    // JSON text entries work as objects do; `signingKey` and `secret` keep working.
    assert.ok(new Keygate({ signingKeys: [JSON.stringify(a)], session: SESSION }));
    assert.ok(new Keygate({ signingKey: a, session: SESSION }).jwks().keys.length === 1);
    assert.ok(new Keygate({ secret: SESSION.secret }));
  });
});
