// The auth worker's entry: static login page, and /api/auth/* + JWKS forwarded to the one
// AuthStore Durable Object that holds the accounts. Envoy sits in front of this worker.
import indexHtml from "./public/index.html";
import appJs from "./public/app.js";
import appCss from "./public/app.css";
import { error } from "./http.js";

export { AuthStore } from "./auth.js";

const PAGE_HEADERS = {
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // The page loads nothing from elsewhere; the QR code is a data: image.
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

const ASSETS = {
  "/": [indexHtml, "text/html; charset=utf-8"],
  "/index.html": [indexHtml, "text/html; charset=utf-8"],
  "/app.js": [appJs, "text/javascript; charset=utf-8"],
  "/app.css": [appCss, "text/css; charset=utf-8"],
};

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const asset = ASSETS[url.pathname];
    if (asset && (request.method === "GET" || request.method === "HEAD")) {
      const [body, type] = asset;
      return new Response(request.method === "HEAD" ? null : body, {
        headers: { ...PAGE_HEADERS, "content-type": type },
      });
    }
    if (
      url.pathname.startsWith("/api/auth/") ||
      url.pathname === "/.well-known/jwks.json" ||
      url.pathname.startsWith("/__demo/")
    ) {
      const store = env.AUTH.get(env.AUTH.idFromName("accounts"));
      return store.fetch(request);
    }
    return error(404, "not_found", `Nothing at ${url.pathname}`);
  },
};
