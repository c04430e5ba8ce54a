// Node ≥ 20 (and Bun): read the .wasm next to the glue and instantiate it synchronously, so
// `import { … } from "keygate"` is ready with no init() call.
import { readFileSync } from "node:fs";
import { initSync } from "./keygate/keygate_js.js";
import { createPool } from "./keygate/pool.js";
import { requireSimd128 } from "./keygate/simd.js";

requireSimd128(); // a clear KeygateError (wasm_simd_unsupported) instead of a compile error
initSync({ module: readFileSync(new URL("./keygate/keygate_js_bg.wasm", import.meta.url)) });

// hashPasswordAsync / verifyPasswordAsync / loginAsync run on a worker_threads pool.
globalThis[Symbol.for("keygate.offload")] ??= createPool(new URL("./keygate/pool-worker.js", import.meta.url));

export * from "./keygate/api.js";
