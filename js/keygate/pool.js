// Node: a small worker_threads pool for the Argon2id work (hashPasswordAsync,
// verifyPasswordAsync, Keygate#loginAsync), so a server's event loop is not blocked for the
// ~200 ms one hash takes at the seed's parameters. Workers start on first use, at most
// min(4, cores - 1) (at least 1), and never keep the process alive while idle.
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";

// Errors in the shape of the core's (name "KeygateError" + code): api.js turns them into its
// own KeygateError class, so ESM and CJS callers each get theirs.
function keygateError(code, message, { field, claim } = {}) {
  return Object.assign(new Error(message), { name: "KeygateError", code, field, claim });
}

export function createPool(workerFile) {
  const size = Math.max(1, Math.min(4, availableParallelism() - 1));
  const workers = [];
  let nextId = 0;

  function spawn() {
    // The parent's flags, minus --input-type (only valid with --eval / stdin: `node -e` users).
    const execArgv = process.execArgv.filter((a) => !a.startsWith("--input-type"));
    const w = new Worker(workerFile, { execArgv });
    w.pending = new Map();
    w.on("message", ({ id, ok, value, error }) => {
      const task = w.pending.get(id);
      if (!task) return;
      w.pending.delete(id);
      if (w.pending.size === 0) w.unref();
      if (ok) task.resolve(value);
      else if (error.isKeygate) task.reject(keygateError(error.code, error.message, error));
      else task.reject(keygateError("internal_error", `keygate's worker thread failed: ${error.message}`));
    });
    w.on("error", (e) => fail(w, e));
    w.on("exit", (code) => fail(w, new Error(`exited with code ${code}`)));
    w.unref();
    workers.push(w);
    return w;
  }

  function fail(w, e) {
    const i = workers.indexOf(w);
    if (i >= 0) workers.splice(i, 1);
    for (const task of w.pending.values()) {
      task.reject(keygateError("internal_error", `keygate's worker thread failed: ${e.message}`));
    }
    w.pending.clear();
  }

  function pick() {
    const idle = workers.find((w) => w.pending.size === 0);
    if (idle) return idle;
    if (workers.length < size) return spawn();
    return workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  return {
    size,
    run(fn, args) {
      const w = pick();
      const id = nextId++;
      return new Promise((resolve, reject) => {
        w.pending.set(id, { resolve, reject });
        w.ref();
        w.postMessage({ id, fn, args });
      });
    },
  };
}
