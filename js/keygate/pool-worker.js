// One thread of keygate's Node pool (pool.js): runs the synchronous API on the messages it gets.
import { parentPort } from "node:worker_threads";
import { Keygate, hashPassword, verifyPassword } from "../node.js";

const instances = new Map(); // config JSON → Keygate (a few configs per process at most)

function keygate(configJson) {
  let kg = instances.get(configJson);
  if (!kg) {
    if (instances.size >= 16) instances.delete(instances.keys().next().value);
    kg = new Keygate(JSON.parse(configJson));
    instances.set(configJson, kg);
  }
  return kg;
}

const FNS = {
  hashPassword,
  verifyPassword,
  login(configJson, user, password, options) {
    const r = keygate(configJson).login(user, password, options);
    return { r, family: r.tokens?.family };
  },
};

parentPort.on("message", ({ id, fn, args }) => {
  try {
    parentPort.postMessage({ id, ok: true, value: FNS[fn](...args) });
  } catch (e) {
    parentPort.postMessage({
      id,
      ok: false,
      error: { isKeygate: e?.name === "KeygateError", code: e?.code, message: String(e?.message ?? e), field: e?.field, claim: e?.claim },
    });
  }
});
