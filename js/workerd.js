// workerd / Cloudflare Workers: the runtime forbids compiling WebAssembly from bytes, so the
// .wasm is imported as a precompiled module (wrangler and workerd's `wasm` modules do this)
// and instantiated synchronously.
import wasmModule from "./keygate/keygate_js_bg.wasm";
import { initSync } from "./keygate/keygate_js.js";

initSync({ module: wasmModule });

export * from "./keygate/api.js";
