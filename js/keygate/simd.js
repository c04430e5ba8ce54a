// keygate's WebAssembly module uses SIMD (simd128) for Argon2id. Runtimes without it (Safari
// before 16.4, very old Node/Chrome/Firefox) would fail to compile the module with a cryptic
// error; the Node and browser entries call this first so the failure names the requirement.
// workerd / Cloudflare Workers compile the module before any JavaScript runs, and always have
// simd128, so workerd.js does not need it.
import { KeygateError } from "./api.js";

// The smallest module that uses a v128 instruction: (func (result v128) i32.const 0
// i8x16.splat i8x16.popcnt) — wasm-feature-detect's simd probe.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** The runtimes known to run keygate (all have WebAssembly simd128). */
export const SIMD_RUNTIMES =
  "Node >= 20 (the package's floor; simd128 since 16.4), Deno >= 1.9, Bun, Cloudflare Workers / workerd, Chrome / Edge >= 91, Firefox >= 89, Safari >= 16.4";

/**
 * Throws KeygateError `wasm_simd_unsupported` unless `wasm` (default: the global WebAssembly)
 * validates a simd128 module.
 */
export function requireSimd128(wasm = globalThis.WebAssembly) {
  let ok = false;
  try {
    ok = typeof wasm?.validate === "function" && wasm.validate(SIMD_PROBE) === true;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new KeygateError(
      "wasm_simd_unsupported",
      `keygate needs WebAssembly SIMD (simd128), which this runtime does not support; it runs on ${SIMD_RUNTIMES}`,
    );
  }
}
