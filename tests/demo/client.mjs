// A tiny HTTP client for the checks: node:http so the source address can be chosen (Envoy's
// per-IP limits key on it) and every header stays visible.
import http from "node:http";
import * as OTPAuth from "otpauth";

export function request(baseUrl, method, path, { body, token, headers = {}, localAddress } = {}) {
  const url = new URL(path, baseUrl);
  const h = { ...headers };
  let data;
  if (body !== undefined) {
    data = Buffer.from(JSON.stringify(body));
    h["content-type"] = "application/json";
    h["content-length"] = String(data.length);
  }
  if (token) h.authorization = `Bearer ${token}`;
  return new Promise((ok, ko) => {
    const req = http.request(url, { method, headers: h, localAddress, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        ok({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on("error", ko);
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.end(data);
  });
}

/** The claims of a JWT, unverified (only to read what the server put there). */
export function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
}

/**
 * A TOTP code from the independent otpauth library. `stepsAhead` = 1 gives the next period's
 * code (inside the ±1 window), for a second sign-in within the step already used.
 */
export function totpCode(secret, stepsAhead = 0) {
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30, algorithm: "SHA1" });
  return totp.generate({ timestamp: Date.now() + stepsAhead * 30_000 });
}
