// Browsers and other ESM runtimes: fetch and instantiate the .wasm next to the glue before the
// module finishes loading (top-level await), so no init() call is needed.
import init from "./keygate/keygate_js.js";
import { requireSimd128 } from "./keygate/simd.js";

requireSimd128(); // a clear KeygateError (wasm_simd_unsupported), e.g. on Safari before 16.4
await init({ module_or_path: new URL("./keygate/keygate_js_bg.wasm", import.meta.url) });

export * from "./keygate/api.js";
