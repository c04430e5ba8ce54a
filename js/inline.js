// Deno, Vercel edge-light, browsers and bundlers: the .wasm bytes are part of the JavaScript
// (keygate/keygate_js_bg.wasm.js, base64), so nothing is read from disk or fetched at run time:
// Deno needs no --allow-read, esbuild / bun build / Vite (build and dev server) need no loader
// or asset config, and there is no top-level await. Compiled synchronously, so
// `import { … } from "keygate"` is ready with no init() call.
import base64 from "./keygate/keygate_js_bg.wasm.js";
import { initSync } from "./keygate/keygate_js.js";
import { requireSimd128 } from "./keygate/simd.js";

function decode(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

requireSimd128(); // a clear KeygateError (wasm_simd_unsupported), e.g. on Safari before 16.4
initSync({ module: decode(base64) });

export * from "./keygate/api.js";
