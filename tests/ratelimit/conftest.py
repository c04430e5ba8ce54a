"""Harness for keygate-ratelimit: the release binary, real redis-server processes on free
ports, a gRPC client (grpcio, raw protobuf bytes) and a real Envoy for the native filter."""
import concurrent.futures
import glob
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

import rls_wire

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "support"))
import ports  # noqa: E402  (tests/support/ports.py)
# KEYGATE_RATELIMIT_BIN: another build (e.g. target/debug) while developing.
BINARY = pathlib.Path(os.environ.get("KEYGATE_RATELIMIT_BIN",
                                     ROOT / "target" / "service" / "keygate-ratelimit"))


def free_port():
    """A free 127.0.0.1 port, never one another suite beside this one was handed (tests/support/ports.py)."""
    return ports.free_port()


def wait_port(port, proc, what, log_path, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{read(log_path)[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    pytest.fail(f"{what} not listening after {timeout}s:\n{read(log_path)[-3000:]}")


def read(path):
    return pathlib.Path(path).read_text(errors="replace")


class Redis:
    """A real redis-server (Debian's, from `make setup`), no persistence."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="keygate-redis-")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        exe = "/usr/bin/redis-server"
        if not os.path.exists(exe):
            pytest.fail("redis-server is not installed: run `make setup`")
        self.log_path = os.path.join(self.dir, f"redis-{time.monotonic_ns()}.log")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", self.log_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "redis-server", self.log_path)
        deadline = time.monotonic() + 10
        while self.command("PING") != b"+PONG":
            if time.monotonic() > deadline:
                pytest.fail("redis-server does not answer PING")
            time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def command(self, *args):
        """One command over RESP; the first reply line (enough for PING, DBSIZE, FLUSHALL)."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a)}\r\n{a}\r\n".encode() for a in map(str, args))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(payload)
                return s.recv(4096).split(b"\r\n")[0]
        except OSError:
            return None

    def dbsize(self):
        return int(self.command("DBSIZE")[1:])


class Service:
    """The built keygate-ratelimit on a free port."""

    def __init__(self, *args, env=None):
        if not BINARY.exists():
            pytest.fail(f"{BINARY} is missing: run `make build`")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="keygate-rls-")
        self.log_path = os.path.join(self.dir, "service.log")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(BINARY), "--listen", f"127.0.0.1:{self.port}", *map(str, args)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        wait_port(self.port, self.proc, "keygate-ratelimit", self.log_path)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self._call = self.channel.unary_unary(rls_wire.METHOD)

    def check(self, domain, descriptors, timeout=5.0, hits_addend=0):
        """The decoded response; raises grpc.RpcError on a gRPC error status."""
        raw = self._call(rls_wire.request(domain, descriptors, hits_addend), timeout=timeout)
        return rls_wire.response(raw)

    def logs(self):
        return read(self.log_path)

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_binary(*args, timeout=10):
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: run `make build`")
    return subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def parallel(calls, workers=40):
    """Runs the zero-argument callables at once; their results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda f: f(), calls))


def envoy_binary():
    if os.environ.get("KEYGATE_ENVOY"):  # another Envoy build (e.g. the 1.36 one)
        return os.environ["KEYGATE_ENVOY"]
    found = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
    if not found:
        pytest.fail("Envoy is not installed: run `make setup`")
    return found[0]


@pytest.fixture
def redis():
    r = Redis()
    yield r
    r.stop()


@pytest.fixture
def services():
    started = []

    def start(*args, env=None):
        s = Service(*args, env=env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
