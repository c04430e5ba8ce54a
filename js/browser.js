// Browsers and other ESM runtimes: fetch and instantiate the .wasm next to the glue before the
// module finishes loading (top-level await), so no init() call is needed.
import init from "./keygate/keygate_js.js";

await init({ module_or_path: new URL("./keygate/keygate_js_bg.wasm", import.meta.url) });

export * from "./keygate/api.js";
