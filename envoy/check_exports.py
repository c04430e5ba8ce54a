#!/usr/bin/env python3
"""Fail the build unless a module exports exactly the callbacks filters/exports.json lists.

wasm-metadce exits 0 when a root names an export the module lacks and drops every export not
listed, and proxy-wasm-cpp-host answers `Continue` for a callback that is not exported: an SDK
upgrade that renamed `proxy_on_request_headers` would otherwise ship a filter that lets every
request through. Usage: check_exports.py MODULE.wasm EXPORTS.json (Python's standard library only).
"""
import json
import sys

from wasm_size import leb

REQUIRED = {"proxy_on_request_headers", "proxy_on_context_create", "proxy_on_configure"}


def exports(path):
    b = open(path, "rb").read()
    if b[:8] != b"\0asm\x01\0\0\0":
        sys.exit(f"{path}: not a wasm module")
    i, names = 8, set()
    while i < len(b):
        sid = b[i]
        size, i = leb(b, i + 1)
        end = i + size
        if sid == 7:
            n, i = leb(b, i)
            for _ in range(n):
                length, i = leb(b, i)
                names.add(b[i:i + length].decode())
                i += length + 1  # the kind byte
                _, i = leb(b, i)  # the index
        i = end
    return names


def main():
    module, listing = sys.argv[1:3]
    have = exports(module)
    want = {entry["export"] for entry in json.load(open(listing))}
    if have != want or not REQUIRED <= have:
        sys.exit(f"{module}: exports differ from {listing}: missing {sorted(want - have)}, "
                 f"unlisted {sorted(have - want)}, required {sorted(REQUIRED - have)}; "
                 "the SDK's callback names changed? Update the list after checking each one.")


if __name__ == "__main__":
    main()
