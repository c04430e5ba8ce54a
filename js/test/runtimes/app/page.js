// The browser program, bundled by esbuild / bun build / Vite: input from the query string,
// the answer in window.__result (read by playwright).
import { program } from "./program.js";

try {
  window.__result = program(JSON.parse(new URLSearchParams(location.search).get("input")));
} catch (e) {
  window.__result = { failed: `${e && e.name}: ${e && e.message}` };
}
document.title = "done";
