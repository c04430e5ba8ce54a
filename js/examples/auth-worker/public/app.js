// The login page: plain DOM code, no framework. Tokens live in sessionStorage for this tab;
// the worker also sets its HttpOnly session cookie, which it reads for MFA enrolment.
const $ = (id) => document.getElementById(id);
const STORE = "keygate-demo-tokens";
let pendingMfaToken = null;

const tokens = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(STORE)); } catch { return null; }
  },
  set(t) { sessionStorage.setItem(STORE, JSON.stringify(t)); },
  clear() { sessionStorage.removeItem(STORE); },
};

async function call(method, path, body, { anonymous = false } = {}) {
  const headers = {};
  const t = tokens.get();
  if (t && !anonymous) headers.authorization = `Bearer ${t.access_token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  const text = await res.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: res.status, data, headers: res.headers };
}

function show(card) {
  for (const id of ["auth-card", "mfa-card", "home-card"]) $(id).hidden = id !== card;
}

function message(el, text, kind = "") {
  el.textContent = text;
  el.className = `msg ${kind}`;
}

function describe(r) {
  return r.data && typeof r.data === "object" && r.data.message ? r.data.message : `HTTP ${r.status}`;
}

async function busy(button, fn) {
  button.disabled = true;
  try { return await fn(); } finally { button.disabled = false; }
}

// ---- tabs

function selectTab(name) {
  for (const t of ["signin", "signup", "reset"]) {
    $(`tab-${t}`).classList.toggle("active", t === name);
    $(`tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`${t}-form`).hidden = t !== name;
  }
  message($("auth-msg"), "");
}
for (const t of ["signin", "signup", "reset"]) $(`tab-${t}`).addEventListener("click", () => selectTab(t));

// ---- sign in, MFA step, sign up, reset

async function signedIn(t) {
  tokens.set(t);
  await refreshHome();
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  busy($("signin-submit"), async () => {
    message($("auth-msg"), "Checking…");
    const r = await call("POST", "/api/auth/login", {
      email: $("signin-email").value, password: $("signin-password").value,
    }, { anonymous: true });
    if (r.status === 200 && r.data.mfa_required) {
      pendingMfaToken = r.data.mfa_token;
      message($("mfa-msg"), "");
      $("mfa-code").value = "";
      show("mfa-card");
      $("mfa-code").focus();
    } else if (r.status === 200) {
      $("signin-password").value = "";
      await signedIn(r.data);
    } else if (r.status === 429) {
      message($("auth-msg"), `Too many attempts — try again in ${r.headers.get("retry-after") ?? "a few"} s (429).`, "error");
    } else {
      message($("auth-msg"), `${describe(r)} (${r.status}).`, "error");
    }
  });
});

$("mfa-form").addEventListener("submit", (e) => {
  e.preventDefault();
  busy($("mfa-submit"), async () => {
    const r = await call("POST", "/api/auth/mfa", { mfa_token: pendingMfaToken, code: $("mfa-code").value.trim() }, { anonymous: true });
    if (r.status === 200) {
      pendingMfaToken = null;
      $("signin-password").value = "";
      await signedIn(r.data);
    } else {
      message($("mfa-msg"), `${describe(r)} (${r.status}).`, "error");
    }
  });
});
$("mfa-cancel").addEventListener("click", () => { pendingMfaToken = null; show("auth-card"); });

$("signup-form").addEventListener("submit", (e) => {
  e.preventDefault();
  busy($("signup-submit"), async () => {
    message($("auth-msg"), "Creating account…");
    const r = await call("POST", "/api/auth/register", {
      email: $("signup-email").value, password: $("signup-password").value,
    }, { anonymous: true });
    if (r.status === 202) {
      // The same answer whether or not the address has an account: the link is in the mail.
      $("signin-email").value = $("signup-email").value;
      message($("auth-msg"), "Check your email for the confirmation link (demo: the outbox page).", "ok");
    } else {
      message($("auth-msg"), `${describe(r)} (${r.status}).`, "error");
    }
  });
});

// A sign-up confirmation link: /#confirm=<email>:<token>.
async function confirmSignup() {
  const m = location.hash.match(/^#confirm=([^:]+):(.+)$/);
  if (!m) return;
  history.replaceState(null, "", location.pathname);
  const email = decodeURIComponent(m[1]);
  const r = await call("POST", "/api/auth/register/confirm", { email, token: m[2] }, { anonymous: true });
  if (r.status === 201) {
    $("signin-email").value = email;
    selectTab("signin");
    message($("auth-msg"), "Account created — sign in now.", "ok");
  } else {
    message($("auth-msg"), `${describe(r)} (${r.status}).`, "error");
  }
}

$("reset-form").addEventListener("submit", (e) => {
  e.preventDefault();
  busy($("reset-submit"), async () => {
    const r = await call("POST", "/api/auth/password-reset", { email: $("reset-email").value }, { anonymous: true });
    message($("auth-msg"), `${r.data?.message ?? describe(r)} (${r.status}).`, r.status === 200 ? "ok" : "error");
  });
});

// ---- signed-in view

async function refreshHome() {
  let r = tokens.get() ? await call("GET", "/api/auth/session") : { status: 401 };
  if (r.status === 401 && tokens.get()?.refresh_token) {
    if (await rotate()) r = await call("GET", "/api/auth/session");
  }
  if (r.status !== 200) {
    tokens.clear();
    $("who").textContent = "Signed out";
    $("who").classList.remove("on");
    show("auth-card");
    return;
  }
  const u = r.data;
  $("who").textContent = `Signed in · ${u.email}`;
  $("who").classList.add("on");
  $("home-email").textContent = u.email;
  $("home-roles").textContent = u.roles.join(", ") || "—";
  $("home-mfa").textContent = u.mfa_enabled ? "on" : "off";
  $("mfa-setup").textContent = u.mfa_enabled ? "Re-enrol MFA" : "Set up MFA";
  show("home-card");
}

async function rotate() {
  const t = tokens.get();
  if (!t?.refresh_token) return false;
  const r = await call("POST", "/api/auth/refresh", { refresh_token: t.refresh_token }, { anonymous: true });
  if (r.status === 200) tokens.set(r.data);
  return r;
}

$("mfa-setup").addEventListener("click", () => busy($("mfa-setup"), async () => {
  let r = await call("POST", "/api/auth/mfa/setup");
  if (r.status === 403 && r.data?.error === "reauthentication_required") {
    // Changing a factor needs fresh proof: the password again (or the current code).
    const password = window.prompt("Enter your password to change MFA");
    if (password) r = await call("POST", "/api/auth/mfa/setup", { password });
  }
  if (r.status !== 200) return message($("enrol-msg"), `${describe(r)} (${r.status}).`, "error");
  $("qr-img").src = `data:image/png;base64,${r.data.qr_code}`;
  $("mfa-secret").textContent = r.data.secret;
  $("mfa-uri").textContent = r.data.provisioning_uri;
  $("enrol-code").value = "";
  $("recovery").hidden = true;
  $("enrol-form").hidden = false;
  message($("enrol-msg"), "");
  $("enrol").hidden = false;
  $("enrol-code").focus();
}));

$("enrol-form").addEventListener("submit", (e) => {
  e.preventDefault();
  busy($("enrol-submit"), async () => {
    const r = await call("POST", "/api/auth/mfa/verify", { code: $("enrol-code").value.trim() });
    if (r.status !== 200) return message($("enrol-msg"), `${describe(r)} (${r.status}).`, "error");
    message($("enrol-msg"), "MFA is on. Next sign-in asks for a code.", "ok");
    $("enrol-form").hidden = true;
    const list = $("recovery-codes");
    list.replaceChildren(...r.data.recovery_codes.map((c) => Object.assign(document.createElement("li"), { textContent: c })));
    $("recovery").hidden = false;
    $("home-mfa").textContent = "on";
  });
});

$("signout").addEventListener("click", () => busy($("signout"), async () => {
  await call("POST", "/api/auth/logout", { refresh_token: tokens.get()?.refresh_token });
  tokens.clear();
  $("enrol").hidden = true;
  addResult("POST", "/api/auth/logout", { status: 200, data: { success: true } });
  await refreshHome();
}));

// ---- API calls through Envoy

function addResult(method, path, r) {
  const box = document.createElement("div");
  box.className = "result";
  box.dataset.status = String(r.status);
  const head = document.createElement("div");
  head.className = "result-head";
  const badge = document.createElement("span");
  badge.className = `status s${r.status >= 200 && r.status < 300 ? "2" : [401, 403, 429].includes(r.status) ? r.status : String(r.status)[0]}`;
  badge.textContent = r.status;
  const what = document.createElement("span");
  what.className = "mono";
  what.textContent = `${method} ${path}`;
  const note = document.createElement("span");
  note.className = "muted";
  note.textContent = { 200: "OK", 401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests" }[r.status] ?? "";
  head.append(badge, what, note);
  const pre = document.createElement("pre");
  pre.textContent = typeof r.data === "string" ? r.data : JSON.stringify(r.data, null, 2);
  box.append(head, pre);
  $("results").prepend(box);
  $("results").dataset.count = String(Number($("results").dataset.count ?? 0) + 1);
  while ($("results").children.length > 8) $("results").lastChild.remove();
}

for (const b of document.querySelectorAll("button.call")) {
  b.addEventListener("click", () => busy(b, async () => {
    const anonymous = b.dataset.anonymous === "1";
    const r = await call("GET", b.dataset.path, undefined, { anonymous });
    addResult("GET", b.dataset.path + (anonymous ? " (no token)" : ""), r);
  }));
}

$("call-burst").addEventListener("click", () => busy($("call-burst"), async () => {
  for (let i = 0; i < 8; i++) {
    const r = await call("GET", "/api/ping");
    addResult("GET", `/api/ping #${i + 1}`, r);
  }
}));

$("call-refresh").addEventListener("click", () => busy($("call-refresh"), async () => {
  const r = await rotate();
  if (!r) return addResult("POST", "/api/auth/refresh", { status: 401, data: { error: "token_missing", message: "Sign in first" } });
  addResult("POST", "/api/auth/refresh", { status: r.status, data: r.status === 200 ? { rotated: true, expires_in: r.data.expires_in } : r.data });
}));

window.addEventListener("hashchange", confirmSignup);
confirmSignup().then(refreshHome);
