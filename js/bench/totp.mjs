// Where a TOTP verify's time goes (issue 12): the JS layer, the JS→wasm crossing with two strings,
// the base32 secret decoding and the HMACs. Interleaved rounds, medians, one Node process.
// Run with `cd js && node bench/totp.mjs` after `make build-js`. Not part of the tests.
import * as OTPAuth from "otpauth";
import * as raw from "../keygate/keygate_js.js";
import { generateTotpCode, generateTotpSecret, verifyTotp } from "keygate";

const ROUNDS = Number(process.env.ROUNDS ?? 9);
const N = Number(process.env.N ?? 20000);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const secret = generateTotpSecret();
const at = new Date();
const nowSecs = Math.floor(at.getTime() / 1000);
const code = generateTotpCode(secret, { now: at });
const wrong = code === "000000" ? "000001" : "000000";
const otp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) });
if (verifyTotp(secret, code, { now: at }) === null) throw new Error("code does not verify");

const cases = [
  ["verifyTotp (public API)", () => verifyTotp(secret, code, { now: at })],
  ["raw.verifyTotp (no JS argument checks)", () => raw.verifyTotp(secret, code, nowSecs, undefined, undefined)],
  ["raw.verifyTotp, wrong code (same work, returns undefined)", () => raw.verifyTotp(secret, wrong, nowSecs, undefined, undefined)],
  ["raw.verifyTotp, code of 5 digits (decode only, no HMAC)", () => raw.verifyTotp(secret, "12345", nowSecs, undefined, undefined)],
  ["raw.generateTotpCode (decode + 1 HMAC + string back)", () => raw.generateTotpCode(secret, nowSecs, undefined)],
  ["otpauth validate (window 1)", () => otp.validate({ token: code, timestamp: at.getTime(), window: 1 })],
];
for (const extra of (globalThis.__TOTP_CASES__ ?? [])) cases.push(extra);

const per = Object.fromEntries(cases.map(([n]) => [n, []]));
for (let r = 0; r <= ROUNDS; r++) {
  for (const [name, fn] of r % 2 ? [...cases].reverse() : cases) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn();
    const us = Number(process.hrtime.bigint() - t) / 1000 / N;
    if (r > 0) per[name].push(us);
  }
}
console.log(`TOTP verify breakdown — Node ${process.version}, ${ROUNDS} interleaved rounds × ${N} ops, medians\n`);
console.log("| call | µs/op |");
console.log("| --- | ---: |");
for (const [name] of cases) console.log(`| ${name} | ${median(per[name]).toFixed(2)} |`);
