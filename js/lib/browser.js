// Browsers and other ESM runtimes: fetch and instantiate the .wasm next to the glue before the
// module finishes loading (top-level await), so no init() call is needed.
import init from "../pkg/keygate_js.js";

await init({ module_or_path: new URL("../pkg/keygate_js_bg.wasm", import.meta.url) });

export * from "./api.js";
