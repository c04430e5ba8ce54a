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
	test test-rust test-vectors test-envoy test-js bench bench-envoy bench-js demo demo-check clean

## setup: install toolchains, wasm-bindgen-cli, Envoy, Python and npm test deps (fast when present)
setup: setup-apt setup-rust setup-python setup-node

# Debian packages: wasm-opt (binaryen), wrk (benchmarks), zbarimg (QR decoding in tests).
APT_PKGS := binaryen:wasm-opt wrk:wrk zbar-tools:zbarimg
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
build: setup-rust
	cargo build --workspace
	cargo build --release -p keygate-envoy --target wasm32-wasip1
	cargo build --release -p keygate-js --target wasm32-unknown-unknown

## test: everything CI runs
test: setup build test-rust test-vectors

test-rust:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## build-envoy: the filter as dist/keygate_envoy.wasm (profile `filter`: LTO, opt-level z; wasm-opt) + the `mint` test tool
WASM_OPT_FLAGS := -Oz --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int --strip-debug --strip-producers
build-envoy: setup-rust setup-apt
	cargo build --profile filter -p keygate-envoy --target wasm32-wasip1
	@mkdir -p dist
	wasm-opt $(WASM_OPT_FLAGS) target/wasm32-wasip1/filter/keygate_envoy.wasm -o dist/keygate_envoy.wasm
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

bench-js:

demo:
	@echo "the demo arrives with its issue"

clean:
	cargo clean
	rm -rf dist js/pkg
