// Vercel edge-light: a fetch handler bundled with the edge-light condition, run by edge-runtime.
import { program } from "./program.js";

addEventListener("fetch", (event) => {
  const input = JSON.parse(new URL(event.request.url).searchParams.get("input"));
  event.respondWith(Response.json(program(input)));
});
