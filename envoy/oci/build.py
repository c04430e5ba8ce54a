#!/usr/bin/env python3
"""Writes dist/keygate_envoy.wasm as an OCI image layout on disk (`make oci` → dist/oci).

The image is the Wasm image spec's *compat* variant, the one Istio's `WasmPlugin` and Envoy
Gateway's `EnvoyExtensionPolicy` pull from `oci://…` registries: one
`application/vnd.oci.image.layer.v1.tar+gzip` layer holding `plugin.wasm`, a standard image
config, and the manifest annotation `module.wasm.image/variant=compat`. Deterministic: the same
.wasm always gives the same digests (tar and gzip timestamps are zero).
Push it with e.g. `skopeo copy oci:dist/oci:<version> docker://registry.example/keygate:<version>`.

Usage: build.py WASM OUT_DIR VERSION
"""
import gzip
import hashlib
import io
import json
import pathlib
import shutil
import sys
import tarfile


def blob(out, data, media_type, **extra):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = out / "blobs" / "sha256" / digest.split(":")[1]
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}


def layer_tar(wasm):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size, info.mode, info.mtime = len(wasm), 0o644, 0
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def main(wasm_path, out_dir, version):
    wasm = pathlib.Path(wasm_path).read_bytes()
    out = pathlib.Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    (out / "blobs" / "sha256").mkdir(parents=True)
    tar = layer_tar(wasm)
    gz = gzip.compress(tar, compresslevel=9, mtime=0)
    layer = blob(out, gz, "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
    }
    config_desc = blob(out, json.dumps(config, sort_keys=True).encode(),
                       "application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer],
        "annotations": {
            "module.wasm.image/variant": "compat",
            "org.opencontainers.image.title": "keygate_envoy.wasm",
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.licenses": "MIT OR Apache-2.0",
        },
    }
    manifest_desc = blob(out, json.dumps(manifest, sort_keys=True).encode(),
                         "application/vnd.oci.image.manifest.v1+json",
                         annotations={"org.opencontainers.image.ref.name": version})
    (out / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [manifest_desc]}, sort_keys=True))
    print(f"{out}: OCI layout, tag {version}, manifest {manifest_desc['digest']}, "
          f"plugin.wasm sha256:{hashlib.sha256(wasm).hexdigest()}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
