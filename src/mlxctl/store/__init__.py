"""Model files on disk, in three parts (see docs/store.md):

- `store.local`: model folders and the Hugging Face cache: what a folder holds,
  GGUF metadata, scanning the cache, pulling from the hub, planned removal, and
  which files a registry row may make mlxctl read.
- `store.content`: the content-addressed store: blobs by digest, OCI manifests,
  `name:tag` files, the store folder, ModelSpec text, garbage and integrity.
- `store.oci`: OCI distribution: the registry client, credentials, push and pull.

`store.progress` is how all three report long work. The store imports nothing
above `mlxctl.registry`; `mlxctl.library` joins it to the registry.
"""
