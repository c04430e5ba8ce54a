// keygate vs npm peers in one Node process: several rounds, medians, ratios.
// Run with `make bench-js` (builds first). Not part of the tests.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { createSecretKey } from "node:crypto";
import * as jose from "jose";
import jsonwebtoken from "jsonwebtoken";
import * as OTPAuth from "otpauth";
import { argon2id } from "hash-wasm";
import argon2 from "argon2";
import * as nodeRsArgon2 from "@node-rs/argon2";
import { Keygate, hashPassword, verifyTotp, generateTotpSecret } from "keygate";

const ROUNDS = Number(process.env.ROUNDS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Interleaved rounds: each round runs `n` ops of every case back to back (order reversed every
 * other round, after one warm-up round), so drift hits all cases alike. Returns the median µs/op
 * per case name. `fn` may return a promise (awaited per op).
 */
async function interleaved(n, cases) {
  const per = Object.fromEntries(cases.map(([name]) => [name, []]));
  for (let r = 0; r <= ROUNDS; r++) {
    for (const [name, fn] of r % 2 ? [...cases].reverse() : cases) {
      const t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const v = fn(i);
        if (v instanceof Promise) await v;
      }
      const us = Number(process.hrtime.bigint() - t) / 1000 / n;
      if (r > 0) per[name].push(us);
    }
  }
  return Object.fromEntries(Object.entries(per).map(([k, xs]) => [k, median(xs)]));
}

const rows = [];
function row(group, name, us, base) {
  rows.push({ group, name, us, ratio: base === undefined ? "" : (us / base).toFixed(2) });
}
/** Rows for one group: the first case is keygate, the base of the ratios. */
function group(title, medians) {
  const [base, ...peers] = Object.keys(medians);
  row(title, base, medians[base]);
  for (const p of peers) row(title, p, medians[p], medians[base]);
}

// --- Argon2id at the seed's parameters (t=3, m=64 MiB, p=4) ------------------------------------
const PW = "correct horse battery staple";
const salt = new Uint8Array(16).fill(7);
group("Argon2id t=3 m=64MiB p=4 (hash)", await interleaved(1, [
  ["keygate (wasm simd128)", () => hashPassword(PW)],
  ["hash-wasm (wasm)", () =>
    argon2id({ password: PW, salt, iterations: 3, memorySize: 65536, parallelism: 4, hashLength: 32, outputType: "encoded" })],
  ["argon2 (native, threads)", () => argon2.hash(PW, { type: argon2.argon2id, timeCost: 3, memoryCost: 65536, parallelism: 4 })],
  ["@node-rs/argon2 (native)", () => nodeRsArgon2.hashSync(PW, { algorithm: 2, timeCost: 3, memoryCost: 65536, parallelism: 4 })],
]));

// --- HS256 sign / verify -------------------------------------------------------------------------
const SECRET = "bench-secret-0123456789abcdef-0123456789";
const kg = new Keygate({ secret: SECRET });
const now = Math.floor(Date.now() / 1000);
const claims = { sub: "user-42", type: "access", roles: ["admin", "user"], iat: now, exp: now + 900 };
// jose gets a CryptoKey imported once (its fastest path), as the issue asks.
const joseKey = await crypto.subtle.importKey("raw", new TextEncoder().encode(SECRET),
  { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
const keyObject = createSecretKey(Buffer.from(SECRET));
const N = 5000;

group("HS256 sign", await interleaved(N, [
  ["keygate", () => kg.createAccessToken("user-42", ["admin", "user"])],
  ["jose (CryptoKey)", () => new jose.SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(joseKey)],
  ["jsonwebtoken (KeyObject)", () => jsonwebtoken.sign(claims, keyObject, { algorithm: "HS256" })],
]));

const token = kg.createAccessToken("user-42", ["admin", "user"]);
if (kg.verifyAccessToken(token)?.sub !== "user-42") throw new Error("bench token does not verify");
group("HS256 verify", await interleaved(N, [
  ["keygate", () => kg.verifyAccessToken(token)],
  ["jose (CryptoKey)", () => jose.jwtVerify(token, joseKey, { algorithms: ["HS256"] })],
  ["jsonwebtoken (KeyObject)", () => jsonwebtoken.verify(token, keyObject, { algorithms: ["HS256"] })],
]));

// --- TOTP verify ----------------------------------------------------------------------------------
const secret = generateTotpSecret();
const otp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) });
const at = new Date();
const code = otp.generate({ timestamp: at.getTime() });
if (verifyTotp(secret, code, { now: at }) === null) throw new Error("bench code does not verify");
group("TOTP verify (±1 step)", await interleaved(N, [
  ["keygate", () => verifyTotp(secret, code, { now: at })],
  ["otpauth", () => otp.validate({ token: code, timestamp: at.getTime(), window: 1 })],
]));

// --- Size -----------------------------------------------------------------------------------------
const wasm = readFileSync(new URL("../keygate/keygate_js_bg.wasm", import.meta.url));
const glue = readFileSync(new URL("../keygate/keygate_js.js", import.meta.url));

const fmt = (us) => (us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : `${us.toFixed(1)} µs`);
console.log(`keygate bench — Node ${process.version}, ${ROUNDS} interleaved rounds (medians), ratio = peer time / keygate time\n`);
console.log("| operation | implementation | time/op | peer ÷ keygate |");
console.log("| --- | --- | ---: | ---: |");
for (const r of rows) console.log(`| ${r.group} | ${r.name} | ${fmt(r.us)} | ${r.ratio} |`);
console.log(`\nmodule .wasm: ${wasm.length} bytes raw, ${gzipSync(wasm, { level: 9 }).length} bytes gzip -9` +
  ` (${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB); JS glue ${glue.length} bytes`);
