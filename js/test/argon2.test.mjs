// The npm module's Argon2id (simd128 BlaMka in wasm) against the `argon2` crate, bit for bit:
// @node-rs/argon2 is the RustCrypto `argon2` crate compiled natively, so every tag below is the
// crate's output. Random passwords, salts, t 1–4, m 8·p…4096 KiB, p 1–8, tag lengths 16–64
// (the shortest a PHC string may carry here), versions 19 and 16, from a seeded generator
// (the seed is in every failure message). Also: the simd128 requirement and its clear error.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as reference from "@node-rs/argon2";
import { KeygateError, hashPassword, verifyPassword } from "keygate";
import { requireSimd128, SIMD_RUNTIMES } from "../keygate/simd.js";

const SEED = Number(process.env.ARGON2_SEED ?? 0x6b657967);
const CASES = 48;

/** xorshift32: small, seedable, good enough to pick test inputs. */
function rng(seed) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s;
  };
  return {
    int: (lo, hi) => lo + (next() % (hi - lo + 1)),
    bytes: (n) => Uint8Array.from({ length: n }, () => next() & 0xff),
  };
}

// Passwords as JS strings (the API's type): ASCII, Latin-1, BMP and astral characters.
const ALPHABET = ["a", "Z", "7", " ", "$", "é", "ß", "✓", "中", "😀", "\u0000"];
const password = (r, min) => Array.from({ length: r.int(min, 64) }, () => ALPHABET[r.int(0, ALPHABET.length - 1)]).join("");
const b64 = (u8) => Buffer.from(u8).toString("base64").replace(/=+$/, "");

function costs(r) {
  const p = r.int(1, 8);
  return { t: r.int(1, 4), m: r.int(8 * p, 4096), p };
}

const crate = (pw, salt, { t, m, p }, outputLen, version = 1) =>
  reference.hashRawSync(pw, { algorithm: 2, version, timeCost: t, memoryCost: m, parallelism: p, outputLen, salt });

describe("Argon2id in wasm matches the argon2 crate", () => {
  test("stored hashes made by the crate verify bit for bit", () => {
    const r = rng(SEED);
    for (let i = 0; i < CASES; i++) {
      const c = costs(r);
      const pw = password(r, 0);
      const salt = r.bytes(r.int(8, 48));
      const len = r.int(16, 64);
      const v13 = r.int(0, 4) !== 0;
      const tag = crate(pw, salt, c, len, v13 ? 1 : 0);
      const phc = `$argon2id$${v13 ? "v=19$" : ""}m=${c.m},t=${c.t},p=${c.p}$${b64(salt)}$${b64(tag)}`;
      const what = `seed ${SEED} case ${i}: ${phc}`;
      assert.equal(verifyPassword(phc, pw), true, what);
      // One flipped bit anywhere in the tag fails: the whole tag is compared.
      const bad = Uint8Array.from(tag);
      bad[r.int(0, len - 1)] ^= 1 << r.int(0, 7);
      assert.equal(verifyPassword(phc.replace(b64(tag), b64(bad)), pw), false, what);
      if (i % 4 === 0) assert.equal(verifyPassword(phc, `${pw}x`), false, what);
    }
  });

  test("hashPassword output equals the crate's tag for the same salt", () => {
    const r = rng(SEED ^ 0x5a5a5a5a);
    for (let i = 0; i < CASES / 2; i++) {
      const c = costs(r);
      const pw = password(r, 8);
      const phc = hashPassword(pw, { timeCost: c.t, memoryCost: c.m, parallelism: c.p });
      const [, alg, v, params, salt, tag] = phc.split("$");
      assert.deepEqual([alg, v, params], ["argon2id", "v=19", `m=${c.m},t=${c.t},p=${c.p}`]);
      const expected = crate(pw, Buffer.from(salt, "base64"), c, 32);
      assert.equal(tag, b64(expected), `seed ${SEED} case ${i}: ${phc}`);
    }
  });

  test("the seed's parameters (t=3, m=64 MiB, p=4) match the crate", () => {
    const pw = "correct horse battery staple";
    const phc = hashPassword(pw);
    const [, , , params, salt, tag] = phc.split("$");
    assert.equal(params, "m=65536,t=3,p=4");
    assert.equal(tag, b64(crate(pw, Buffer.from(salt, "base64"), { t: 3, m: 65536, p: 4 }, 32)));
  });
});

describe("simd128 requirement", () => {
  test("the module uses simd128 and the runtime validates it", () => {
    const wasm = readFileSync(new URL("../keygate/keygate_js_bg.wasm", import.meta.url));
    assert.equal(WebAssembly.validate(wasm), true);
    requireSimd128(); // Node 20 has simd128: no throw
  });

  test("a runtime without simd128 gets KeygateError wasm_simd_unsupported", () => {
    for (const wasm of [null, {}, { validate: () => false }, { validate: () => { throw new Error("x"); } }]) {
      assert.throws(() => requireSimd128(wasm), (e) => {
        assert.ok(e instanceof KeygateError);
        assert.equal(e.code, "wasm_simd_unsupported");
        assert.match(e.message, /SIMD \(simd128\)/);
        assert.ok(e.message.includes(SIMD_RUNTIMES));
        return true;
      });
    }
  });

  test("the Node entry refuses to load without simd128, naming the requirement", () => {
    // A child Node whose WebAssembly.validate rejects SIMD (as Safari < 16.4 would), then
    // imports the package's Node entry.
    const entry = new URL("../node.js", import.meta.url).href;
    const script = `
      const validate = WebAssembly.validate;
      WebAssembly.validate = (bytes) => !new Uint8Array(bytes).includes(0xfd) && validate(bytes);
      try { await import(${JSON.stringify(entry)}); console.log("loaded"); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    const out = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8", cwd: fileURLToPath(new URL("..", import.meta.url)),
    });
    assert.equal(out.status, 0, out.stderr);
    const e = JSON.parse(out.stdout.trim());
    assert.equal(e.name, "KeygateError");
    assert.equal(e.code, "wasm_simd_unsupported");
    assert.match(e.message, /simd128/);
  });
});
