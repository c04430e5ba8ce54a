"""Config-load warnings in a real Envoy: a rule limited by `methods` followed by a broader rule
with a weaker requirement (the other methods of the same paths fall into it) is logged, naming
both rules; a config without the trap logs no warning."""
import copy
import time

from conftest import Envoy, example_plugin_config

TRAP = [
    {"prefix": "/api/auth/", "allow": "public"},
    {"path": "/api/patients/*", "methods": ["GET"], "permissions": ["patients:read"]},
    {"prefix": "/api/", "allow": "authenticated"},
]


def config(rules):
    c = copy.deepcopy(example_plugin_config())
    c["rules"] = rules
    return c


def wait_for_log(envoy, needle, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in envoy.logs():
            return True
        time.sleep(0.05)
    return False


def test_methods_limited_rule_before_weaker_broad_rule_is_logged(upstream):
    e = Envoy(config(TRAP), upstream)
    try:
        assert wait_for_log(e, "keygate: config warning:"), e.logs()[-3000:]
        line = next(l for l in e.logs().splitlines() if "keygate: config warning:" in l)
        assert "warn" in line.lower(), line
        assert 'rules[1] (path "/api/patients/*", permissions patients:read)' in line, line
        assert 'rules[2] (prefix "/api/", allow authenticated)' in line, line
        assert "POST, PUT, PATCH, DELETE, OPTIONS" in line, line
        # A warning, not a refusal: the listener serves.
        assert e.request("GET", "/api/auth/ping").status == 200
    finally:
        e.stop()


def test_methods_per_permission_logs_no_warning(upstream):
    fixed = TRAP[:2] + [{"path": "/api/patients/*", "permissions": ["patients:write"]}] + TRAP[2:]
    e = Envoy(config(fixed), upstream)
    try:
        assert e.request("GET", "/api/auth/ping").status == 200
        time.sleep(0.3)
        assert "config warning" not in e.logs(), e.logs()[-3000:]
    finally:
        e.stop()


def test_shipped_example_logs_no_warning(upstream):
    # envoy/keygate.yaml is what operators copy: it must not carry the trap itself.
    e = Envoy(copy.deepcopy(example_plugin_config()), upstream)
    try:
        assert e.request("GET", "/api/auth/ping").status == 200
        time.sleep(0.3)
        assert "config warning" not in e.logs(), e.logs()[-3000:]
    finally:
        e.stop()


def test_prefix_without_slash_opening_stricter_paths_is_logged(upstream):
    # `{"prefix": "/api", "allow": "public"}` matches raw bytes (Envoy's `prefix` semantics,
    # kept): `/api-internal/x` is public too, though the operator's later rule asks for admin.
    rules = [
        {"prefix": "/api", "allow": "public"},
        {"path": "/api-internal/*", "roles": ["admin"]},
        {"prefix": "/", "allow": "authenticated"},
    ]
    e = Envoy(config(rules), upstream)
    try:
        assert wait_for_log(e, "keygate: config warning:"), e.logs()[-3000:]
        line = next(l for l in e.logs().splitlines() if "keygate: config warning:" in l)
        assert 'rules[0] (prefix "/api", allow public) is a prefix without a trailing' in line
        assert '"/api-internal/x", which would otherwise fall into the stricter rules[1]' in line
        assert 'write "/api/" for a segment boundary' in line, line
        # A warning, not a refusal; and the semantics are Envoy's: the prefix still matches.
        assert e.request("GET", "/api-internal/x").status == 200
    finally:
        e.stop()
