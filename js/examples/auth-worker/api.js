// The demo's upstream API behind Envoy. It trusts x-user-id / x-user-roles because only Envoy
// can reach it (it listens on 127.0.0.1, and the keygate filter strips those headers from
// client requests before setting them from a verified token). It echoes what it received.
import { json, error } from "./http.js";

const PATIENTS = {
  "1": { id: "1", name: "Ada Lovelace", ward: "B" },
  "2": { id: "2", name: "Alan Turing", ward: "C" },
};

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const seen = {
      method: request.method,
      path: url.pathname,
      "x-user-id": request.headers.get("x-user-id"),
      "x-user-roles": request.headers.get("x-user-roles"),
    };
    // Only reading is served here; answering other methods as if they were GET is how a
    // POST past a GET-only rule would read a record.
    if (request.method !== "GET" && request.method !== "HEAD") {
      return error(405, "method_not_allowed", `${request.method} is not served here`, { allow: "GET, HEAD" });
    }
    const patient = url.pathname.match(/^\/api\/patients\/([^/]+)$/);
    if (patient) {
      const p = PATIENTS[patient[1]];
      return p ? json(200, { patient: p, seen }) : error(404, "not_found", "No such patient");
    }
    if (url.pathname.startsWith("/admin")) {
      return json(200, { area: "admin", message: "Welcome to the admin area", seen });
    }
    if (url.pathname === "/api/ping") return json(200, { pong: true, seen });
    return json(200, { service: "demo-api", message: "Hello from the protected API", seen });
  },
};
