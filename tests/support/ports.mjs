// A free TCP port on 127.0.0.1 for a test's server, never handed to two suites of one run: the
// kernel hands out a port free when asked, claimed in KEYGATE_PORT_CLAIMS (set by tests/lanes.sh
// for all its lanes; a file created exclusively per port) so that suites run side by side are
// never handed the same one. Without KEYGATE_PORT_CLAIMS nothing is claimed. See tests/support/ports.py.
import { closeSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

const TRIES = 1000;

function kernelPort() {
  return new Promise((ok, ko) => {
    const s = createServer();
    s.on("error", ko);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** A port the kernel just handed out on 127.0.0.1 (free at the time of asking), unclaimed in this run. */
export async function freePort() {
  const claims = process.env.KEYGATE_PORT_CLAIMS;
  for (let i = 0; i < TRIES; i++) {
    const port = await kernelPort();
    if (!claims) return port;
    try {
      closeSync(openSync(join(claims, String(port)), "wx"));
      return port;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
    }
  }
  throw new Error(`no unclaimed port after ${TRIES} tries (claims in ${claims})`);
}
