// Where the *Async functions run. Node's entries (node.js, node.cjs) install a worker_threads
// pool here; everywhere else (workerd, Deno, browsers, edge) nothing is installed and they run
// inline: a worker isolate has no threads to spare and serves one request at a time anyway.
let pool = null;

export function setOffload(p) {
  pool = p;
}

export function offload() {
  return pool;
}
