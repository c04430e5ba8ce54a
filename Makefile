# keygate — one auth core, two shells. `make setup` installs every tool; all targets are idempotent.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

VENV        := .venv
PY          := $(VENV)/bin/python
ENVOY_VER   := 1.40.0
ENVOY       = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/envoy/_bin/envoy))
WBG_VER     := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"/\1/p;}' Cargo.lock)
CARGO_BIN   := $(HOME)/.cargo/bin
STAMP       := target/.setup-stamp

export PATH := $(CARGO_BIN):$(PATH)

.PHONY: setup setup-rust setup-python setup-node setup-apt build build-core build-envoy build-js \
	test test-rust test-vectors test-envoy test-js bench bench-envoy bench-js demo demo-check clean \
	test-demo setup-demo

## setup: install toolchains, wasm-bindgen-cli, Envoy, Python and npm test deps (fast when present)
setup: setup-apt setup-rust setup-python setup-node setup-demo

# Debian packages: wasm-opt (binaryen), wrk (benchmarks), zbarimg (QR decoding in tests).
APT_PKGS := binaryen:wasm-opt wrk:wrk zbar-tools:zbarimg chromium:chromium
setup-apt:
	@missing=""; for pc in $(APT_PKGS); do command -v $${pc#*:} >/dev/null || missing="$$missing $${pc%%:*}"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install$$missing"; \
	  (apt-get install -y -qq $$missing >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; }); fi

setup-rust:
	@rustup show active-toolchain >/dev/null   # installs the pinned toolchain + wasm targets
	@for t in wasm32-wasip1 wasm32-unknown-unknown; do \
	  rustup target list --installed | grep -qx $$t || rustup target add $$t; done
	@if [ "$$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$(WBG_VER)" ]; then \
	  echo "installing wasm-bindgen-cli $(WBG_VER) (a few minutes, once)"; \
	  cargo install wasm-bindgen-cli --version $(WBG_VER) --quiet; fi

setup-python: $(VENV)/.ok
$(VENV)/.ok: tests/requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

setup-node:
	@if [ -f js/package-lock.json ] && [ ! js/node_modules/.package-lock.json -nt js/package-lock.json ]; then \
	  cd js && npm ci --no-audit --no-fund --loglevel=error; fi

## build: the core natively and inside both shells for their wasm targets
build: build-core build-envoy build-js

build-core: setup-rust
	cargo build --workspace --all-targets

## build-js: the npm package's wasm (cargo → wasm-opt → wasm-bindgen --target web) in js/keygate/
JS_RAW  := target/wasm32-unknown-unknown/release/keygate_js.wasm
JS_OPT  := target/keygate_js.opt.wasm
JS_PKG  := js/keygate/keygate_js_bg.wasm
# Debian's binaryen 108 rejects Rust 1.95 output without these feature flags.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int
build-js: setup-rust
	cargo build --release --target wasm32-unknown-unknown -p keygate-js
	@$(MAKE) --no-print-directory $(JS_PKG)

# wasm-opt runs before wasm-bindgen: after it, the externref table exports break.
$(JS_PKG): $(JS_RAW)
	wasm-opt -O3 $(WASM_FEATURES) $< -o $(JS_OPT)
	wasm-bindgen --target web --no-typescript --out-dir js/keygate --out-name keygate_js $(JS_OPT)
	@printf 'js/keygate/keygate_js_bg.wasm: %s bytes, %s gzipped\n' "$$(wc -c <$@)" "$$(gzip -9c $@ | wc -c)"

## test-js: node --test over js/test (Node API, vectors, jose/otpauth interop, packed module in workerd)
test-js: build-js setup-node
	cd js && node --test --test-concurrency=1 test/*.test.mjs

## test: everything CI runs
test: setup build test-rust test-vectors test-envoy test-js test-demo

test-rust:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## build-envoy: the filter as dist/keygate_envoy.wasm (profile `filter`: LTO, opt-level z; wasm-opt) + the `mint` test tool
build-envoy: setup-rust setup-apt
	cargo build --profile filter -p keygate-envoy --target wasm32-wasip1
	@mkdir -p dist
	wasm-opt -Oz $(WASM_FEATURES) --strip-debug --strip-producers target/wasm32-wasip1/filter/keygate_envoy.wasm -o dist/keygate_envoy.wasm
	@stat -c '%s' dist/keygate_envoy.wasm | awk '{printf "dist/keygate_envoy.wasm: %d bytes (%.0f KiB; target 400 KiB)\n", $$1, $$1/1024}'
	cargo build --example mint

## test-envoy: end-to-end filter tests against a real Envoy (fails, never skips, if a piece is missing)
test-envoy: setup-python build-envoy
	$(PY) -m pytest -q tests/envoy

## test-vectors: regenerate the independent-implementation vectors and check they match the committed ones
test-vectors: setup-python
	$(PY) tests/vectors/generate.py --check

bench: bench-envoy bench-js

## bench-envoy: Envoy without auth vs the native jwt_authn+rbac+local_ratelimit chain vs keygate
bench-envoy: setup-python build-envoy
	$(PY) envoy/bench.py

bench-js: build-js setup-node
	cd js && node bench/bench.mjs
	cd js && node bench/workerd.mjs

## demo: Envoy + keygate filter on :8080 (PORT=…) in front of the auth worker on workerd; Ctrl-C stops all
demo: setup-python setup-demo build-envoy build-js
	node tests/demo/run.mjs

## demo-check: the same stack on free ports, the scripted flow of issue 5 over HTTP, then stopped
demo-check: setup-python setup-demo build-envoy build-js
	node tests/demo/check.mjs

## test-demo: demo-check, the issue-14 attack classes over HTTP, then the same story in headless Chromium (screenshots in target/)
test-demo: demo-check
	node tests/demo/hardening.mjs
	node tests/demo/browser.mjs

# npm deps of the demo runner/tests (playwright-core never downloads a browser: Debian's chromium
# is used), and the example worker's `keygate` dependency: a link to js/ (file:../.., no lockfile).
setup-demo: setup-apt
	@if [ ! tests/demo/node_modules/.package-lock.json -nt tests/demo/package-lock.json ]; then \
	  cd tests/demo && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; fi
	@test -L js/examples/auth-worker/node_modules/keygate || \
	  (cd js/examples/auth-worker && npm install --no-audit --no-fund --loglevel=error)

clean:
	cargo clean
	rm -rf dist js/pkg js/keygate/keygate_js.js js/keygate/keygate_js_bg.wasm
