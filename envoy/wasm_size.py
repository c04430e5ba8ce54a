#!/usr/bin/env python3
"""Where the filter's bytes go: function body sizes of a wasm module, by crate and largest first.

Needs a module with a name section (the shipped one has none):
  cargo build --profile filter -p keygate-envoy --target wasm32-wasip1 \
      --config 'profile.filter.strip=false'
  wasm-opt -Oz -g $(WASM_FEATURES) --strip-dwarf \
      target/wasm32-wasip1/filter/keygate_envoy.wasm -o /tmp/named.wasm
  envoy/wasm_size.py /tmp/named.wasm [N]
Names are demangled with binutils' `c++filt -s rust`. Sizes are of code bodies after wasm-opt
(the same as in dist/ up to the name section); data and other sections are listed in total.
"""
import collections
import re
import subprocess
import sys

SECTIONS = {1: "type", 2: "import", 3: "func", 4: "table", 5: "memory", 6: "global",
            7: "export", 8: "start", 9: "elem", 10: "code", 11: "data", 12: "datacount"}


def leb(b, i):
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i


def parse(path):
    b = open(path, "rb").read()
    i, imported, bodies, names, sizes = 8, 0, [], {}, collections.Counter()
    while i < len(b):
        sid = b[i]
        size, i = leb(b, i + 1)
        end = i + size
        if sid == 2:  # count imported functions: they come first in the function index space
            n, j = leb(b, i)
            for _ in range(n):
                for _ in range(2):
                    length, j = leb(b, j)
                    j += length
                kind = b[j]
                j += 1
                if kind == 0:
                    _, j = leb(b, j)
                    imported += 1
                elif kind == 1:
                    j += 1
                    flags, j = leb(b, j)
                    _, j = leb(b, j)
                    if flags & 1:
                        _, j = leb(b, j)
                elif kind == 2:
                    flags, j = leb(b, j)
                    _, j = leb(b, j)
                    if flags & 1:
                        _, j = leb(b, j)
                else:
                    j += 2
        if sid == 10:
            n, j = leb(b, i)
            for _ in range(n):
                s, k = leb(b, j)
                bodies.append(k - j + s)
                j = k + s
        if sid == 0:
            length, j = leb(b, i)
            name = b[j:j + length].decode()
            j += length
            sizes["custom:" + name] += size
            while name == "name" and j < end:
                sub = b[j]
                sub_size, j = leb(b, j + 1)
                if sub == 1:
                    n, k = leb(b, j)
                    for _ in range(n):
                        idx, k = leb(b, k)
                        length, k = leb(b, k)
                        names[idx] = b[k:k + length].decode("utf-8", "replace")
                        k += length
                j += sub_size
        else:
            sizes[SECTIONS.get(sid, sid)] += size
        i = end
    return imported, bodies, names, sizes, len(b)


def crate(name):
    m = re.match(r"<?(?:impl |dyn |&mut |&)?([A-Za-z_][A-Za-z0-9_]*)", name)
    return m.group(1) if m else name[:20]


def main():
    imported, bodies, names, sizes, total = parse(sys.argv[1])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    raw = [names.get(imported + k, f"func{imported + k}") for k in range(len(bodies))]
    demangled = subprocess.run(["c++filt", "-s", "rust"], input="\n".join(raw),
                               capture_output=True, text=True, check=True).stdout.split("\n")
    demangled = [re.sub(r"\[[0-9a-f]+\]", "", d) for d in demangled]
    print(f"{total} bytes: " + ", ".join(f"{k} {v}" for k, v in sizes.most_common()))
    by, count = collections.Counter(), collections.Counter()
    for d, s in zip(demangled, bodies):
        by[crate(d)] += s
        count[crate(d)] += 1
    print("\n   bytes funcs crate")
    for c, s in by.most_common(top):
        print(f"{s:8d} {count[c]:5d} {c}")
    print("\n   bytes function")
    for d, s in sorted(zip(demangled, bodies), key=lambda x: -x[1])[:top]:
        print(f"{s:8d} {d[:160]}")


if __name__ == "__main__":
    main()
