//! keygate as a proxy-wasm HTTP filter (filled in by the filter issue).
