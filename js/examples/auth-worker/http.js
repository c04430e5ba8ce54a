// Small HTTP helpers shared by the auth worker and the demo API.

export const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "cache-control": "no-store",
};

/**
 * A JSON response. A header given here replaces the default of the same name (one
 * `cache-control`, never `no-store, public, …`); `set-cookie` may be an array of values.
 */
export function json(status, body, headers = {}) {
  const h = new Headers(JSON_HEADERS);
  for (const [name, value] of Object.entries(headers)) {
    h.delete(name);
    for (const v of Array.isArray(value) ? value : [value]) h.append(name, v);
  }
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** The error shape every keygate component answers with. */
export function error(status, code, message, headers) {
  return json(status, { error: code, message }, headers);
}

export const MAX_BODY_BYTES = 16 * 1024;

/**
 * The request body as text, read once and at most `max` bytes: `{text}`, or `{tooLarge: true}`
 * as soon as the declared length or the bytes read pass `max` (the rest is never buffered:
 * the stream is cancelled).
 */
export async function readBodyText(request, max = MAX_BODY_BYTES) {
  if (request.body === null) return { text: "" };
  if (Number(request.headers.get("content-length") ?? 0) > max) return { tooLarge: true };
  const reader = request.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      return { tooLarge: true };
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { text: new TextDecoder().decode(bytes) };
}

/** The request's JSON object body, or an error Response to return. */
export async function readJson(request) {
  const type = request.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("application/json")) {
    return { response: error(415, "unsupported_media_type", "Send a JSON body with Content-Type: application/json") };
  }
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > MAX_BODY_BYTES) {
    return { response: error(413, "body_too_large", `The body is larger than ${MAX_BODY_BYTES} bytes`) };
  }
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) {
    return { response: error(413, "body_too_large", `The body is larger than ${MAX_BODY_BYTES} bytes`) };
  }
  try {
    const body = JSON.parse(text);
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw new Error("not an object");
    return { body };
  } catch {
    return { response: error(400, "invalid_json", "The body must be a JSON object") };
  }
}

/** Like readJson, but a request without a body (no JSON content type, empty) is `{}`. */
export async function readOptionalJson(request) {
  const type = request.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("application/json")) return { body: {} };
  return readJson(request);
}

/** `body[name]` if it is a non-empty string of at most `max` characters, else undefined. */
export function field(body, name, max = 1024) {
  const v = body[name];
  return typeof v === "string" && v.length > 0 && v.length <= max ? v : undefined;
}
