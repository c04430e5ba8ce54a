"""A free TCP port on 127.0.0.1 for a test's server, never handed to two suites of one run.

The kernel hands out a port that is free when asked; the server a test starts binds it a moment
later. Suites run side by side (tests/lanes.sh) could be handed the same port in that moment.
tests/lanes.sh gives all its lanes one claims directory (KEYGATE_PORT_CLAIMS): each port handed
out is claimed there (a file created exclusively), and a port already claimed in the run is
never handed out again. Without KEYGATE_PORT_CLAIMS (a suite run alone) nothing is claimed.
The same in tests/support/ports.mjs for the Node suites.
"""
import os
import socket

TRIES = 1000


def free_port():
    claims = os.environ.get("KEYGATE_PORT_CLAIMS")
    for _ in range(TRIES):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not claims:
            return port
        try:
            os.close(os.open(os.path.join(claims, str(port)), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return port
        except FileExistsError:
            continue
    raise RuntimeError(f"no unclaimed port after {TRIES} tries (claims in {claims})")
