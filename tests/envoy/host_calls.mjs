// A counting proxy-wasm host: runs dist/keygate_envoy.wasm in Node's V8 (the engine Envoy
// embeds) with just enough of the proxy-wasm 0.2.1 ABI, and counts every host call the
// filter makes per request, by phase. Used by test_host_calls.py; also a quick in-VM timing.
//
//   node tests/envoy/host_calls.mjs <module.wasm> <plugin-config.json> <request.json>
//     request.json: {"headers": [[name, value], ...], "requests": N, "tokens": [..] | null}
//     "tokens": one per request, in the `authorization: Bearer` header (else the headers' own).
// Prints JSON: {"phases": {"request_headers": {call: n}, "response_headers": {...}, ...}
// averaged per request, "vm_entries": the same for calls into the module (callbacks and
// proxy_on_memory_allocate), "vm_entries_per_request", "vm_us_per_request" (time in the
// module's callbacks minus the host functions they called), "statuses": [...], "us_per_request": x,
// "properties": the property paths asked for}.
import { readFileSync } from "node:fs";

const [wasmPath, configPath, requestPath] = process.argv.slice(2);
const pluginConfig = readFileSync(configPath);
const spec = JSON.parse(readFileSync(requestPath, "utf8"));
const enc = new TextEncoder();
const dec = new TextDecoder();

let mem;
let ex;
let phase = "startup";
const counts = {};
const shared = new Map(); // key -> {value: Uint8Array, cas}
let casSeq = 1;
let requestHeaders = [];
let responseHeaders = [];
let localReply = null;
const metrics = new Map();
const properties = new Set(); // every property path asked for, dotted

const u8 = () => new Uint8Array(mem.buffer);
const dv = () => new DataView(mem.buffer);
const str = (p, n) => dec.decode(u8().slice(p, p + n));
// VM entries per phase: every callback the host calls into the module, and every
// `proxy_on_memory_allocate` a host call returning bytes makes (Envoy's host does the same).
const entries = {};
// Time inside callbacks, and inside the host functions they call (the module's own time is
// the difference: "vm_us_per_request", a rough in-VM figure).
let callbackNs = 0n;
let hostNs = 0n;
let depth = 0;
function enter(name, ...args) {
  const e = (entries[phase] ??= {});
  e[name] = (e[name] ?? 0) + 1;
  if (depth++ > 0) {
    try {
      return ex[name](...args);
    } finally {
      depth--;
    }
  }
  const t = process.hrtime.bigint();
  try {
    return ex[name](...args);
  } finally {
    callbackNs += process.hrtime.bigint() - t;
    depth--;
  }
}
// Like proxy-wasm-cpp-host (src/context.cc): a callback the module does not export is not
// called; the host answers for it (Continue, or `true` for proxy_on_done).
function callback(name, ...args) {
  if (typeof ex[name] !== "function") return name === "proxy_on_done" ? 1 : 0;
  return enter(name, ...args);
}
function give(bytes, retPtr, retSize) {
  const p = bytes.length ? enter("proxy_on_memory_allocate", bytes.length) : 0;
  if (bytes.length) u8().set(bytes, p);
  dv().setUint32(retPtr, p, true);
  dv().setUint32(retSize, bytes.length, true);
}
function serializeMap(pairs) {
  const ks = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + 8 * ks.length;
  for (const [k, v] of ks) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const d = new DataView(out.buffer);
  d.setUint32(0, ks.length, true);
  let o = 4;
  for (const [k, v] of ks) {
    d.setUint32(o, k.length, true);
    d.setUint32(o + 4, v.length, true);
    o += 8;
  }
  for (const [k, v] of ks) {
    out.set(k, o);
    o += k.length + 1;
    out.set(v, o);
    o += v.length + 1;
  }
  return out;
}
function parseMap(p, n) {
  const b = u8().slice(p, p + n);
  const d = new DataView(b.buffer);
  const count = d.getUint32(0, true);
  let o = 4 + 8 * count;
  const pairs = [];
  for (let i = 0; i < count; i++) {
    const kl = d.getUint32(4 + 8 * i, true);
    const vl = d.getUint32(8 + 8 * i, true);
    const k = dec.decode(b.slice(o, o + kl));
    o += kl + 1;
    const v = dec.decode(b.slice(o, o + vl));
    o += vl + 1;
    pairs.push([k, v]);
  }
  return pairs;
}
const headerMap = (t) => (t === 0 ? requestHeaders : t === 2 ? responseHeaders : null);

const env = {
  proxy_log: () => 0,
  proxy_get_buffer_bytes: (type, start, max, retPtr, retSize) => {
    if (type !== 7) return 1; // PluginConfiguration only
    give(pluginConfig, retPtr, retSize);
    return 0;
  },
  proxy_get_property: (pathPtr, pathSize, retPtr, retSize) => {
    const raw = str(pathPtr, pathSize);
    // The ABI's path: parts joined by NUL (a stray empty part shows as "..").
    const path = raw.split("\0").join(".");
    properties.add(path);
    if (path !== "source.address") return 1;
    give(enc.encode("127.0.0.1:40000"), retPtr, retSize);
    return 0;
  },
  proxy_get_header_map_pairs: (t, retPtr, retSize) => {
    give(serializeMap(headerMap(t) ?? []), retPtr, retSize);
    return 0;
  },
  proxy_get_header_map_value: (t, kp, kn, retPtr, retSize) => {
    const k = str(kp, kn);
    const hit = (headerMap(t) ?? []).find(([n]) => n === k);
    if (!hit) return 1;
    give(enc.encode(hit[1]), retPtr, retSize);
    return 0;
  },
  proxy_add_header_map_value: (t, kp, kn, vp, vn) => {
    headerMap(t)?.push([str(kp, kn), str(vp, vn)]);
    return 0;
  },
  proxy_replace_header_map_value: (t, kp, kn, vp, vn) => {
    const m = headerMap(t);
    const k = str(kp, kn);
    if (!m) return 2;
    const rest = m.filter(([n]) => n !== k);
    m.length = 0;
    m.push(...rest, [k, str(vp, vn)]);
    return 0;
  },
  proxy_remove_header_map_value: (t, kp, kn) => {
    const m = headerMap(t);
    const k = str(kp, kn);
    if (!m) return 2;
    const rest = m.filter(([n]) => n !== k);
    m.length = 0;
    m.push(...rest);
    return 0;
  },
  proxy_set_header_map_pairs: (t, p, n) => {
    const m = headerMap(t);
    if (!m) return 2;
    m.length = 0;
    m.push(...parseMap(p, n));
    return 0;
  },
  proxy_get_shared_data: (kp, kn, retPtr, retSize, retCas) => {
    const e = shared.get(str(kp, kn));
    if (!e) return 1;
    give(e.value, retPtr, retSize);
    dv().setUint32(retCas, e.cas, true);
    return 0;
  },
  proxy_set_shared_data: (kp, kn, vp, vn, cas) => {
    const k = str(kp, kn);
    const e = shared.get(k);
    if (cas !== 0 && e && e.cas !== cas) return 8;
    shared.set(k, { value: u8().slice(vp, vp + vn), cas: casSeq++ });
    return 0;
  },
  proxy_get_current_time_nanoseconds: (ret) => {
    dv().setBigUint64(ret, BigInt(Date.now()) * 1000000n, true);
    return 0;
  },
  proxy_define_metric: (type, np, nn, ret) => {
    const id = metrics.size + 1;
    metrics.set(id, { name: str(np, nn), value: 0n });
    dv().setUint32(ret, id, true);
    return 0;
  },
  proxy_increment_metric: (id, by) => {
    const m = metrics.get(id);
    if (m) m.value += BigInt(by);
    return 0;
  },
  proxy_record_metric: (id, v) => {
    const m = metrics.get(id);
    if (m) m.value = BigInt(v);
    return 0;
  },
  proxy_send_local_response: (status) => {
    localReply = status;
    return 0;
  },
  proxy_set_tick_period_milliseconds: () => 0,
  proxy_get_status: () => 1,
};
const counted = new Proxy(env, {
  get(target, name) {
    const f = target[name] ?? (() => 0);
    return (...args) => {
      const c = (counts[phase] ??= {});
      c[name] = (c[name] ?? 0) + 1;
      const t = process.hrtime.bigint();
      try {
        return f(...args);
      } finally {
        hostNs += process.hrtime.bigint() - t;
      }
    };
  },
});
const wasi = {
  fd_write: () => 0,
  environ_get: () => 0,
  environ_sizes_get: (countPtr, sizePtr) => {
    dv().setUint32(countPtr, 0, true);
    dv().setUint32(sizePtr, 0, true);
    return 0;
  },
  proc_exit: (code) => {
    throw new Error(`proc_exit(${code})`);
  },
};

const module = new WebAssembly.Module(readFileSync(wasmPath));
const instance = new WebAssembly.Instance(module, { env: counted, wasi_snapshot_preview1: wasi });
ex = instance.exports;
mem = ex.memory;
ex._initialize?.();
const ROOT = 1;
ex.proxy_on_context_create(ROOT, 0);
if (!ex.proxy_on_vm_start(ROOT, 0)) throw new Error("vm_start refused");
if (!ex.proxy_on_configure(ROOT, pluginConfig.length)) throw new Error("configuration refused");

const n = spec.requests;
const statuses = [];
for (const p of ["request_headers", "response_headers", "done"]) counts[p] = {};
const t0 = process.hrtime.bigint();
callbackNs = 0n;
hostNs = 0n;
for (let i = 0; i < n; i++) {
  const id = 2 + i;
  requestHeaders = spec.headers.map(([k, v]) => [k, v]);
  if (spec.tokens) requestHeaders.push(["authorization", `Bearer ${spec.tokens[i % spec.tokens.length]}`]);
  responseHeaders = [[":status", "200"]];
  localReply = null;
  phase = "context";
  callback("proxy_on_context_create", id, ROOT);
  phase = "request_headers";
  callback("proxy_on_request_headers", id, requestHeaders.length, 1);
  if (localReply === null) {
    // The bench's upstream: a direct_response with a small body (headers, then one chunk).
    phase = "response_headers";
    callback("proxy_on_response_headers", id, responseHeaders.length, 0);
    phase = "response_body";
    callback("proxy_on_response_body", id, 3, 1);
  }
  phase = "done";
  callback("proxy_on_log", id);
  callback("proxy_on_done", id);
  callback("proxy_on_delete", id);
  statuses.push(localReply ?? 200);
}
const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
const perRequest = (byPhase) => {
  const out = {};
  for (const [p, c] of Object.entries(byPhase)) {
    if (p === "startup") continue;
    out[p] = Object.fromEntries(Object.entries(c).map(([k, v]) => [k, v / n]));
  }
  return out;
};
const phases = perRequest(counts);
const vm = perRequest(entries);
const vmTotal = Object.values(vm).reduce((a, c) => a + Object.values(c).reduce((x, y) => x + y, 0), 0);
console.log(JSON.stringify({
  phases,
  vm_entries: vm,
  vm_entries_per_request: vmTotal,
  statuses: [...new Set(statuses)],
  us_per_request: us,
  vm_us_per_request: Number(callbackNs - hostNs) / 1000 / n,
  request_headers: requestHeaders,
  response_headers: responseHeaders,
  properties: [...properties],
}));
