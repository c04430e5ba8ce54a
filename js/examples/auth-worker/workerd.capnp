# workerd config for the keygate auth worker and the demo API.
#
#   npm install        # links the keygate package (file:../..), built by `make build-js`
#   SESSION_SECRET=… ISSUER=… AUDIENCE=… DEMO_TOKEN=… [WORKER_ONLY=1] \
#     npx workerd serve workerd.capnp --directory-path demo-data=/abs/path/.demo-data/do \
#       --socket-addr auth=127.0.0.1:8787 --socket-addr api=127.0.0.1:8788
#
# `make demo` (tests/demo/run.mjs) does all of this and puts Envoy in front.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "auth-worker", worker = .authWorker),
    (name = "demo-api", worker = .demoApi),
    # Durable Object storage: one SQLite file per object, on local disk.
    (name = "demo-data", disk = (path = "../../../.demo-data/do", writable = true)),
  ],
  sockets = [
    (name = "auth", address = "127.0.0.1:8787", http = (), service = "auth-worker"),
    (name = "api", address = "127.0.0.1:8788", http = (), service = "demo-api"),
  ],
);

const authWorker :Workerd.Worker = (
  compatibilityDate = "2025-09-01",
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "auth.js", esModule = embed "auth.js"),
    (name = "keys.js", esModule = embed "keys.js"),
    (name = "store.js", esModule = embed "store.js"),
    (name = "http.js", esModule = embed "http.js"),
    (name = "limits.js", esModule = embed "limits.js"),
    (name = "public/index.html", text = embed "public/index.html"),
    (name = "public/app.js", text = embed "public/app.js"),
    (name = "public/app.css", text = embed "public/app.css"),

    # The keygate package as npm installed it, listed as its README says for raw workerd
    # (wrangler users need nothing: its bundler reads the package's "workerd" export). The
    # .wasm is a precompiled `wasm` module: workerd forbids compiling Wasm from bytes.
    (name = "keygate", esModule = embed "node_modules/keygate/workerd.js"),
    (name = "keygate/api.js", esModule = embed "node_modules/keygate/keygate/api.js"),
    (name = "keygate/keygate_js.js", esModule = embed "node_modules/keygate/keygate/keygate_js.js"),
    (name = "keygate/keygate_js_bg.wasm", wasm = embed "node_modules/keygate/keygate/keygate_js_bg.wasm"),
  ],
  bindings = [
    (name = "AUTH", durableObjectNamespace = "AuthStore"),
    (name = "KEYS", durableObjectNamespace = "SigningKeyStore"),    # the signing keys (keys.js)
    (name = "LIMITS", durableObjectNamespace = "RateLimiter"),       # worker-only mode's rate limits
    # Secrets and per-run values come from the environment, never from this file.
    (name = "SIGNING_KEY", fromEnvironment = "SIGNING_KEY"),        # optional: the first key (private JWK with kid)
    (name = "SESSION_SECRET", fromEnvironment = "SESSION_SECRET"),  # ≥ 32 bytes
    (name = "ISSUER", fromEnvironment = "ISSUER"),
    (name = "AUDIENCE", fromEnvironment = "AUDIENCE"),
    (name = "DEMO_TOKEN", fromEnvironment = "DEMO_TOKEN"),          # guards /__demo/*
    (name = "ACCESS_TOKEN_TTL", fromEnvironment = "ACCESS_TOKEN_TTL"),  # optional, seconds (900)
    (name = "REFRESH_TOKEN_TTL", fromEnvironment = "REFRESH_TOKEN_TTL"),  # optional, seconds (1209600)
    (name = "LEEWAY", fromEnvironment = "LEEWAY"),                  # optional, seconds (30)
    # "1": no Envoy in front, the worker applies the seed's rate limits itself (limits.js).
    (name = "WORKER_ONLY", fromEnvironment = "WORKER_ONLY"),
    # Tests only: forget a rate-limit state this many ms after its last admission (limits.js).
    (name = "LIMITS_FORGET_AFTER_MS", fromEnvironment = "LIMITS_FORGET_AFTER_MS"),
  ],
  durableObjectNamespaces = [
    (className = "AuthStore", uniqueKey = "keygate-demo-auth-store", enableSql = true),
    (className = "SigningKeyStore", uniqueKey = "keygate-demo-signing-keys", enableSql = true),
    (className = "RateLimiter", uniqueKey = "keygate-demo-rate-limiter", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "demo-data"),
);

const demoApi :Workerd.Worker = (
  compatibilityDate = "2025-09-01",
  modules = [
    (name = "api.js", esModule = embed "api.js"),
    (name = "http.js", esModule = embed "http.js"),
  ],
);
